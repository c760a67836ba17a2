package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/store"
)

// runtimeAPI is a minimal Lambda Runtime API: it hands events to the
// bootstrap one at a time and returns its responses, and notes when the
// bootstrap first asked for work (the end of its start-up).
type runtimeAPI struct {
	events    chan []byte
	responses chan []byte
	firstNext chan time.Time
	once      sync.Once
	seq       atomic.Int64
}

func (rt *runtimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/invocation/next"):
		rt.once.Do(func() { rt.firstNext <- time.Now() })
		ev, ok := <-rt.events
		if !ok {
			http.Error(w, "shutting down", http.StatusGone)
			return
		}
		id := fmt.Sprint("req-", rt.seq.Add(1))
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(time.Now().Add(60*time.Second).UnixMilli()))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
		_, _ = w.Write(ev)
	case r.Method == "POST" && (strings.HasSuffix(r.URL.Path, "/response") || strings.HasSuffix(r.URL.Path, "/error")):
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rt.responses <- b
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// startup measures the delivery bootstrap's start-up time and its peak
// resident memory while it fans one event out to fanOut endpoints on this
// machine, one of which hangs until the 5 s limit.
func startup(fanOut int) error {
	b, err := os.ReadFile(benchStackPath())
	if err != nil {
		return fmt.Errorf("%w: run `make bench`", err)
	}
	var stack struct {
		Outputs   map[string]string
		Functions map[string]struct{ Environment map[string]string }
	}
	if err := json.Unmarshal(b, &stack); err != nil {
		return err
	}
	bootstrap := os.Getenv("WEBHOOKS_DELIVERY_BOOTSTRAP")
	if bootstrap == "" {
		bootstrap = ".local/build/DeliveryFunction/bootstrap"
	}
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		return err
	}
	st := store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	sealer := kms.New(awskms.NewFromConfig(cfg), stack.Outputs["SecretsKeyId"])
	sq := sqs.NewFromConfig(cfg)

	var delivered atomic.Int64
	release := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/hang") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		delivered.Add(1)
	}))
	defer receiver.Close()
	defer close(release)

	account := fmt.Sprintf("acc_rss_%d", time.Now().UnixNano())
	if err := st.CreateAPIKey(ctx, account, apikey.Hash(apikey.New()), time.Now()); err != nil {
		return err
	}
	fmt.Printf("\nstart-up and memory: setting up %d endpoints...\n", fanOut)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 1) // the emulator fails concurrent transactions
	var setupErr atomic.Value
	for i := 0; i < fanOut; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			now := time.Now().UTC()
			path := fmt.Sprint("/", i)
			if i == fanOut/2 {
				path = "/hang"
			}
			e := domain.Endpoint{ID: ids.New("ep", now), AccountID: account, Name: fmt.Sprint("rss ", i), URL: receiver.URL + path,
				Triggers: []string{"*"}, Enabled: true, Tested: true, CreatedAt: now, UpdatedAt: now,
				Thermometers: []domain.Thermometer{{ID: "th_rss", Name: "RSS", Type: "email"}}}
			sealed, err := sealer.Seal(ctx, []byte(fmt.Sprintf("%064d", i)), domain.SealContext(account, e.ID, domain.PurposeSecret))
			if err == nil {
				e.Secret = sealed
				err = st.CreateEndpoint(ctx, e)
			}
			if err != nil {
				setupErr.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, ok := setupErr.Load().(error); ok {
		return err
	}
	tasksURL := stack.Outputs["DeliveryTasksQueueUrl"]
	if _, err := sq.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &tasksURL}); err != nil {
		return err
	}

	rt := &runtimeAPI{events: make(chan []byte), responses: make(chan []byte), firstNext: make(chan time.Time, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rt}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	cmd := exec.Command(bootstrap)
	env := append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "LOCAL_MODE=true", "RETRY_SCHEDULE=12h",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128") // as Lambda sets it
	for k, v := range stack.Functions["DeliveryFunction"].Environment {
		if k != "LOCAL_MODE" && k != "RETRY_SCHEDULE" {
			env = append(env, k+"="+v)
		}
	}
	cmd.Env = env
	stdout, _ := cmd.StdoutPipe()
	go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(stdout)) }()
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var ready time.Time
	select {
	case ready = <-rt.firstNext:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the bootstrap did not ask for work within 10 s")
	}
	startupTime := ready.Sub(started)

	invoke := func(ev events.SQSEvent) (events.SQSEventResponse, error) {
		b, _ := json.Marshal(ev)
		rt.events <- b
		out := <-rt.responses
		var resp events.SQSEventResponse
		return resp, json.Unmarshal(out, &resp)
	}
	eventsARN := "arn:aws:sqs:us-east-1:123456789012:" + stack.Outputs["ResponseEventsQueueUrl"][strings.LastIndex(stack.Outputs["ResponseEventsQueueUrl"], "/")+1:]
	tasksARN := "arn:aws:sqs:us-east-1:123456789012:" + tasksURL[strings.LastIndex(tasksURL, "/")+1:]
	// fan sends one event with a comment of the given size and plays the
	// tasks queue's event-source mapping until every endpoint but the
	// hanging one has its webhook and the queue has been quiet for 2 s.
	fan := func(id string, commentBytes int) (int64, int, time.Duration, error) {
		before := delivered.Load()
		body := fmt.Sprintf(`{"version":1,"event_id":%q,"type":"comment","account_id":%q,"occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_rss","type":"email"},"response":{"id":"rsp_1","rating":"red","comment":%q}}`,
			id, account, strings.Repeat("x", commentBytes))
		start := time.Now()
		if _, err := invoke(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-" + id, Body: body, EventSourceARN: eventsARN,
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}}}}); err != nil {
			return 0, 0, 0, err
		}
		invocations, quiet := 1, time.Now()
		for time.Since(start) < 5*time.Minute && (delivered.Load()-before < int64(fanOut-1) || time.Since(quiet) < 2*time.Second) {
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
			if err != nil {
				return 0, 0, 0, err
			}
			if len(out.Messages) == 0 {
				continue
			}
			quiet = time.Now()
			ev := events.SQSEvent{}
			for _, m := range out.Messages {
				ev.Records = append(ev.Records, events.SQSMessage{MessageId: *m.MessageId, ReceiptHandle: *m.ReceiptHandle, Body: *m.Body,
					EventSourceARN: tasksARN, Attributes: m.Attributes})
			}
			if _, err := invoke(ev); err != nil {
				return 0, 0, 0, err
			}
			invocations++
			for _, m := range out.Messages {
				_, _ = sq.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &tasksURL, ReceiptHandle: m.ReceiptHandle})
			}
		}
		return delivered.Load() - before, invocations, time.Since(start), nil
	}
	fmt.Printf("delivery bootstrap (%s)\n", bootstrap)
	fmt.Printf("  start-up to first invocation request  %6.1f ms\n", float64(startupTime.Microseconds())/1000)
	for _, run := range []struct {
		id, what string
		comment  int
	}{{"evt_rss_small", "one event", 15}, {"evt_rss_large", "one 200 KiB event", 200 << 10}} {
		n, invocations, took, err := fan(run.id, run.comment)
		if err != nil {
			return err
		}
		hwm, rss := procMemory(cmd.Process.Pid)
		fmt.Printf("  fan-out of %s to %d endpoints (one hanging until the 5 s limit): %d delivered in %d invocations, %s\n",
			run.what, fanOut, n, invocations, took.Round(time.Millisecond))
		fmt.Printf("  peak resident memory (VmHWM) so far   %6.1f MB   (now %.1f MB; the function has 128 MB)\n", hwm, rss)
	}
	return nil
}

// procMemory reads a process's peak and current resident set, in MB.
func procMemory(pid int) (peak, now float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		switch {
		case strings.HasPrefix(line, "VmHWM:"):
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), &kb)
			peak = kb / 1024
		case strings.HasPrefix(line, "VmRSS:"):
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), &kb)
			now = kb / 1024
		}
	}
	return peak, now
}

func benchStackPath() string {
	if p := os.Getenv("WEBHOOKS_BENCH_STACK"); p != "" {
		return p
	}
	return ".local/bench/stack.json"
}
