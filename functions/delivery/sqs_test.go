package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/customerthermometer/webhooks/shared/delivery"
)

type recordingHandler struct {
	got  []delivery.Message
	fail []string
}

func (r *recordingHandler) Handle(_ context.Context, msgs []delivery.Message) []string {
	r.got = msgs
	return r.fail
}

func TestHandleSQSSampleEvent(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "sqs-comment.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{fail: []string{ev.Records[0].MessageId}}
	resp := handleSQS(context.Background(), h, ev)
	if len(h.got) != len(ev.Records) || h.got[0].ID != ev.Records[0].MessageId || h.got[0].Body != ev.Records[0].Body {
		t.Fatalf("messages not passed through: %+v", h.got)
	}
	if h.got[0].ReceiveCount != 1 || h.got[0].ReceiptHandle != ev.Records[0].ReceiptHandle || h.got[0].Queue != "ct-webhooks-ResponseEventsQueue-EXAMPLE" {
		t.Errorf("attributes not read: %+v", h.got[0])
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].MessageId {
		t.Errorf("failures = %+v", resp.BatchItemFailures)
	}
}
