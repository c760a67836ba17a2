package event

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// FuzzParse: no input crashes the parser; every input is either a valid
// event whose fields hold the contract's rules, or an *Invalid with a reason.
// dateTime is RFC 3339's date-time, written out again for the fuzz oracle.
var dateTime = regexp.MustCompile(`^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$`)

func FuzzParse(f *testing.F) {
	for _, name := range []string{"sqs-rating.json", "sqs-comment.json", "sqs-driver.json", "sqs-batch-mixed.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
		if err != nil {
			f.Fatal(err)
		}
		var ev sqsEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			f.Fatal(err)
		}
		for _, r := range ev.Records {
			f.Add([]byte(r.Body))
		}
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"version":1,"event_id":"e","type":"rating","account_id":"a","occurred_at":"2026-11-27t10:55:03z","thermometer":{"id":"t","type":"email"},"response":{"id":"r","rating":"red","Rating":"gold"}}`))
	f.Add([]byte(`{"version":1,"event_id":"e","type":"rating","account_id":"a","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"t","type":"email"},"response":{"id":"r","rating":"red","rating":"gold"}}`))
	f.Add([]byte(`{"version":1,"EVENT_ID":"e","type":"rating","account_id":"a","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"ID":"t","id":"u","type":"email"},"response":{"id":"r","rating":"red"}}`))
	// One rule broken each, so that the seeds alone catch a rule dropped.
	for _, change := range [][2]string{
		{`"account_id":"a"`, `"account_id":"a b"`}, {`"type":"email"`, `"type":"sms"`},
		{`"occurred_at":"2026-11-27T10:55:03Z"`, `"occurred_at":"2026-11-27T10:55:03,5Z"`},
		{`"rating":"red"}`, `"rating":"red","custom_fields":{"custom_1":null}}`}, {`"rating":"red"}`, `"rating":"red","custom_fields":{"custom_13":"x"}}`},
	} {
		f.Add([]byte(strings.Replace(`{"version":1,"event_id":"e","type":"rating","account_id":"a","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"t","type":"email"},"response":{"id":"r","rating":"red"}}`, change[0], change[1], 1)))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Parse(body)
		if err != nil {
			var inv *Invalid
			if !errors.As(err, &inv) || inv.Reason == "" {
				t.Fatalf("error %v is not an *Invalid with a reason", err)
			}
			return
		}
		if e.Version != 1 || !idPattern.MatchString(e.ID) || !idPattern.MatchString(e.Thermometer.ID) || e.ResponseID == "" || !json.Valid(e.Response) ||
			!domain.ValidAccountID(e.AccountID) || e.Thermometer.Type != "email" && e.Thermometer.Type != "embedded" || len(body) > MaxSize || e.OccurredAt.IsZero() {
			t.Fatalf("accepted an event that breaks the rules: %+v", e)
		}
		// occurred_at as sent (by exact key) was an RFC 3339 date-time, and
		// the ids are the exact keys' values.
		var top, th map[string]json.RawMessage
		var at, id, account, thID string
		if json.Unmarshal(body, &top) != nil || json.Unmarshal(top["occurred_at"], &at) != nil || json.Unmarshal(top["event_id"], &id) != nil ||
			json.Unmarshal(top["account_id"], &account) != nil || json.Unmarshal(top["thermometer"], &th) != nil || json.Unmarshal(th["id"], &thID) != nil {
			t.Fatalf("accepted a body without the exact keys: %q", body)
		}
		if !dateTime.MatchString(at) || id != e.ID || account != e.AccountID || thID != e.Thermometer.ID {
			t.Fatalf("accepted occurred_at %q, ids %q %q %q for %+v", at, id, account, thID, e)
		}
		// Custom fields (by exact key, as receivers read them): at most 12,
		// named custom_1 … custom_12, strings.
		var fields map[string]json.RawMessage
		var cf map[string]any
		_ = json.Unmarshal(e.Response, &fields)
		_ = json.Unmarshal(fields["custom_fields"], &cf)
		for k, v := range cf {
			if _, ok := v.(string); !ok || !customKey(k) || len(cf) > 12 {
				t.Fatalf("accepted custom field %q: %v", k, v)
			}
		}
		switch e.Trigger() {
		case "rating.gold", "rating.green", "rating.amber", "rating.red", "comment.gold", "comment.green", "comment.amber", "comment.red",
			"driver.gold", "driver.green", "driver.amber", "driver.red":
		default:
			t.Fatalf("accepted trigger %q", e.Trigger())
		}
		// Routed by what receivers read: the response's "rating", by its
		// exact key.
		var r map[string]any
		if err := json.Unmarshal(e.Response, &r); err != nil || r["rating"] != e.Rating || r["id"] != e.ResponseID {
			t.Fatalf("routed as %s for response %s", e.Trigger(), e.Response)
		}
	})
}
