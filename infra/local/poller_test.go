package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/awstest"
)

// scriptedFunction answers each invocation with what respond returns.
type scriptedFunction struct {
	respond func(ev events.SQSEvent) ([]byte, error)
	seen    []events.SQSEvent
}

func (s *scriptedFunction) invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	s.seen = append(s.seen, ev)
	return s.respond(ev)
}

func newTestQueue(t *testing.T, client *sqs.Client) (url, arn string) {
	t.Helper()
	name := fmt.Sprintf("poller-test-%d", time.Now().UnixNano())
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{
		QueueName:  &name,
		Attributes: map[string]string{"VisibilityTimeout": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	return *out.QueueUrl, "arn:aws:sqs:us-east-1:123456789012:" + name
}

func send(t *testing.T, client *sqs.Client, url string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

// remaining drains the queue after the visibility timeout and returns the
// bodies still on it.
func remaining(t *testing.T, client *sqs.Client, url string) []string {
	t.Helper()
	time.Sleep(2500 * time.Millisecond)
	var bodies []string
	for {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
		}
	}
	sort.Strings(bodies)
	return bodies
}

func TestPollerBatchItemFailures(t *testing.T) {
	client := sqs.NewFromConfig(awstest.Config(t))
	failOn := func(body string) func(events.SQSEvent) ([]byte, error) {
		return func(ev events.SQSEvent) ([]byte, error) {
			var resp events.SQSEventResponse
			for _, r := range ev.Records {
				if r.Body == body {
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				}
			}
			return json.Marshal(resp)
		}
	}
	for _, tc := range []struct {
		name    string
		respond func(events.SQSEvent) ([]byte, error)
		report  bool
		want    []string
	}{
		{"reported failure stays, others are deleted", failOn("b"), true, []string{"b"}},
		{"no failures deletes the batch", failOn("none"), true, nil},
		{"function error keeps the whole batch", func(events.SQSEvent) ([]byte, error) { return nil, errors.New("crash") }, true, []string{"a", "b", "c"}},
		{"unreadable response fails the whole batch", func(events.SQSEvent) ([]byte, error) { return []byte(`not json`), nil }, true, []string{"a", "b", "c"}},
		{"unknown item identifier fails the whole batch", func(events.SQSEvent) ([]byte, error) {
			return []byte(`{"batchItemFailures":[{"itemIdentifier":"no-such-id"}]}`), nil
		}, true, []string{"a", "b", "c"}},
		{"empty item identifier fails the whole batch", func(events.SQSEvent) ([]byte, error) {
			return []byte(`{"batchItemFailures":[{"itemIdentifier":""}]}`), nil
		}, true, []string{"a", "b", "c"}},
		{"without ReportBatchItemFailures the response is ignored", failOn("b"), false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, arn := newTestQueue(t, client)
			send(t, client, url, "a", "b", "c")
			fn := &scriptedFunction{respond: tc.respond}
			p := &poller{sqs: client, queueURL: url, queueArn: arn, region: "us-east-1", batchSize: 10,
				window: time.Second, reportFailures: tc.report, concurrency: 1, fn: fn, log: &lineLog{out: io.Discard}, wait: 1}
			for i := 0; i < 3 && len(fn.seen) == 0; i++ {
				if err := p.once(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if len(fn.seen) != 1 || len(fn.seen[0].Records) != 3 {
				t.Fatalf("want one invocation with the batch of 3, got %+v", fn.seen)
			}
			r := fn.seen[0].Records[0]
			if r.EventSource != "aws:sqs" || r.EventSourceARN != arn || r.ReceiptHandle == "" || r.Attributes["ApproximateReceiveCount"] != "1" {
				t.Errorf("record %+v", r)
			}
			got := remaining(t, client, url)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("left on the queue %v, want %v", got, tc.want)
			}
		})
	}
}
