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

// TestBodyKeepsLineSeparators: encoding/json escapes U+2028 and U+2029 in
// every string, six bytes for three; a thermometer name of them would make
// a body twice the size of its event, over what DynamoDB takes in an item.
// The body keeps them as they are (JSON allows it), and still means the
// same, text that only looks like their escape included.
func TestBodyKeepsLineSeparators(t *testing.T) {
	name := strings.Repeat("\u2028\u2029", 1000) + `\u2028 "quoted" \\u2029`
	b := Body{Thermometer: Thermometer{Name: name}, Response: json.RawMessage("{\"comment\":\"a\u2028b\"}")}.JSON()
	if len(b) > len(name)+300 {
		t.Errorf("a %d-byte name makes a %d-byte body", len(name), len(b))
	}
	var back Body
	if err := json.Unmarshal(b, &back); err != nil || back.Thermometer.Name != name || string(back.Response) != "{\"comment\":\"a\u2028b\"}" {
		t.Errorf("body reads back as %q, %s (%v)", back.Thermometer.Name[len(back.Thermometer.Name)-30:], back.Response, err)
	}
	if !strings.Contains(string(b), `\\u2028 \"quoted\" \\\\u2029`) {
		t.Errorf("text that looks like an escape changed: %s", b[len(b)-120:])
	}
}
