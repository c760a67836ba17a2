package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/store"
)

// lambdaResponseLimit is the most a Lambda function may return; API
// Gateway answers a larger response with a 502 of its own.
const lambdaResponseLimit = 6 << 20

// envelopeSize is the size of an answer as the function returns it to API
// Gateway: the body as a JSON string, with the status and headers.
func envelopeSize(t *testing.T, r resp) int {
	t.Helper()
	b, err := json.Marshal(map[string]any{"statusCode": r.status, "headers": map[string]string{"Content-Type": "application/json"}, "body": string(r.body)})
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestALargeInvalidBodyGetsASmallAnswer: a 64 KiB body can break tens of
// thousands of rules (an array of empty objects); the answer names at most
// MaxDetails of them, and stays small, where it once took megabytes (9 MB
// for 21,800 thermometers, past what Lambda returns) and seconds of CPU.
func TestALargeInvalidBodyGetsASmallAnswer(t *testing.T) {
	e := newEnv(t)
	ep := e.do("POST", "/v1/endpoints", e.key, `{"name":"n","url":"https://example.com/hook","triggers":["*"]}`).json(t)["id"].(string)
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"21,800 thermometers", "PUT", "/v1/endpoints/" + ep + "/thermometers",
			`{"thermometers":[` + strings.TrimSuffix(strings.Repeat(`{},`, 21800), ",") + `]}`},
		{"101 thermometers", "PUT", "/v1/endpoints/" + ep + "/thermometers",
			`{"thermometers":[` + strings.TrimSuffix(strings.Repeat(`{"id":"th_1","name":"a","type":"email"},`, 101), ",") + `]}`},
		{"20,000 empty triggers", "POST", "/v1/endpoints",
			`{"name":"n","url":"https://example.com/","triggers":[` + strings.TrimSuffix(strings.Repeat(`"",`, 20000), ",") + `]}`},
		{"17 triggers", "POST", "/v1/endpoints",
			`{"name":"n","url":"https://example.com/","triggers":[` + strings.TrimSuffix(strings.Repeat(`"*",`, 17), ",") + `]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.key, tc.body)
			var body errorBody
			if err := json.Unmarshal(r.body, &body); err != nil || r.status != 422 {
				t.Fatalf("%d %.300s", r.status, r.body)
			}
			if len(body.Error.Details) == 0 || len(body.Error.Details) > domain.MaxDetails || len(r.body) > 16<<10 {
				t.Errorf("%d details, %d bytes: %.300s", len(body.Error.Details), len(r.body), r.body)
			}
		})
	}
}

// TestValidationMessagesCountWhatTheyLeaveOut: past ten broken rules the
// message counts the rest, and past MaxDetails the details stop too.
func TestValidationMessagesCountWhatTheyLeaveOut(t *testing.T) {
	var v domain.ValidationError
	for i := range 60 {
		v.Add(fmt.Sprintf("f%d", i), "is wrong")
	}
	var de *domain.Error
	if err := v.Err(); err == nil || !asError(err, &de) {
		t.Fatalf("%v", err)
	}
	if len(de.Details) != domain.MaxDetails || !strings.HasSuffix(de.Message, "; and 50 more (details lists the first 50)") || !strings.HasPrefix(de.Message, "f0: is wrong; f1: is wrong;") {
		t.Errorf("%d details, message %q", len(de.Details), de.Message)
	}
	if !v.Has("f59") || v.Has("f60") {
		t.Error("Has does not know every field named, or knows one never named")
	}
}

func asError(err error, target **domain.Error) bool {
	e, ok := err.(*domain.Error)
	*target = e
	return ok
}

// TestANullStringIsNotAnEmptyOne: JSON null in an array of strings is a
// wrong type (400), not the empty string it would decode to.
func TestANullStringIsNotAnEmptyOne(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/endpoints", e.key, `{"name":"n","url":"https://example.com/","triggers":["*",null]}`)
	if r.status != 400 || r.code() != "invalid_json" {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// TestNamesMustReadAsWhatTheyAre: names shown to people refuse blank values,
// spaces around them, and characters that reorder or hide text.
func TestNamesMustReadAsWhatTheyAre(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, body string
		field      string
	}{
		{"blank name", `{"name":"   ","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"padded name", `{"name":" Helpdesk","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"zero-width name", `{"name":"\u200b\u200b","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"override in a name", `{"name":"invoice\u202efdp.exe","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"line separator in a name", `{"name":"a\u2028b","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"noncharacter in a name", `{"name":"a\uffff","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"Hangul filler name", `{"name":"\u3164","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"braille blank name", `{"name":"\u2800\u2800","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"name led by a filler", `{"name":"\u3164Helpdesk","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"name ending in a direction mark", `{"name":"Helpdesk\u200e","url":"https://example.com/","triggers":["*"]}`, "name"},
		{"override in a username", `{"name":"n","url":"https://example.com/","triggers":["*"],"basic_auth":{"username":"a\u202eb","password":"p"}}`, "basic_auth.username"},
		{"override in a URL", `{"name":"n","url":"https://example.com/a\u202eb","triggers":["*"]}`, "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/endpoints", e.key, tc.body)
			var body errorBody
			_ = json.Unmarshal(r.body, &body)
			if r.status != 422 || len(body.Error.Details) != 1 || body.Error.Details[0].Field != tc.field {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	// What people do write is kept.
	for _, name := range []string{"Réclamations · Support 🔥", "שירות לקוחות", "Q&A <survey>", "👨\u200d👩\u200d👧 team", "Support ❤️", "e\u0301", "한국 지원팀", "1️⃣"} {
		b, _ := json.Marshal(map[string]any{"name": name, "url": "https://example.com/", "triggers": []string{"*"}})
		if r := e.do("POST", "/v1/endpoints", e.key, string(b)); r.status != 201 || r.json(t)["name"] != name {
			t.Errorf("%q: %d %s", name, r.status, r.body)
		}
	}
	ep := e.do("POST", "/v1/endpoints", e.key, `{"name":"n","url":"https://example.com/","triggers":["*"]}`).json(t)["id"].(string)
	r := e.do("PUT", "/v1/endpoints/"+ep+"/thermometers", e.key, `{"thermometers":[{"id":"th_1","name":" x","type":"email"}]}`)
	if r.status != 422 || !strings.Contains(string(r.body), "thermometers[0].name") {
		t.Errorf("padded thermometer name: %d %s", r.status, r.body)
	}
}

// TestThePayloadIsShownAsItWasSent: the log's payload is the body that was
// sent and signed, byte for byte; HTML characters are not re-escaped (which
// made a payload of "<" six times its size).
func TestThePayloadIsShownAsItWasSent(t *testing.T) {
	e := newEnv(t)
	d := e.delivery(e.account, "ep_00000000000000000000000000", "failed", time.Now().UTC(), 1)
	sent := `{"id":"` + d.ID + `","response":{"comment":"<b>Q&A</b> ` + strings.Repeat("<", 100<<10) + `"}}`
	if err := e.st.PutLogItems(context.Background(), []store.LogItem{{AccountID: e.account, DeliveryID: d.ID, Payload: []byte(sent), Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/deliveries/"+d.ID, e.key, "")
	var got struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || string(got.Payload) != sent {
		t.Errorf("%d: payload of %d bytes shown in %d: %.200s", r.status, len(sent), len(got.Payload), got.Payload)
	}
}

// TestADeliveryShowsItsLatestAttempts: a delivery redelivered again and
// again shows its latest MaxAttemptsShown attempts and says earlier ones
// were left out, so its answer stays within what Lambda returns.
func TestADeliveryShowsItsLatestAttempts(t *testing.T) {
	e := newEnv(t)
	few := e.delivery(e.account, "ep_00000000000000000000000000", "failed", time.Now().UTC(), 3)
	r := e.do("GET", "/v1/deliveries/"+few.ID, e.key, "")
	var got struct {
		Attempts []struct {
			Number int `json:"number"`
		} `json:"attempts"`
		Truncated *bool `json:"attempts_truncated"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Attempts) != 3 || got.Truncated == nil || *got.Truncated {
		t.Fatalf("%d %.300s", r.status, r.body)
	}

	const n = MaxAttemptsShown + 50
	many := e.delivery(e.account, "ep_00000000000000000000000000", "failed", time.Now().UTC(), 0)
	var items []store.LogItem
	for i := 1; i <= n; i++ {
		items = append(items, store.LogItem{AccountID: e.account, DeliveryID: many.ID, Expires: time.Now().Add(time.Hour),
			Attempt: &domain.Attempt{Number: i, At: time.Now().Add(time.Duration(i) * time.Second), StatusCode: 503, LatencyMS: 40,
				Error: "receiver answered 503", ResponseBody: strings.Repeat("<", 1024)}})
	}
	if err := e.st.PutLogItems(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/v1/deliveries/"+many.ID, e.key, "")
	got.Attempts, got.Truncated = nil, nil
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Attempts) != MaxAttemptsShown || got.Truncated == nil || !*got.Truncated {
		t.Fatalf("%d attempts, truncated %v: %.300s", len(got.Attempts), got.Truncated, r.body)
	}
	for i, a := range got.Attempts {
		if want := n - MaxAttemptsShown + 1 + i; a.Number != want {
			t.Fatalf("attempt %d is number %d, want %d (the latest, oldest first)", i, a.Number, want)
		}
	}
	if size := envelopeSize(t, r); size > 1<<20 {
		t.Errorf("the answer takes %d bytes", size)
	}
}

// bigEndpoints answers ListEndpoints with endpoints that each link 100
// thermometers with long names, about 60 KB of JSON each.
type bigEndpoints struct{ endpointStore }

func (bigEndpoints) ListEndpoints(_ context.Context, account string, limit int, after string) ([]domain.Endpoint, bool, error) {
	var out []domain.Endpoint
	for i := range limit {
		e := domain.Endpoint{ID: fmt.Sprintf("ep_%026d", i+1), AccountID: account, Name: "n", URL: "https://example.com/" + strings.Repeat("a", 2000),
			Triggers: []string{"*"}, Enabled: true, Tested: true}
		for j := range domain.MaxThermometers {
			e.Thermometers = append(e.Thermometers, domain.Thermometer{ID: fmt.Sprintf("%0128d", j), Name: strings.Repeat("\u2028x", 100)[:200], Type: "email"})
		}
		out = append(out, e)
	}
	return out, true, nil
}

// TestAPageOfEndpointsStaysWithinWhatLambdaReturns: a page of 100 endpoints
// that each link 100 thermometers would be far over 6 MB; the page ends at
// maxPageBytes of JSON and its cursor continues after its last endpoint.
func TestAPageOfEndpointsStaysWithinWhatLambdaReturns(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.Endpoints = bigEndpoints{d.Endpoints} })
	r := e.do("GET", "/v1/endpoints?limit=100", e.key, "")
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != 200 {
		t.Fatalf("%d %.300s", r.status, r.body)
	}
	if len(page.Data) == 0 || len(page.Data) == 100 || page.NextCursor == nil || len(r.body) > maxPageBytes+4096 || envelopeSize(t, r) > lambdaResponseLimit {
		t.Fatalf("%d endpoints, %d bytes (%d returned to API Gateway), cursor %v", len(page.Data), len(r.body), envelopeSize(t, r), page.NextCursor != nil)
	}
	pos, err := e.deps.Cursors.Open(e.account+"/endpoints", *page.NextCursor)
	if err != nil || string(pos) != page.Data[len(page.Data)-1].ID {
		t.Errorf("the cursor continues after %q, not after the page's last endpoint %s", pos, page.Data[len(page.Data)-1].ID)
	}
}
