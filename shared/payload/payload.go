// Package payload builds the JSON body of a webhook (API.md section 3). The
// body is built once per delivery and sent unchanged on every attempt, so its
// signature covers exactly the bytes a receiver gets.
package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// Body is the webhook body.
type Body struct {
	ID          string          `json:"id"`
	Event       string          `json:"event"`
	Trigger     string          `json:"trigger"`
	EventID     string          `json:"event_id"`
	OccurredAt  string          `json:"occurred_at"`
	Test        bool            `json:"test"`
	Webhook     Webhook         `json:"webhook"`
	Thermometer Thermometer     `json:"thermometer"`
	Response    json.RawMessage `json:"response"`
}

// JSON is b as sent (see Encode).
func (b Body) JSON() []byte { return Encode(b) }

// Encode is v as JSON the way this service sends it, in webhook bodies and
// in the messages that carry them. Text stays as the survey application
// sent it: characters JSON may escape for HTML ("<", ">", "&") are not
// escaped, which would make a comment full of them up to six times longer
// than the event that carried it; U+FFFE and U+FFFF are (EscapeNoncharacters).
// v must encode: a json.RawMessage in it must be JSON, as every one here was
// parsed or built as JSON before.
func Encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("encode JSON: " + err.Error())
	}
	return EscapeNoncharacters(unescapeSeparators(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))))
}

// unescapeSeparators writes back as they were the U+2028 and U+2029 that
// encoding/json escapes in every string it encodes (for JSONP, not JSON,
// which allows them as they are): a thermometer name full of them would
// otherwise make a body twice the size of its event, over what DynamoDB
// takes in an item. b is the encoder's output, in which a backslash always
// starts an escape, so "\\u2028" (an escaped backslash, then text) stays.
func unescapeSeparators(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u202`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		if rest := b[i+1:]; bytes.HasPrefix(rest, []byte("u2028")) || bytes.HasPrefix(rest, []byte("u2029")) {
			out = utf8.AppendRune(out, rune(0x2028+int(rest[4]-'8')))
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// EscapeNoncharacters writes U+FFFE and U+FFFF, which encoding/json leaves
// as they are and SQS refuses in a message, as JSON escapes. b is JSON:
// outside strings it holds only ASCII, so every such character is inside a
// string, where the escape means the same.
func EscapeNoncharacters(b []byte) []byte {
	if !bytes.Contains(b, []byte("\xef\xbf\xbe")) && !bytes.Contains(b, []byte("\xef\xbf\xbf")) {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\xef\xbf\xbe"), []byte(`\ufffe`))
	return bytes.ReplaceAll(b, []byte("\xef\xbf\xbf"), []byte(`\uffff`))
}

// Webhook names the endpoint a body is sent to.
type Webhook struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Thermometer is the thermometer a response belongs to.
type Thermometer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// testResponse is a realistic response for test fires, so receivers (a Zap,
// a helpdesk rule) can be set up against the fields real events carry.
const testResponse = `{"id":"rsp_test","rating":"gold","comment":"This is a test webhook from Customer Thermometer.","drivers":["Friendly staff"],"blast_id":"b_test","responded_at":%q,"respondent":{"email":"test@example.com","first_name":"Test","last_name":"Recipient","company":"Example Ltd"},"custom_fields":{"custom_1":"Test value"}}`

// TestEvent is the event and trigger of a test fire.
const TestEvent = "test"

// TestEventID is the event id a test fire's body gives.
func TestEventID(deliveryID string) string { return "evt_test_" + deliveryID }

// TestThermometer is the thermometer a test fire to ep names: its first
// linked thermometer, or a sample one.
func TestThermometer(ep domain.Endpoint) Thermometer {
	if len(ep.Thermometers) > 0 {
		return Thermometer(ep.Thermometers[0])
	}
	return Thermometer{ID: "th_test", Name: "Test thermometer", Type: "email"}
}

// Test returns the body of a test fire to ep: event "test", test true,
// TestThermometer and a sample response.
func Test(ep domain.Endpoint, deliveryID string, now time.Time) []byte {
	at := now.UTC().Format(time.RFC3339)
	return Body{
		ID: deliveryID, Event: TestEvent, Trigger: TestEvent, EventID: TestEventID(deliveryID), OccurredAt: at, Test: true,
		Webhook: Webhook{ID: ep.ID, Name: ep.Name}, Thermometer: TestThermometer(ep),
		Response: json.RawMessage(fmt.Sprintf(testResponse, at)), // at is RFC 3339: %q quotes it as JSON does
	}.JSON()
}
