package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/queue"
)

func newQueue(t *testing.T, client *sqs.Client) string {
	t.Helper()
	name := fmt.Sprintf("queue-test-%d", time.Now().UnixNano())
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	return *out.QueueUrl
}

func TestSendBatchAndVisibility(t *testing.T) {
	client := sqs.NewFromConfig(awstest.Config(t))
	url := newQueue(t, client)
	q := queue.New(client)
	ctx := context.Background()
	var msgs []queue.Message
	for i := 0; i < 23; i++ { // three requests: 10, 10, 3
		msgs = append(msgs, queue.Message{Body: fmt.Sprint("m", i), Attributes: map[string]string{"reason": fmt.Sprint("r", i)}})
	}
	msgs = append(msgs, queue.Message{Body: "delayed", Delay: 2 * time.Second})
	sent := time.Now()
	if err := q.SendBatch(ctx, url, msgs); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	var handles []queue.Visibility
	for len(bodies) < 23 {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 30})
		if err != nil || len(out.Messages) == 0 {
			t.Fatalf("received %d of 23: %v", len(bodies), err)
		}
		for _, m := range out.Messages {
			if *m.Body == "delayed" {
				// On a busy machine the receives may outlast the delay.
				if time.Since(sent) < 2*time.Second {
					t.Fatal("a delayed message came before its delay")
				}
				handles = append(handles, queue.Visibility{ReceiptHandle: *m.ReceiptHandle, Timeout: 0})
				continue
			}
			if want := "r" + (*m.Body)[1:]; *m.MessageAttributes["reason"].StringValue != want {
				t.Errorf("attribute of %s: %s", *m.Body, *m.MessageAttributes["reason"].StringValue)
			}
			bodies = append(bodies, *m.Body)
			handles = append(handles, queue.Visibility{ReceiptHandle: *m.ReceiptHandle, Timeout: 0})
		}
	}
	sort.Strings(bodies)
	if len(bodies) != 23 || bodies[0] != "m0" {
		t.Fatalf("bodies %v", bodies)
	}
	// Visibility 0 for all of them (three requests): they come straight back.
	if err := q.ChangeVisibility(ctx, url, handles); err != nil {
		t.Fatal(err)
	}
	if back := receiveUpTo(t, client, url, 24, 5*time.Second); back != 24 {
		t.Errorf("%d messages visible again (23 released and the delayed one), want 24", back)
	}
	if err := q.ChangeVisibility(ctx, url, []queue.Visibility{{ReceiptHandle: "not-a-handle", Timeout: time.Second}}); err == nil {
		t.Error("a bad receipt handle was accepted")
	}
}

// receiveUpTo receives messages from url, hiding each for a minute, until
// it has want of them or within has passed, and returns how many it got.
func receiveUpTo(t *testing.T, client *sqs.Client, url string, want int, within time.Duration) int {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(within); got < want && time.Now().Before(deadline); {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		got += len(out.Messages)
	}
	return got
}

// TestSendBatchKeepsRequestsWithinSQSLimit: SQS refuses a batch whose
// messages together are larger than its largest message, so ten large
// task messages (inline payloads) must go in several requests.
func TestSendBatchKeepsRequestsWithinSQSLimit(t *testing.T) {
	client := sqs.NewFromConfig(awstest.Config(t))
	url := newQueue(t, client)
	ctx := context.Background()
	var msgs []queue.Message
	for i := 0; i < 10; i++ {
		msgs = append(msgs, queue.Message{Body: fmt.Sprint(i, strings.Repeat("x", 150<<10))})
	}
	if err := queue.New(client).SendBatch(ctx, url, msgs); err != nil {
		t.Fatal(err)
	}
	if got := receiveUpTo(t, client, url, 10, 10*time.Second); got != 10 {
		t.Errorf("received %d of 10 large messages", got)
	}
}

// TestSendBatchCleansAttributes: SQS refuses an empty attribute value and
// characters outside its allowed set, which a set-aside event's unreadable
// id can hold; such a message still goes, without the empty attribute and
// with the characters replaced.
func TestSendBatchCleansAttributes(t *testing.T) {
	client := sqs.NewFromConfig(awstest.Config(t))
	url := newQueue(t, client)
	ctx := context.Background()
	msg := queue.Message{Body: "set aside", Attributes: map[string]string{"event_id": "", "reason": "bad\x00id\xff"}}
	if err := queue.New(client).SendBatch(ctx, url, []queue.Message{msg}); err != nil {
		t.Fatal(err)
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 2})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("received %d messages: %v", len(out.Messages), err)
	}
	attrs := out.Messages[0].MessageAttributes
	if _, ok := attrs["event_id"]; ok {
		t.Error("empty event_id attribute was sent")
	}
	if got := aws.ToString(attrs["reason"].StringValue); got != "bad\uFFFDid\uFFFD" {
		t.Errorf("reason %q, want the bad characters replaced", got)
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"evt_1": "evt_1", "tab\tnewline\n": "tab\tnewline\n", "nul\x00": "nul\uFFFD", "cut\xe2\x82": "cut\uFFFD",
		"\uFFFE": "\uFFFD", "ünïcödé 🌡": "ünïcödé 🌡", "": "",
	} {
		if got := queue.Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEntriesSQSFailedAreSentAgainLater: entries SQS reports as failed on
// its side are sent again, alone, and only after a wait that grows; entries
// failed by the sender's fault are not.
func TestEntriesSQSFailedAreSentAgainLater(t *testing.T) {
	var mu sync.Mutex
	var calls []time.Time
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Entries []struct{ Id string } }
		_ = json.NewDecoder(r.Body).Decode(&in)
		mu.Lock()
		calls = append(calls, time.Now())
		sizes = append(sizes, len(in.Entries))
		n := len(calls)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		out := map[string]any{"Successful": []any{}, "Failed": []any{}}
		for i, e := range in.Entries {
			if n < 3 && i == 0 { // the first entry fails twice, on SQS's side
				out["Failed"] = []any{map[string]any{"Id": e.Id, "SenderFault": false, "Code": "InternalError", "Message": "try again"}}
				continue
			}
			out["Successful"] = append(out["Successful"].([]any), map[string]any{"Id": e.Id, "MessageId": "m" + e.Id, "MD5OfMessageBody": "x"})
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		DisableMessageChecksumValidation: true})
	if err := queue.New(client).SendBatch(context.Background(), srv.URL+"/1/q", []queue.Message{{Body: "a"}, {Body: "b"}, {Body: "c"}}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || sizes[0] != 3 || sizes[1] != 1 || sizes[2] != 1 {
		t.Fatalf("%d requests of %v entries, want 3 of [3 1 1]", len(calls), sizes)
	}
	if first, second := calls[1].Sub(calls[0]), calls[2].Sub(calls[1]); first < 25*time.Millisecond || second < 50*time.Millisecond {
		t.Errorf("sent again after %v, then %v: want at least 25 ms, then 50 ms", first, second)
	}
}
