package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/awsconn"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// counter counts AWS requests by service and operation; BatchWriteItem and
// SendMessageBatch also count their entries. It also adds up the DynamoDB
// capacity units the requests consume, from the sizes of the items actually
// written (see capacity.go).
type counter struct {
	mu      sync.Mutex
	calls   map[string]int
	entries map[string]int
	wru     float64
	rru     float64
	status  map[string]string // delivery summary key -> status last written
}

func (c *counter) option(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("CountRequests",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			key := awsmiddleware.GetServiceID(ctx) + " " + awsmiddleware.GetOperationName(ctx)
			n := 0
			switch p := in.Parameters.(type) {
			case *dynamodb.BatchWriteItemInput:
				for _, reqs := range p.RequestItems {
					n += len(reqs)
				}
			case *sqs.SendMessageBatchInput:
				n = len(p.Entries)
			case *sqs.DeleteMessageBatchInput:
				n = len(p.Entries)
			case *sqs.ChangeMessageVisibilityBatchInput:
				n = len(p.Entries)
			}
			out, md, err := next.HandleInitialize(ctx, in)
			c.mu.Lock()
			c.calls[key]++
			c.entries[key] += n
			// Capacity once the answer is known: a write refused by its
			// condition costs its item's units and changes no index.
			var ccf *ddbtypes.ConditionalCheckFailedException
			if errors.As(err, &ccf) {
				c.refused(in.Parameters)
			} else {
				c.capacity(in.Parameters)
			}
			c.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

func newCounter() *counter {
	return &counter{calls: map[string]int{}, entries: map[string]int{}, status: map[string]string{}}
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.entries, c.wru, c.rru = map[string]int{}, map[string]int{}, 0, 0
}

type stackFile struct {
	Outputs map[string]string
}

// requests runs a burst of events, each fanning out to three endpoints,
// through the real handler against the local emulator, counting every AWS
// request the function makes and those the event-source mapping makes for
// it, and prints them per delivery with the cost they imply.
func requests(events int) error {
	b, err := os.ReadFile(benchStackPath())
	if err != nil {
		return fmt.Errorf("%w: run `make bench`, which deploys the bench stack", err)
	}
	var stack stackFile
	if err := json.Unmarshal(b, &stack); err != nil {
		return err
	}
	ctx := context.Background()
	fn, esm := newCounter(), newCounter()
	load := func(c *counter) aws.Config {
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
			awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
		if err != nil {
			panic(err)
		}
		awsconn.Use(&cfg)
		cfg.APIOptions = append(cfg.APIOptions, c.option)
		return cfg
	}
	fnCfg, esmCfg := load(fn), load(esm)
	nat := &natBytes{next: fnCfg.HTTPClient}
	if nat.next == nil {
		nat.next = awshttp.NewBuildableClient()
	}
	fnCfg.HTTPClient = nat
	st := store.New(dynamodb.NewFromConfig(fnCfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	sealer := kms.New(awskms.NewFromConfig(fnCfg), stack.Outputs["SecretsKeyId"])
	esmSQS := sqs.NewFromConfig(esmCfg)

	var delivered, webhookBytes atomic.Int64
	receiver := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	receiver.Listener = countingListener{Listener: receiver.Listener, bytes: &webhookBytes}
	receiver.Start()
	defer receiver.Close()

	// Setup, not counted: an account and three endpoints linked to one
	// thermometer.
	account := fmt.Sprintf("acc_bench_%d", time.Now().UnixNano())
	if err := st.CreateAPIKey(ctx, account, apikey.Hash(apikey.New()), time.Now()); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		now := time.Now().UTC()
		e := domain.Endpoint{ID: ids.New("ep", now), AccountID: account, Name: fmt.Sprint("bench ", i), URL: receiver.URL + fmt.Sprint("/", i),
			Triggers: []string{"*"}, Enabled: true, Tested: true, CreatedAt: now, UpdatedAt: now,
			Thermometers: []domain.Thermometer{{ID: "th_bench", Name: "Bench", Type: "email"}}}
		if e.Secret, err = sealer.Seal(ctx, []byte(fmt.Sprintf("%064d", i)), domain.SealContext(account, e.ID, domain.PurposeSecret)); err != nil {
			return err
		}
		if err := st.CreateEndpoint(ctx, e); err != nil {
			return err
		}
	}
	eventsURL, tasksURL := stack.Outputs["ResponseEventsQueueUrl"], stack.Outputs["DeliveryTasksQueueUrl"]
	for _, u := range []string{eventsURL, tasksURL} {
		if _, err := esmSQS.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &u}); err != nil {
			return err
		}
	}
	producer := queue.New(sqs.NewFromConfig(esmCfg))
	var msgs []queue.Message
	for i := 0; i < events; i++ {
		msgs = append(msgs, queue.Message{Body: fmt.Sprintf(`{"version":1,"event_id":"evt_bench_%d","type":"comment","account_id":%q,"occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_bench","name":"Bench","type":"email"},"response":{"id":"rsp_%d","rating":"red","comment":"Took three days to hear back","respondent":{"email":"kim@example.com"}}}`, i, account, i)})
	}
	if err := producer.SendBatch(ctx, eventsURL, msgs); err != nil {
		return err
	}
	fn.reset()
	esm.reset()
	nat.bytes.Store(0)
	nat.exchanges.Store(0)
	webhookBytes.Store(0)

	h := &delivery.Handler{
		Store: st, Queue: queue.New(sqs.NewFromConfig(fnCfg)), Secrets: sealer,
		Sender:        dispatch.New(dispatch.Options{LocalMode: true}),
		TasksQueueURL: tasksURL, EventsDLQURL: stack.Outputs["ResponseEventsDeadLetterQueueUrl"],
		Schedule: []time.Duration{time.Second}, Retention: time.Hour, FanOutPage: 500, Concurrency: 32, MaxReceives: 12,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), StackName: "bench", Now: time.Now,
	}
	var invocations atomic.Int64
	start := time.Now()
	want := int64(3 * events)
	var wg sync.WaitGroup
	for _, q := range []struct{ url, batchWindow string }{{eventsURL, "events"}, {tasksURL, "tasks"}} {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for delivered.Load() < want && time.Since(start) < 15*time.Minute {
					out, err := esmSQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &q.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
						MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
					if err != nil || len(out.Messages) == 0 {
						continue
					}
					batch := make([]delivery.Message, len(out.Messages))
					for i, m := range out.Messages {
						batch[i] = delivery.NewMessage(*m.MessageId, *m.Body, *m.ReceiptHandle, q.url[strings.LastIndex(q.url, "/")+1:], m.Attributes)
					}
					invocations.Add(1)
					failed := h.Handle(ctx, batch)
					var del []sqstypes.DeleteMessageBatchRequestEntry
					for i, m := range out.Messages {
						if !contains(failed, *m.MessageId) {
							del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
						}
					}
					if len(del) > 0 {
						_, _ = esmSQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: del})
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := float64(delivered.Load())
	if delivered.Load() < want {
		return fmt.Errorf("only %d of %d deliveries arrived", delivered.Load(), want)
	}

	fmt.Printf("\nAWS requests for %d events × 3 endpoints = %.0f deliveries (%d invocations, %s against the emulator)\n", events, n, invocations.Load(), elapsed.Round(time.Second))
	report := func(title string, c *counter) (total float64) {
		fmt.Printf("  %s\n", title)
		var keys []string
		for k := range c.calls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			extra := ""
			if c.entries[k] > 0 {
				extra = fmt.Sprintf("  (%d entries, %.1f per request)", c.entries[k], float64(c.entries[k])/float64(c.calls[k]))
			}
			fmt.Printf("    %-40s %7d  %6.3f per delivery%s\n", k, c.calls[k], float64(c.calls[k])/n, extra)
			total += float64(c.calls[k])
		}
		return total
	}
	fnTotal := report("made by the delivery function", fn)
	esmTotal := report("made by the event-source mapping (SQS receives and deletes, billed to the account)", esm)
	fmt.Printf("  total %.3f requests per delivery (%.3f function, %.3f event-source mapping)\n", (fnTotal+esmTotal)/n, fnTotal/n, esmTotal/n)
	natPerDelivery := (float64(webhookBytes.Load()+nat.bytes.Load()) + exchangeOverhead*(n+float64(nat.exchanges.Load()))) / n
	fmt.Printf("  through the NAT gateway, per delivery: %.0f HTTP bytes of webhook and answer, %.0f of SQS and KMS requests and answers (%.3f exchanges), %.0f allowed for TLS and TCP/IP (%.0f an exchange): %.0f bytes\n",
		float64(webhookBytes.Load())/n, float64(nat.bytes.Load())/n, float64(nat.exchanges.Load())/n, exchangeOverhead*(1+float64(nat.exchanges.Load())/n), exchangeOverhead, natPerDelivery)
	printCost(fn, esm, n, float64(invocations.Load()), natPerDelivery)
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
