package event

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input crashes the parser; every input is either a valid
// event whose fields hold the contract's rules, or an *Invalid with a reason.
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
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Parse(body)
		if err != nil {
			var inv *Invalid
			if !errors.As(err, &inv) || inv.Reason == "" {
				t.Fatalf("error %v is not an *Invalid with a reason", err)
			}
			return
		}
		if e.Version != 1 || !idPattern.MatchString(e.ID) || !idPattern.MatchString(e.Thermometer.ID) || e.ResponseID == "" || !json.Valid(e.Response) {
			t.Fatalf("accepted an event that breaks the rules: %+v", e)
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
