package main

import (
	"fmt"
	"strings"
)

// us-east-1 on-demand prices (USD), as published for 2026.
const (
	lambdaPerGBSecondARM = 0.0000133334
	lambdaPerRequest     = 0.20 / 1e6
	sqsPerRequest        = 0.40 / 1e6
	ddbPerWRU            = 0.625 / 1e6
	ddbPerRRU            = 0.125 / 1e6
	natPerGB             = 0.045
	kmsPerRequest        = 0.03 / 1e4
)

// lambdaMillis is the billed duration assumed per invocation in AWS: the
// emulator's latency makes local durations meaningless. A task batch waits
// for its slowest receiver; 150 ms covers receivers answering in ~100 ms and
// a handful of DynamoDB round trips of a few milliseconds.
const lambdaMillis = 150.0

// natBytesPerDelivery is what the bench counted through the NAT gateway.
func printCost(fn, esm *counter, deliveries, invocations, natBytesPerDelivery float64) {
	var wru, rru, sqsReq, kmsReq float64
	for _, c := range []*counter{fn, esm} {
		wru, rru = wru+c.wru, rru+c.rru
		for k, n := range c.calls {
			switch {
			case strings.HasPrefix(k, "SQS "):
				// Batch requests bill as one request (under 64 KiB).
				sqsReq += float64(n)
			case strings.HasPrefix(k, "KMS "):
				kmsReq += float64(n)
			}
		}
	}
	perM := 1e6 / deliveries
	lambda := invocations*perM*lambdaPerRequest + invocations*perM*(lambdaMillis/1000)*(128.0/1024)*lambdaPerGBSecondARM
	sqs := sqsReq * perM * sqsPerRequest
	ddb := wru*perM*ddbPerWRU + rru*perM*ddbPerRRU
	nat := 1e6 * natBytesPerDelivery / 1e9 * natPerGB
	kmsCost := kmsReq * perM * kmsPerRequest
	fmt.Printf("\ncost per million deliveries (us-east-1 on-demand; formula in docs/benchmarks.md)\n")
	fmt.Printf("  Lambda arm64 128 MB   %7.0f invocations × ($0.20/M + %.0f ms × 0.125 GB × $0.0000133334/GB-s)  $%7.3f\n", invocations*perM, lambdaMillis, lambda)
	fmt.Printf("  SQS                   %7.0f requests × $0.40/M                                          $%7.3f\n", sqsReq*perM, sqs)
	fmt.Printf("  DynamoDB              %7.0f WRU × $0.625/M + %7.0f RRU × $0.125/M                         $%7.3f\n", wru*perM, rru*perM, ddb)
	fmt.Printf("                        (%.2f WRU and %.2f RRU per delivery, from the sizes of the items written)\n", wru/deliveries, rru/deliveries)
	fmt.Printf("  KMS                   %7.0f requests × $0.03/10k (secrets cached 5 min per instance)     $%7.3f\n", kmsReq*perM, kmsCost)
	fmt.Printf("  NAT gateway data      %7.1f GB × $0.045/GB (%.0f bytes per delivery, counted above)       $%7.3f\n", 1e6*natBytesPerDelivery/1e9, natBytesPerDelivery, nat)
	fmt.Printf("  total                                                                                  $%7.3f\n", lambda+sqs+ddb+kmsCost+nat)
	slow := invocations*perM*lambdaPerRequest + invocations*perM*1.0*(128.0/1024)*lambdaPerGBSecondARM
	fmt.Printf("  (the Lambda duration is assumed; billed at 1 s per invocation, receivers answering slowly, Lambda would be $%.3f and the total $%.3f)\n",
		slow, slow+sqs+ddb+kmsCost+nat)
}
