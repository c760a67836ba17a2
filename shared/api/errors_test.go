package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestErrorCodes covers every error code of the contract, with the field
// each validation problem names.
func TestErrorCodes(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)
	id := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	ep := "/v1/endpoints/" + id
	valid := `{"name":"n","url":"https://example.com/h","triggers":["*"]}`
	big := `{"name":"` + strings.Repeat("x", MaxBody) + `"}`

	for _, tc := range []struct {
		name, method, path, key, body string
		headers                       []string
		status                        int
		code                          string
		fields                        []string // named in details
	}{
		{"create ok", "POST", "/v1/endpoints", "k", valid, nil, 201, "", nil},
		{"malformed JSON", "POST", "/v1/endpoints", "k", `{"name":`, nil, 400, "invalid_json", nil},
		{"not an object", "POST", "/v1/endpoints", "k", `["name"]`, nil, 400, "invalid_json", nil},
		{"trailing data", "POST", "/v1/endpoints", "k", valid + `{}`, nil, 400, "invalid_json", nil},
		{"empty body", "POST", "/v1/endpoints", "k", " ", nil, 400, "invalid_json", nil},
		{"name of wrong type", "POST", "/v1/endpoints", "k", `{"name":5,"url":"https://example.com","triggers":["*"]}`, nil, 400, "invalid_json", []string{"name"}},
		{"triggers of wrong type", "POST", "/v1/endpoints", "k", `{"name":"n","url":"https://example.com","triggers":"*"}`, nil, 400, "invalid_json", []string{"triggers"}},
		{"enabled of wrong type", "POST", "/v1/endpoints", "k", `{"name":"n","url":"https://example.com","triggers":["*"],"enabled":"yes"}`, nil, 400, "invalid_json", []string{"enabled"}},
		{"basic_auth of wrong type", "POST", "/v1/endpoints", "k", `{"name":"n","url":"https://example.com","triggers":["*"],"basic_auth":"ct:pw"}`, nil, 400, "invalid_json", []string{"basic_auth"}},
		{"null name", "POST", "/v1/endpoints", "k", `{"name":null,"url":"https://example.com","triggers":["*"]}`, nil, 400, "invalid_json", []string{"name"}},
		{"invalid UTF-8", "POST", "/v1/endpoints", "k", "{\"name\":\"\xff\"}", nil, 400, "invalid_json", nil},
		{"missing fields", "POST", "/v1/endpoints", "k", `{}`, nil, 422, "validation_failed", []string{"name", "url", "triggers"}},
		{"unknown fields", "POST", "/v1/endpoints", "k", `{"name":"n","url":"https://example.com","triggers":["*"],"secret":"mine","colour":"red"}`, nil, 422, "validation_failed", []string{"secret", "colour"}},
		{"every rule at once", "POST", "/v1/endpoints", "k", `{"name":"","url":"https://example.com:8443/#x","triggers":["comment.purple"],"basic_auth":{"username":"a:b","password":"","extra":1}}`, nil, 422, "validation_failed",
			[]string{"name", "url", "triggers[0]", "basic_auth.username", "basic_auth.password", "basic_auth.extra"}},
		{"private target", "POST", "/v1/endpoints", "k", `{"name":"n","url":"http://169.254.169.254/latest","triggers":["*"]}`, nil, 422, "validation_failed", []string{"url"}},
		{"no triggers", "POST", "/v1/endpoints", "k", `{"name":"n","url":"https://example.com","triggers":[]}`, nil, 422, "validation_failed", []string{"triggers"}},
		{"basic auth without password", "POST", "/v1/endpoints", "k", `{"name":"n","url":"https://example.com","triggers":["*"],"basic_auth":{"username":"u"}}`, nil, 422, "validation_failed", []string{"basic_auth.password"}},
		{"empty patch", "PATCH", ep, "k", `{}`, nil, 422, "validation_failed", nil},
		{"patch bad url", "PATCH", ep, "k", `{"url":"ftp://example.com"}`, nil, 422, "validation_failed", []string{"url"}},
		{"bad limit", "GET", "/v1/endpoints?limit=500", "k", "", nil, 422, "validation_failed", []string{"limit"}},
		{"unknown query parameter", "GET", "/v1/endpoints?page=2", "k", "", nil, 422, "validation_failed", []string{"page"}},
		{"bad thermometers", "PUT", ep + "/thermometers", "k", `{"thermometers":[{"id":"th 1","name":"","type":"sms"},{"id":"th_2","name":"x","type":"email","extra":1}]}`, nil, 422, "validation_failed",
			[]string{"thermometers[0].id", "thermometers[0].name", "thermometers[0].type", "thermometers[1].extra"}},
		{"thermometer without name", "PUT", ep + "/thermometers", "k", `{"thermometers":[{"id":"th_42","type":"email"}]}`, nil, 422, "validation_failed", []string{"thermometers[0].name"}},
		{"duplicate thermometers", "PUT", ep + "/thermometers", "k", `{"thermometers":[{"id":"th_1","name":"a","type":"email"},{"id":"th_1","name":"b","type":"email"}]}`, nil, 422, "validation_failed", []string{"thermometers[1].id"}},
		{"thermometers not objects", "PUT", ep + "/thermometers", "k", `{"thermometers":[1]}`, nil, 400, "invalid_json", []string{"thermometers[0]"}},
		{"test with fields", "POST", ep + "/test", "k", `{"url":"https://example.com"}`, nil, 422, "validation_failed", []string{"url"}},
		{"tampered cursor", "GET", "/v1/endpoints?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "k", "", nil, 400, "invalid_cursor", nil},
		{"garbage cursor", "GET", "/v1/endpoints?cursor=%25%25", "k", "", nil, 400, "invalid_cursor", nil},
		{"no key", "GET", "/v1/endpoints", "", "", nil, 401, "unauthorized", nil},
		{"unknown key", "GET", "/v1/endpoints", "ctwh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", nil, 401, "unauthorized", nil},
		{"basic scheme", "GET", "/v1/endpoints", "", "", []string{"Authorization", "Basic Y3Q6cHc="}, 401, "unauthorized", nil},
		{"unknown id", "GET", "/v1/endpoints/ep_00000000000000000000000000", "k", "", nil, 404, "not_found", nil},
		{"malformed id", "GET", "/v1/endpoints/../../etc", "k", "", nil, 404, "not_found", nil},
		{"unknown route", "GET", "/v1/webhooks", "k", "", nil, 404, "not_found", nil},
		{"outside /v1", "GET", "/", "", "", nil, 404, "not_found", nil},
		{"outside /v1 with a key", "POST", "/wp-login.php", "k", "", nil, 404, "not_found", nil},
		{"wrong method", "PUT", "/v1/endpoints", "k", valid, nil, 405, "method_not_allowed", nil},
		{"wrong method on id", "POST", ep, "k", valid, nil, 405, "method_not_allowed", nil},
		{"too large", "POST", "/v1/endpoints", "k", big, nil, 413, "payload_too_large", nil},
		{"form body", "POST", "/v1/endpoints", "k", "name=n", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", nil},
		{"no content type", "PATCH", ep, "k", `{"name":"n"}`, []string{"Content-Type", ""}, 415, "unsupported_media_type", nil},
		{"latin-1 JSON", "PATCH", ep, "k", `{"name":"n"}`, []string{"Content-Type", "application/json; charset=latin-1"}, 415, "unsupported_media_type", nil},
		{"json with utf-8 charset", "PATCH", ep, "k", `{"name":"n"}`, []string{"Content-Type", "application/json; charset=UTF-8"}, 200, "", nil},
		{"link before test", "PUT", ep + "/thermometers", "k", `{"thermometers":[{"id":"th_1","name":"a","type":"email"}]}`, nil, 409, "endpoint_not_tested", nil},
		{"unlink before test", "PUT", ep + "/thermometers", "k", `{"thermometers":[]}`, nil, 200, "", nil},
		{"malformed query", "GET", "/v1/deliveries?status=failed;", "k", "", nil, 422, "validation_failed", []string{"query"}},
		{"bad escape in query", "GET", "/v1/endpoints?limit=5%zz", "k", "", nil, 422, "validation_failed", []string{"query"}},
		{"lone surrogate", "PATCH", ep, "k", `{"name":"a\ud800b"}`, nil, 400, "invalid_json", nil},
		{"lone low surrogate", "PATCH", ep, "k", `{"name":"\udc00"}`, nil, 400, "invalid_json", nil},
		{"high surrogate then other escape", "PATCH", ep, "k", `{"name":"\ud83d\u0041"}`, nil, 400, "invalid_json", nil},
		{"surrogate pair", "PATCH", ep, "k", `{"name":"smile \ud83d\ude00 \\ud800"}`, nil, 200, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "k" {
				key = e.key
			}
			r := e.do(tc.method, tc.path, key, tc.body, tc.headers...)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if (tc.status == 401) != (r.header.Get("WWW-Authenticate") == "Bearer") {
				t.Errorf("WWW-Authenticate %q on a %d", r.header.Get("WWW-Authenticate"), r.status)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if tc.code == "" {
				return
			}
			var body errorBody
			_ = r.json(t)
			if err := json.Unmarshal(r.body, &body); err != nil || body.Error.Message == "" {
				t.Fatalf("error shape: %s", r.body)
			}
			// The one shape: details always present, [] when no field is named.
			var shape struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if _ = json.Unmarshal(r.body, &shape); len(shape.Error["details"]) == 0 || shape.Error["details"][0] != '[' {
				t.Errorf("error without a details array: %s", r.body)
			}
			named := map[string]bool{}
			required := map[string]int{} // a missing field breaks one rule only
			for _, d := range body.Error.Details {
				if named[d.Field] && required[d.Field] > 0 || d.Message == "is required" && named[d.Field] {
					t.Errorf("details name missing %s twice: %s", d.Field, r.body)
				}
				if d.Message == "is required" {
					required[d.Field]++
				}
				named[d.Field] = true
				if d.Message == "" {
					t.Errorf("detail for %s has no message", d.Field)
				}
			}
			for _, f := range tc.fields {
				if !named[f] {
					t.Errorf("details do not name %s: %s", f, r.body)
				}
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.RateLimitPerMinute = 3 })
	for i := 0; i < 3; i++ {
		if r := e.do("GET", "/v1/endpoints", e.key, ""); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.do("GET", "/v1/endpoints", e.key, "")
	if r.status != 429 || r.code() != "rate_limited" {
		t.Fatalf("4th request: %d %s", r.status, r.body)
	}
	var secs int
	if _, err := fmt.Sscan(r.header.Get("Retry-After"), &secs); err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// Another account has its own budget; health needs none.
	if r := e.do("GET", "/v1/endpoints", e.newKey(uniqueAccount()), ""); r.status != 200 {
		t.Errorf("another account limited: %d", r.status)
	}
	if r := e.do("GET", "/v1/health", "", ""); r.status != 200 {
		t.Errorf("health limited: %d", r.status)
	}
}

func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.Keys = failingKeys{} })
	r := e.do("GET", "/v1/endpoints", e.key, "")
	if r.status != 500 || r.code() != "internal" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "secret-internal-name") {
		t.Errorf("internal cause shown: %s", r.body)
	}
	if !strings.Contains(e.logs.String(), "secret-internal-name") {
		t.Errorf("internal cause not logged")
	}
}

func TestHealthAndSourceIPs(t *testing.T) {
	e := newEnv(t)
	if r := e.do("GET", "/v1/health", "", ""); r.status != 200 || string(r.body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("health %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/source-ips", e.key, ""); r.status != 200 || string(r.body) != "{\"ips\":[\"203.0.113.7\"]}\n" {
		t.Errorf("source-ips %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/source-ips", "", ""); r.status != 401 {
		t.Errorf("source-ips without key %d", r.status)
	}
}

// TestPathsThatAreNotCanonical: a path with empty, . or .. segments names no
// route. It answers the contract's 404 JSON before any key is checked,
// never ServeMux's text/html redirect to the cleaned path, and no error
// carries a stray Location header.
func TestPathsThatAreNotCanonical(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path, key string }{
		{"GET", "/v1//endpoints", "k"},
		{"GET", "/v1//endpoints", ""},
		{"GET", "/v1/endpoints/../health", ""},
		{"GET", "/v1/./health", ""},
		{"POST", "/v1//endpoints", "k"},
		{"GET", "//v1/health", ""},
		{"GET", "/v1/endpoints/..", "k"},
		{"GET", "/v1//nothing", "k"},
		{"GET", "/v1/nothing/../../v1/source-ips", ""},
	} {
		t.Run(tc.method+" "+tc.path+" key="+fmt.Sprint(tc.key != ""), func(t *testing.T) {
			key := tc.key
			if key == "k" {
				key = e.key
			}
			r := e.do(tc.method, tc.path, key, "")
			if r.status != 404 || r.code() != "not_found" || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q %s, want 404 not_found JSON", r.status, r.header.Get("Content-Type"), r.body)
			}
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("Location %q on an error", loc)
			}
		})
	}
	// A wrong method keeps ServeMux's Allow, and only that.
	r := e.do("DELETE", "/v1/endpoints", e.key, "")
	if r.status != 405 || r.code() != "method_not_allowed" || r.header.Get("Allow") == "" || r.header.Get("Location") != "" {
		t.Errorf("wrong method: %d %v %s", r.status, r.header, r.body)
	}
	if r := e.do("GET", "/v1/nothing", e.key, ""); r.status != 404 || r.header.Get("Allow") != "" || r.header.Get("Location") != "" {
		t.Errorf("unknown route: %d %v %s", r.status, r.header, r.body)
	}
}

// TestDuplicateKeys: a key given twice in any object of a body is refused
// with invalid_json naming the key's path, and never echoes a value.
func TestDuplicateKeys(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)
	id := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	ep := "/v1/endpoints/" + id
	for _, tc := range []struct{ name, method, path, body, field string }{
		{"top level", "POST", "/v1/endpoints", `{"name":"first","url":"https://example.com","triggers":["*"],"name":"second"}`, "name"},
		{"escaped twin", "POST", "/v1/endpoints", `{"url":"https://example.com","u\u0072l":"https://other.example.com","name":"n","triggers":["*"]}`, "url"},
		{"nested password", "PATCH", ep, `{"basic_auth":{"username":"ct","password":"pw-one-Xq7","password":"pw-two-Zr9"}}`, "basic_auth.password"},
		{"in an array item", "PUT", ep + "/thermometers", `{"thermometers":[{"id":"th_1","name":"a","type":"email"},{"id":"th_2","name":"b","type":"email","id":"th_3"}]}`, "thermometers[1].id"},
		{"deep in an array", "POST", ep + "/test", `{"a":[[{"b":{"c":1,"c":2}}]]}`, "a[0][0].b.c"},
		{"empty key", "POST", ep + "/secret/rotate", `{"":1,"":2}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.key, tc.body)
			if r.status != 400 || r.code() != "invalid_json" {
				t.Fatalf("got %d %s, want 400 invalid_json", r.status, r.body)
			}
			var body errorBody
			if err := json.Unmarshal(r.body, &body); err != nil || len(body.Error.Details) != 1 || body.Error.Details[0].Field != tc.field ||
				!strings.HasPrefix(body.Error.Message, tc.field+": duplicate key") {
				t.Errorf("error does not name %q: %s", tc.field, r.body)
			}
			for _, value := range []string{"first", "second", "pw-one-Xq7", "pw-two-Zr9", "th_3", "other.example.com"} {
				if strings.Contains(string(r.body), value) {
					t.Errorf("error echoes the value %q: %s", value, r.body)
				}
			}
		})
	}
	// Nothing was changed by the refused bodies.
	v := e.do("GET", ep, e.key, "").json(t)
	if v["name"] != "Red comments to helpdesk" || len(v["thermometers"].([]any)) != 0 {
		t.Errorf("endpoint changed: %v", v)
	}
	// The same key in sibling objects is no duplicate.
	if r := e.do("PATCH", ep, e.key, `{"basic_auth":{"username":"ct","password":"pw"},"name":"n"}`); r.status != 200 {
		t.Errorf("distinct keys refused: %d %s", r.status, r.body)
	}
}

// TestListQueryParameters: each query parameter of a list is given at most
// once, and limit is plain decimal digits.
func TestListQueryParameters(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		path   string
		status int
		field  string
	}{
		{"/v1/deliveries?status=failed&status=bogus", 422, "status"},
		{"/v1/deliveries?status=failed&status=failed", 422, "status"},
		{"/v1/deliveries?endpoint_id=ep_00000000000000000000000000&endpoint_id=ep_00000000000000000000000001", 422, "endpoint_id"},
		{"/v1/deliveries?limit=5&limit=6", 422, "limit"},
		{"/v1/deliveries?limit=%2B5", 422, "limit"},
		{"/v1/deliveries?limit=-0", 422, "limit"},
		{"/v1/endpoints?limit=+5", 422, "limit"}, // + in a query is a space
		{"/v1/endpoints?limit=%2B5", 422, "limit"},
		{"/v1/endpoints?limit=5&limit=5", 422, "limit"},
		{"/v1/endpoints?cursor=a&cursor=b", 422, "cursor"},
		{"/v1/endpoints?limit=", 200, ""}, // given empty: not given
		{"/v1/deliveries?endpoint_id=&status=&limit=&cursor=", 200, ""},
		{"/v1/deliveries?status=failed&status=", 422, "status"},
		{"/v1/endpoints?bogus=", 422, "bogus"},
		{"/v1/endpoints?limit=05", 200, ""},
		{"/v1/deliveries?limit=100&status=failed", 200, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := e.do("GET", tc.path, e.key, "")
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.field == "" {
				return
			}
			var body errorBody
			_ = json.Unmarshal(r.body, &body)
			if r.code() != "validation_failed" || len(body.Error.Details) != 1 || body.Error.Details[0].Field != tc.field {
				t.Errorf("details do not name %s alone: %s", tc.field, r.body)
			}
		})
	}
}

// TestSendsHaveTheirOwnLimit: test fires and redeliveries share a budget of
// webhooks per account and minute, far below the request rate, so that one
// account cannot aim the service's one source address at a third party.
func TestSendsHaveTheirOwnLimit(t *testing.T) {
	now := time.Now().UTC()
	e := newEnv(t, func(d *Deps) { d.SendsPerMinute = 2; d.Now = func() time.Time { return now } })
	rc := newReceiver(t, 200)
	ep := e.do("POST", "/v1/endpoints", e.key, fmt.Sprintf(`{"name":"n","url":%q,"triggers":["*"]}`, rc.URL)).json(t)["id"].(string)
	// Requests that send nothing spend none of the budget.
	for range 3 {
		if r := e.do("POST", "/v1/endpoints/ep_00000000000000000000000000/test", e.key, ""); r.status != 404 {
			t.Fatalf("test fire of an unknown endpoint: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/v1/endpoints/"+ep+"/test", e.key, "{"); r.status != 400 {
			t.Fatalf("test fire with a broken body: %d %s", r.status, r.body)
		}
	}
	for i := range 2 {
		if r := e.do("POST", "/v1/endpoints/"+ep+"/test", e.key, ""); r.status != 200 {
			t.Fatalf("test fire %d: %d %s", i, r.status, r.body)
		}
	}
	r := e.do("POST", "/v1/endpoints/"+ep+"/test", e.key, "")
	var secs int
	if _, err := fmt.Sscan(r.header.Get("Retry-After"), &secs); r.status != 429 || r.code() != "rate_limited" || err != nil || secs < 1 || secs > 60 {
		t.Fatalf("3rd test fire: %d %s, Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
	d := e.delivery(e.account, ep, "failed", now, 1)
	if r := e.do("POST", "/v1/deliveries/"+d.ID+"/redeliver", e.key, ""); r.status != 429 || r.code() != "rate_limited" {
		t.Errorf("redelivery past the budget: %d %s", r.status, r.body)
	}
	rc.mu.Lock()
	got := len(rc.requests)
	rc.mu.Unlock()
	if got != 2 {
		t.Errorf("the receiver got %d webhooks, want 2", got)
	}
	// Other requests, and other accounts, are not held back.
	if r := e.do("GET", "/v1/endpoints/"+ep, e.key, ""); r.status != 200 {
		t.Errorf("a read after the sends ran out: %d", r.status)
	}
	other := e.newKey(uniqueAccount())
	ep2 := e.do("POST", "/v1/endpoints", other, fmt.Sprintf(`{"name":"n","url":%q,"triggers":["*"]}`, rc.URL)).json(t)["id"].(string)
	if r := e.do("POST", "/v1/endpoints/"+ep2+"/test", other, ""); r.status != 200 {
		t.Errorf("another account's test fire: %d %s", r.status, r.body)
	}
}
