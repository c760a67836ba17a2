package queue_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

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
				t.Fatal("a delayed message came before its delay")
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
	back := 0
	for deadline := time.Now().Add(5 * time.Second); back < 24 && time.Now().Before(deadline); {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		back += len(out.Messages)
	}
	if back != 24 {
		t.Errorf("%d messages visible again (23 released and the delayed one), want 24", back)
	}
	if err := q.ChangeVisibility(ctx, url, []queue.Visibility{{ReceiptHandle: "not-a-handle", Timeout: time.Second}}); err == nil {
		t.Error("a bad receipt handle was accepted")
	}
}
