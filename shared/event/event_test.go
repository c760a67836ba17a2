package event

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type sqsEvent struct {
	Records []struct {
		MessageID string `json:"messageId"`
		Body      string `json:"body"`
	} `json:"Records"`
}

func loadSample(t *testing.T, name string) sqsEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev sqsEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestSamplesParse(t *testing.T) {
	for name, want := range map[string]string{"sqs-rating.json": "rating.gold", "sqs-comment.json": "comment.red", "sqs-driver.json": "driver.amber"} {
		ev := loadSample(t, name)
		e, err := Parse([]byte(ev.Records[0].Body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.Trigger() != want || e.AccountID != "acc_123" || e.Thermometer.ID != "th_42" || e.Thermometer.Name != "Support tickets" {
			t.Errorf("%s: %+v", name, e)
		}
		if !e.OccurredAt.Equal(time.Date(2026, 11, 27, 10, 55, 3, 0, time.UTC)) {
			t.Errorf("%s: occurred_at %v", name, e.OccurredAt)
		}
		var resp map[string]any
		if err := json.Unmarshal(e.Response, &resp); err != nil || resp["respondent"] == nil {
			t.Errorf("%s: response not kept as received: %s", name, e.Response)
		}
	}
}

// TestTheProducersGuideExample: the event docs/producing.md shows is valid,
// and an example reason it quotes is the one the service gives.
func TestTheProducersGuideExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "producing.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "```json\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok {
		t.Fatal("no JSON example in docs/producing.md")
	}
	e, err := Parse([]byte(block))
	if err != nil || e.Trigger() != "comment.red" {
		t.Fatalf("the guide's example: %+v, %v", e, err)
	}
	_, err = Parse([]byte(strings.Replace(block, `"rating": "red"`, `"rating": "purple"`, 1)))
	var inv *Invalid
	quoted := strings.Join(strings.Fields(`response.rating "purple" is
not one of gold, green, amber, red`), " ")
	if !errors.As(err, &inv) || inv.Reason != quoted || !strings.Contains(strings.Join(strings.Fields(string(b)), " "), quoted) {
		t.Errorf("reason %v; the guide quotes %q", err, quoted)
	}
}

func TestMixedBatchSample(t *testing.T) {
	ev := loadSample(t, "sqs-batch-mixed.json")
	want := []string{"", "not a JSON object", "type \"complaint\"", "account_id is required", "", "response.rating \"purple\""}
	if len(ev.Records) != len(want) {
		t.Fatalf("%d records", len(ev.Records))
	}
	for i, r := range ev.Records {
		_, err := Parse([]byte(r.Body))
		var inv *Invalid
		if want[i] == "" {
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			continue
		}
		if !errors.As(err, &inv) || !strings.Contains(inv.Reason, want[i]) {
			t.Errorf("record %d: %v, want a reason with %q", i, err, want[i])
		}
	}
}

// nested is n arrays, one inside the other.
func nested(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func TestRules(t *testing.T) {
	valid := map[string]any{
		"version": 1, "event_id": "evt_1", "type": "comment", "account_id": "acc_1", "occurred_at": "2026-11-27T10:55:03Z",
		"thermometer":  map[string]any{"id": "th_1", "type": "embedded"},
		"response":     map[string]any{"id": "rsp_1", "rating": "amber", "unknown_extra": true},
		"future_field": "tolerated",
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
		reason string
	}{
		{"valid", func(map[string]any) {}, ""},
		{"version 2", func(m map[string]any) { m["version"] = 2 }, "version 2"},
		{"no version", func(m map[string]any) { delete(m, "version") }, "version is required"},
		{"bad event id", func(m map[string]any) { m["event_id"] = "evt 1" }, "event_id"},
		{"long event id", func(m map[string]any) { m["event_id"] = strings.Repeat("e", 129) }, "event_id"},
		{"no type", func(m map[string]any) { delete(m, "type") }, "type is required"},
		{"bad account", func(m map[string]any) { m["account_id"] = "" }, "account_id"},
		{"bad time", func(m map[string]any) { m["occurred_at"] = "yesterday" }, "occurred_at"},
		{"no thermometer", func(m map[string]any) { delete(m, "thermometer") }, "thermometer is required"},
		{"thermometer without id", func(m map[string]any) { m["thermometer"] = map[string]any{"type": "email"} }, "thermometer.id"},
		{"thermometer bad type", func(m map[string]any) { m["thermometer"] = map[string]any{"id": "t", "type": "sms"} }, "thermometer.type"},
		{"no response", func(m map[string]any) { delete(m, "response") }, "response is required"},
		{"null response", func(m map[string]any) { m["response"] = nil }, "response is required"},
		{"response without id", func(m map[string]any) { m["response"] = map[string]any{"rating": "gold"} }, "response.id"},
		{"response without rating", func(m map[string]any) { m["response"] = map[string]any{"id": "r"} }, "response.rating is required"},
		{"13 custom fields", func(m map[string]any) {
			cf := map[string]any{}
			for i := 1; i <= 13; i++ {
				cf["custom_"+string(rune('a'+i))] = "x"
			}
			m["response"] = map[string]any{"id": "r", "rating": "gold", "custom_fields": cf}
		}, "at most 12"},
		{"bad custom key", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "custom_fields": map[string]any{"custom_13": "x"}}
		}, "custom_13"},
		{"custom value not a string", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "custom_fields": map[string]any{"custom_1": 5}}
		}, "response does not match"},
		{"custom value null", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "custom_fields": map[string]any{"custom_1": nil}}
		}, "custom_fields.custom_1 is null"},
		{"driver null", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "drivers": []any{"Speed", nil}}
		}, "drivers[1] is null"},
		{"rating of another case only", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "Rating": "gold"}
		}, "response.rating is required"},
		{"event_id of another case only", func(m map[string]any) { m["EVENT_ID"] = m["event_id"]; delete(m, "event_id") }, "event_id is required"},
		{"account_id of another case only", func(m map[string]any) { m["Account_Id"] = m["account_id"]; delete(m, "account_id") }, "account_id is required"},
		{"thermometer id of another case only", func(m map[string]any) { m["thermometer"] = map[string]any{"ID": "th_1", "type": "email"} }, "thermometer.id is required"},
		{"thermometer null", func(m map[string]any) { m["thermometer"] = nil }, "thermometer is required"},
		{"thermometer not an object", func(m map[string]any) { m["thermometer"] = "th_1" }, "thermometer does not match the schema"},
		{"lower-case t and z", func(m map[string]any) { m["occurred_at"] = "2026-11-27t10:55:03.25z" }, ""},
		{"offset", func(m map[string]any) { m["occurred_at"] = "2026-11-27T12:55:03+02:00" }, ""},
		{"comma fraction", func(m map[string]any) { m["occurred_at"] = "2026-11-27T10:55:03,5Z" }, "occurred_at"},
		{"offset hour 24", func(m map[string]any) { m["occurred_at"] = "2026-11-27T10:55:03+24:00" }, "occurred_at"},
		{"offset minute 60", func(m map[string]any) { m["occurred_at"] = "2026-11-27T10:55:03+23:60" }, "occurred_at"},
		{"leap second", func(m map[string]any) { m["occurred_at"] = "2016-12-31T23:59:60Z" }, ""},
		{"no zone", func(m map[string]any) { m["occurred_at"] = "2026-11-27T10:55:03" }, "occurred_at"},
		{"type of wrong JSON type", func(m map[string]any) { m["type"] = 5 }, "not a JSON object of the event schema"},
		{"year 9999 at its last hour", func(m map[string]any) { m["occurred_at"] = "9999-12-31T23:00:00Z" }, ""},
		{"year 10000 in UTC", func(m map[string]any) { m["occurred_at"] = "9999-12-31T23:00:00-05:00" }, "falls outside the years 0000-9999"},
		{"leap second into year 10000", func(m map[string]any) { m["occurred_at"] = "9999-12-31T23:59:60Z" }, "falls outside"},
		{"year 0", func(m map[string]any) { m["occurred_at"] = "0000-01-01T00:30:00Z" }, ""},
		{"year -1 in UTC", func(m map[string]any) { m["occurred_at"] = "0000-01-01T00:30:00+01:00" }, "falls outside"},
		{"nested as deep as allowed", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "x": nested(MaxDepth - 2)}
		}, ""},
		{"nested too deep", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "x": nested(MaxDepth - 1)}
		}, "nests objects and arrays more than 64 deep"},
		{"brackets in strings", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "comment": strings.Repeat("[{\\\"", 500)}
		}, ""},
		{"too large", func(m map[string]any) {
			m["response"] = map[string]any{"id": "r", "rating": "gold", "comment": strings.Repeat("long ", MaxSize/5)}
		}, "at most 245760"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]any{}
			b, _ := json.Marshal(valid)
			_ = json.Unmarshal(b, &m)
			tc.change(m)
			b, _ = json.Marshal(m)
			_, err := Parse(b)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var inv *Invalid
			if !errors.As(err, &inv) || !strings.Contains(inv.Reason, tc.reason) {
				t.Fatalf("err %v, want reason with %q", err, tc.reason)
			}
		})
	}
	if _, err := Parse([]byte{0xff, 0xfe}); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if e, err := Parse([]byte(`{"version":1,"event_id":"evt_1","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27t10:55:03z",` +
		`"thermometer":{"id":"th_1","type":"email"},"response":{"id":"rsp_1","rating":"red","Rating":"gold","ID":""}}`)); err != nil || e.Trigger() != "rating.red" || e.ResponseID != "rsp_1" || !e.OccurredAt.Equal(time.Date(2026, 11, 27, 10, 55, 3, 0, time.UTC)) {
		t.Errorf("keys of another case: %+v, %v; want routed by the exact keys receivers read", e, err)
	}
	// Keys that differ only in lone surrogates (which decoding makes alike)
	// are not repeated; a custom field given twice is.
	base := `{"version":1,"event_id":"evt_1","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_1","type":"email"},"response":`
	if _, err := Parse([]byte(base + `{"id":"r","rating":"gold","x\ud800":1,"x\udbff":2}}`)); err != nil {
		t.Errorf("distinct keys taken for one: %v", err)
	}
	var dup *Invalid
	if _, err := Parse([]byte(base + `{"id":"r","rating":"gold","custom_fields":{"custom_1":"a","custom_1":"b"}}}`)); !errors.As(err, &dup) || !strings.Contains(dup.Reason, `custom_fields: key "custom_1" appears twice`) {
		t.Errorf("a repeated custom field: %v", err)
	}
	var inv *Invalid
	if _, err := Parse([]byte(`{"version":1,"event_id":"evt_1","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z",` +
		`"thermometer":{"id":"th_1","type":"email"},"response":{"id":"rsp_1","rating":"red","rating":"gold"}}`)); !errors.As(err, &inv) || !strings.Contains(inv.Reason, `key "rating" appears twice`) {
		t.Errorf("a repeated key: %v", err)
	}
	for _, body := range []string{
		`{"version":1,"event_id":"evt_1","type":"rating","type":"driver","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_1","type":"email"},"response":{"id":"rsp_1","rating":"red"}}`,
		`{"version":1,"event_id":"evt_1","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_1","type":"email","type":"embedded"},"response":{"id":"rsp_1","rating":"red"}}`,
	} {
		if _, err := Parse([]byte(body)); !errors.As(err, &inv) || !strings.Contains(inv.Reason, `key "type" appears twice`) {
			t.Errorf("a repeated key outside the response: %v", err)
		}
	}
}
