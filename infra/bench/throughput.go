package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/customerthermometer/webhooks/shared/awsconn"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/payload"
	"github.com/customerthermometer/webhooks/shared/store"
)

// batch is how many deliveries one invocation attempts together (the tasks
// queue's batch size); both loops run this many requests at once.
const batch = 10

// throughput compares the delivery path with a bare keep-alive POST loop.
func throughput(n int) error {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()
	// The log is written through the real store and AWS SDK to a local
	// DynamoDB stand-in that accepts every write at once, so the figure is
	// the service's own work, not the emulator's speed (which the requests
	// part counts instead).
	var writes int64
	var mu sync.Mutex
	ddb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		writes++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amz-Crc32", fmt.Sprint(crc32.ChecksumIEEE([]byte(`{}`))))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer ddb.Close()
	st := store.New(dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(ddb.URL),
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""), HTTPClient: awsconn.Wrap(nil),
	}), "endpoints", "deliveries")

	response := json.RawMessage(`{"id":"rsp_9001","rating":"red","comment":"Took three days to hear back","drivers":["Response time"],"blast_id":"b_77","responded_at":"2026-11-27T10:54:58Z","respondent":{"email":"kim@example.com","first_name":"Kim","last_name":"Lee","company":"Acme"},"custom_fields":{"custom_1":"Gold plan"}}`)
	sample := payload.Body{ID: ids.Derived("dlv", "a", "e", "p"), Event: "comment", Trigger: "comment.red", EventID: "evt_01JD7Q4Z6V9X2K",
		OccurredAt: "2026-11-27T10:55:03Z", Webhook: payload.Webhook{ID: "ep_01M8EA9XTR0000000000000000", Name: "Red comments to helpdesk"},
		Thermometer: payload.Thermometer{ID: "th_42", Name: "Support tickets", Type: "email"}, Response: response}.JSON()

	// Bare loop: the same body, POSTed by batch workers over keep-alive,
	// through the HTTP transport directly as the delivery path sends
	// (http.Client would add a copy of every header per request).
	plain := &http.Transport{MaxIdleConnsPerHost: 64}
	bareWork := func(int) { post(plain, receiver.URL, sample) }
	warm(func() { bareWork(0) })

	// The same webhook request as the delivery path sends, every contract
	// header included, built once and POSTed again and again: what the
	// webhook's bytes cost both sides, without the service's work. It splits
	// the gap between the bare loop and the delivery path into the
	// contract's headers (bare to replay), the service's work for the
	// request (replay to the path without the log write) and the log write.
	signed := http.Header{}
	dispatch.SetHeaders(signed, dispatch.Webhook{Secret: "02ee43a0c82e42c3f79701cc7db8389f3fcd4ac1dace9ec92592220964e75d59",
		EndpointID: "ep_01M8EA9XTR0000000000000000", DeliveryID: ids.Derived("dlv", "a", "e", "p"), Event: "comment", Attempt: 1, Body: sample}, time.Now())
	replay := func(int) {
		req, err := http.NewRequest(http.MethodPost, receiver.URL+"/hook", bytes.NewReader(sample))
		if err != nil {
			panic(err)
		}
		for k, v := range signed {
			req.Header[k] = v
		}
		send(plain, req)
	}
	warm(func() { replay(0) })

	// Delivery path: build the payload, sign, guarded dial, POST with every
	// header, and record the attempt in the log, a batch at a time.
	client := dispatch.New(dispatch.Options{LocalMode: true})
	secret := "02ee43a0c82e42c3f79701cc7db8389f3fcd4ac1dace9ec92592220964e75d59"
	ctx := context.Background()
	var logMu sync.Mutex
	var pending []store.LogItem
	target := receiver.URL
	one := func(i int) {
		d := ids.Derived("dlv", "acc_bench", fmt.Sprint("evt_", i), "ep_01M8EA9XTR0000000000000000")
		body := payload.Body{ID: d, Event: "comment", Trigger: "comment.red", EventID: fmt.Sprint("evt_", i),
			OccurredAt: "2026-11-27T10:55:03Z", Webhook: payload.Webhook{ID: "ep_01M8EA9XTR0000000000000000", Name: "Red comments to helpdesk"},
			Thermometer: payload.Thermometer{ID: "th_42", Name: "Support tickets", Type: "email"}, Response: response}.JSON()
		res := client.Send(ctx, dispatch.Webhook{URL: target + "/hook", Secret: secret, EndpointID: "ep_01M8EA9XTR0000000000000000",
			DeliveryID: d, Event: "comment", Attempt: 1, Body: body})
		logMu.Lock()
		pending = append(pending, store.LogItem{AccountID: "acc_bench", DeliveryID: d, Expires: time.Now().Add(time.Hour), Request: store.NewRequestKey(), Attempt: &domain.Attempt{
			Number: 1, At: time.Now(), StatusCode: res.StatusCode, LatencyMS: res.Latency.Milliseconds(), ResponseBody: string(res.ResponseBody)}})
		logMu.Unlock()
	}
	flush := func() {
		logMu.Lock()
		items := pending
		pending = nil
		logMu.Unlock()
		if err := st.PutLogItems(ctx, items); err != nil {
			panic(err)
		}
	}
	warm(func() { one(-1); flush() })
	// The same without the log write, to show where the difference goes.
	drop := func() { logMu.Lock(); pending = nil; logMu.Unlock() }

	// The four loops take turns, rounds times, so that a change in the
	// machine's load (it is shared) falls on all of them alike; each figure
	// is the median of its rounds.
	loops := []struct {
		work  func(int)
		after func()
	}{{bareWork, nil}, {replay, nil}, {one, drop}, {one, flush}}
	runs := make([][]run, len(loops))
	var pathWrites int64
	for range rounds {
		for i, l := range loops {
			mu.Lock()
			before := writes
			mu.Unlock()
			runs[i] = append(runs[i], rate(n/rounds, l.work, l.after))
			if i == len(loops)-1 {
				mu.Lock()
				pathWrites += writes - before
				mu.Unlock()
			}
		}
	}
	bare, replayed, sendOnly, path := median(runs[0]), median(runs[1]), median(runs[2]), median(runs[3])
	low, high := math.Inf(1), math.Inf(-1)
	for r := range rounds {
		ratio := runs[3][r].perSecond / runs[0][r].perSecond
		low, high = min(low, ratio), max(high, ratio)
	}

	// The same comparison against receivers that take 2 ms and 20 ms to
	// answer (one in the same region; a fast one on the internet): the log
	// write's fixed cost per batch, set against a receiver's time rather than
	// a loopback's.
	type delayed struct {
		delay      time.Duration
		bare, path run
	}
	var slowRuns []delayed
	for _, delay := range []time.Duration{2 * time.Millisecond, 20 * time.Millisecond} {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			time.Sleep(delay)
			w.WriteHeader(http.StatusOK)
		}))
		target = slow.URL
		post(plain, slow.URL, sample)
		sb := rate(n/10, func(i int) { post(plain, slow.URL, sample) }, nil)
		one(-1)
		flush()
		sp := rate(n/10, one, flush)
		slow.Close()
		slowRuns = append(slowRuns, delayed{delay, sb, sp})
	}

	fmt.Printf("throughput (%d deliveries, %d at a time, GOMAXPROCS %d, medians of %d interleaved rounds; CPU is the whole process's: sender, receiver and stand-in)\n", n, batch, runtime.GOMAXPROCS(0), rounds)
	fmt.Printf("  bare keep-alive POST loop   %8.0f requests/s     %5.1f µs CPU each\n", bare.perSecond, bare.cpu)
	fmt.Printf("  delivery path               %8.0f deliveries/s   %5.1f µs CPU each  (%d log batch writes)\n", path.perSecond, path.cpu, pathWrites)
	fmt.Printf("  ratio                       %8.2f  (goal: 0.80 or better; rounds %.2f–%.2f)\n", path.perSecond/bare.perSecond, low, high)
	fmt.Printf("  without the log write       %8.0f deliveries/s   %5.1f µs CPU each  (ratio %.2f)\n", sendOnly.perSecond, sendOnly.cpu, sendOnly.perSecond/bare.perSecond)
	fmt.Printf("  the path's request, replayed %7.0f requests/s     %5.1f µs CPU each  (ratio %.2f: every contract header, no work)\n", replayed.perSecond, replayed.cpu, replayed.perSecond/bare.perSecond)
	fmt.Printf("  where the gap goes          contract headers %.3f × the service's work for the request %.3f × log write %.3f = %.3f\n",
		replayed.perSecond/bare.perSecond, sendOnly.perSecond/replayed.perSecond, path.perSecond/sendOnly.perSecond, path.perSecond/bare.perSecond)
	for _, r := range slowRuns {
		fmt.Printf("  receiver answering in %-5v %8.0f requests/s bare, %.0f deliveries/s  (ratio %.2f, %d deliveries)\n", r.delay, r.bare.perSecond, r.path.perSecond, r.path.perSecond/r.bare.perSecond, n/10)
	}
	return nil
}

func post(c http.RoundTripper, url string, body []byte) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	send(c, req)
}

func send(c http.RoundTripper, req *http.Request) {
	resp, err := c.RoundTrip(req)
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func warm(f func()) {
	for i := 0; i < 200; i++ {
		f()
	}
}

// rounds is how many times each loop of the throughput comparison runs.
const rounds = 5

// median is the median rate and CPU of runs, each taken on its own.
func median(runs []run) run {
	rates, cpus := make([]float64, len(runs)), make([]float64, len(runs))
	for i, r := range runs {
		rates[i], cpus[i] = r.perSecond, r.cpu
	}
	slices.Sort(rates)
	slices.Sort(cpus)
	return run{perSecond: rates[len(rates)/2], cpu: cpus[len(cpus)/2]}
}

// run is what rate measured.
type run struct {
	perSecond float64
	cpu       float64 // µs of process CPU per operation
}

// rate runs work n times, batch at a time, calling after (if any) once per
// batch as an invocation does, and returns operations per second and CPU
// per operation.
func rate(n int, work func(i int), after func()) run {
	runtime.GC()
	cpu0 := processCPU()
	start := time.Now()
	for i := 0; i < n; i += batch {
		var wg sync.WaitGroup
		for j := i; j < min(i+batch, n); j++ {
			wg.Add(1)
			go func() { defer wg.Done(); work(j) }()
		}
		wg.Wait()
		if after != nil {
			after()
		}
	}
	elapsed := time.Since(start)
	return run{perSecond: float64(n) / elapsed.Seconds(), cpu: float64((processCPU() - cpu0).Microseconds()) / float64(n)}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
