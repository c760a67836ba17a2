package payload

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/domain"
)

func TestTestBody(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 56, 0, 0, time.UTC)
	ep := domain.Endpoint{ID: "ep_1", Name: "Red comments", Thermometers: []domain.Thermometer{{ID: "th_42", Name: "Support", Type: "email"}}}
	var b map[string]any
	if err := json.Unmarshal(Test(ep, "dlv_1", now), &b); err != nil {
		t.Fatal(err)
	}
	if b["id"] != "dlv_1" || b["event"] != "test" || b["test"] != true || b["occurred_at"] != "2026-11-27T10:56:00Z" {
		t.Errorf("body %v", b)
	}
	if w := b["webhook"].(map[string]any); w["id"] != "ep_1" || w["name"] != "Red comments" {
		t.Errorf("webhook %v", w)
	}
	if th := b["thermometer"].(map[string]any); th["id"] != "th_42" {
		t.Errorf("thermometer %v", th)
	}
	if r := b["response"].(map[string]any); r["rating"] != "gold" || r["responded_at"] != "2026-11-27T10:56:00Z" {
		t.Errorf("response %v", r)
	}
}

// TestBodyKeepsTheResponseText: a comment's "<", ">" and "&" reach the
// receiver as sent, not six times longer as \u003c escapes.
func TestBodyKeepsTheResponseText(t *testing.T) {
	b := Body{ID: "dlv_1", Webhook: Webhook{Name: "Tickets & <alerts>"}, Response: json.RawMessage(`{"comment":"a <b> & c"}`)}.JSON()
	want := `{"id":"dlv_1","event":"","trigger":"","event_id":"","occurred_at":"","test":false,"webhook":{"id":"","name":"Tickets & <alerts>"},"thermometer":{"id":"","name":"","type":""},"response":{"comment":"a <b> & c"}}`
	if string(b) != want {
		t.Errorf("body\n got %s\nwant %s", b, want)
	}
}

// TestBodyEscapesNoncharacters: SQS refuses a message holding U+FFFE or
// U+FFFF, which encoding/json leaves as they are; the body escapes them and
// still means the same.
func TestBodyEscapesNoncharacters(t *testing.T) {
	b := Body{Webhook: Webhook{Name: "a\uffffb\ufffe"}, Response: json.RawMessage(`{}`)}.JSON()
	if !strings.Contains(string(b), `"name":"a\uffffb\ufffe"`) {
		t.Errorf("body %s, want the noncharacters escaped", b)
	}
	var back Body
	if err := json.Unmarshal(b, &back); err != nil || back.Webhook.Name != "a\uffffb\ufffe" {
		t.Errorf("body reads back as %q (%v)", back.Webhook.Name, err)
	}
}
