package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestHandleLogsEachMessageWithoutBody(t *testing.T) {
	var logs bytes.Buffer
	c := &Consumer{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	failed := c.Handle(context.Background(), []Message{
		{ID: "m1", Body: `{"event_id":"evt_1","account_id":"acc_1","type":"comment","response":{"comment":"private words"}}`, ReceiveCount: 1},
		{ID: "m2", Body: `not json at all`, ReceiveCount: 3},
	})
	if len(failed) != 0 {
		t.Errorf("failed = %v", failed)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per message, got %q", logs.String())
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first["message_id"] != "m1" || first["event_id"] != "evt_1" || first["account_id"] != "acc_1" {
		t.Errorf("first line %v", first)
	}
	if second["message_id"] != "m2" || second["receive_count"] != float64(3) {
		t.Errorf("second line %v", second)
	}
	if strings.Contains(logs.String(), "private words") {
		t.Error("message body was logged")
	}
}
