package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
	if want, _ := strconv.ParseInt(ev.Records[0].Attributes["SentTimestamp"], 10, 64); want == 0 || !h.got[0].SentAt.Equal(time.UnixMilli(want)) {
		t.Errorf("SentAt = %v, want SentTimestamp %s", h.got[0].SentAt, ev.Records[0].Attributes["SentTimestamp"])
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].MessageId {
		t.Errorf("failures = %+v", resp.BatchItemFailures)
	}
}

func TestSentAtRejectsImplausibleTimestamps(t *testing.T) {
	for _, v := range []string{"", "soon", "-5", "0", "99999999999999999999", "1e12"} {
		if got := delivery.NewMessage("m", "", "rh", "q", map[string]string{"SentTimestamp": v}).SentAt; !got.IsZero() {
			t.Errorf("SentAt from %q = %v, want unknown", v, got)
		}
	}
	if got := delivery.NewMessage("m", "", "rh", "q", map[string]string{"SentTimestamp": "1795776903010"}).SentAt; !got.Equal(time.UnixMilli(1795776903010)) {
		t.Errorf("SentAt = %v", got)
	}
}
