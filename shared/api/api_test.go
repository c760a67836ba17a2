package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/signature"
)

func createBody(url string) string {
	return fmt.Sprintf(`{"name":"Red comments to helpdesk","url":%q,"triggers":["comment.red","rating.red"],"basic_auth":{"username":"ct","password":"s3cr3t-pw"}}`, url)
}

// TestEndpointJourney walks one endpoint through its whole life, as an
// account holder would.
func TestEndpointJourney(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)

	r := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL+"/hooks/ct"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	ep := r.json(t)
	id := ep["id"].(string)
	secret, _ := ep["secret"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Fatalf("secret %q", secret)
	}
	if ep["secret_standard"] != "whsec_"+base64.StdEncoding.EncodeToString([]byte(secret)) {
		t.Errorf("secret_standard %v", ep["secret_standard"])
	}
	if ep["status"] != "untested" || ep["enabled"] != true || ep["last_test"] != nil || r.header.Get("Location") != "/v1/endpoints/"+id {
		t.Errorf("new endpoint %v, Location %q", ep, r.header.Get("Location"))
	}
	if ba := ep["basic_auth"].(map[string]any); ba["username"] != "ct" || ba["password"] != nil {
		t.Errorf("basic_auth %v", ba)
	}
	if strings.Contains(string(r.body), "s3cr3t-pw") {
		t.Error("the password was returned")
	}

	// View shows the secret; the list does not.
	if v := e.do("GET", "/v1/endpoints/"+id, e.key, "").json(t); v["secret"] != secret || v["secret_standard"] == nil {
		t.Errorf("view %v", v)
	}
	list := e.do("GET", "/v1/endpoints", e.key, "")
	if list.status != 200 || strings.Contains(string(list.body), secret) || !strings.Contains(string(list.body), id) {
		t.Errorf("list %d %s", list.status, list.body)
	}

	// Linking before a delivered test fire is refused.
	thermos := `{"thermometers":[{"id":"th_42","name":"Support tickets","type":"email"},{"id":"th_43","name":"Onboarding","type":"embedded"}]}`
	if r := e.do("PUT", "/v1/endpoints/"+id+"/thermometers", e.key, thermos); r.status != 409 || r.code() != "endpoint_not_tested" {
		t.Fatalf("link before test: %d %s", r.status, r.body)
	}

	// Test fire: signed, with Basic Auth, and the endpoint becomes active.
	tr := e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "")
	res := tr.json(t)
	if tr.status != 200 || res["delivered"] != true || res["status_code"] != float64(200) || res["error"] != nil || res["delivery_id"] == "" {
		t.Fatalf("test fire: %d %s", tr.status, tr.body)
	}
	req, body := rc.last()
	if req == nil {
		t.Fatal("receiver got nothing")
	}
	if !signature.Verify(secret, req.Header.Get("Date"), body, req.Header.Get("X-Ct-Hmac-Sha256")) {
		t.Error("test webhook signature does not verify")
	}
	if u, p, ok := req.BasicAuth(); !ok || u != "ct" || p != "s3cr3t-pw" {
		t.Errorf("basic auth %q %q", u, p)
	}
	var tb map[string]any
	_ = json.Unmarshal(body, &tb)
	if tb["event"] != "test" || tb["test"] != true || req.Header.Get("X-Ct-Event") != "test" || req.Header.Get("X-Ct-Delivery-Id") != res["delivery_id"] || req.URL.Path != "/hooks/ct" {
		t.Errorf("test webhook %s %v", body, req.Header)
	}
	v := e.do("GET", "/v1/endpoints/"+id, e.key, "").json(t)
	lt, _ := v["last_test"].(map[string]any)
	if v["status"] != "active" || lt["delivered"] != true || lt["status_code"] != float64(200) {
		t.Errorf("after test: %v", v)
	}
	checkTestLogged(t, e, id, res["delivery_id"].(string), body, "delivered", 200)

	// Link, read back.
	if r := e.do("PUT", "/v1/endpoints/"+id+"/thermometers", e.key, thermos); r.status != 200 || len(r.json(t)["thermometers"].([]any)) != 2 {
		t.Fatalf("link: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/endpoints/"+id+"/thermometers", e.key, ""); r.status != 200 || !strings.Contains(string(r.body), "th_43") {
		t.Errorf("get links: %d %s", r.status, r.body)
	}

	// A new URL makes it untested again but keeps the links.
	p := e.do("PATCH", "/v1/endpoints/"+id, e.key, fmt.Sprintf(`{"url":%q,"name":"Renamed"}`, rc.URL+"/v2"))
	pv := p.json(t)
	if p.status != 200 || pv["status"] != "untested" || pv["name"] != "Renamed" || len(pv["thermometers"].([]any)) != 2 || pv["secret"] != nil {
		t.Fatalf("patch url: %d %s", p.status, p.body)
	}
	if r := e.do("PUT", "/v1/endpoints/"+id+"/thermometers", e.key, `{"thermometers":[{"id":"th_44","name":"New","type":"email"}]}`); r.status != 409 {
		t.Errorf("link another while untested: %d", r.status)
	}
	// Unlinking needs no test.
	if r := e.do("PUT", "/v1/endpoints/"+id+"/thermometers", e.key, `{"thermometers":[{"id":"th_42","name":"Support tickets","type":"email"}]}`); r.status != 200 || strings.Contains(string(r.body), "th_43") {
		t.Errorf("unlink while untested: %d %s", r.status, r.body)
	}
	// Renaming alone keeps the status.
	e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "{}")
	if pv := e.do("PATCH", "/v1/endpoints/"+id, e.key, `{"name":"Again"}`).json(t); pv["status"] != "active" {
		t.Errorf("rename changed status: %v", pv["status"])
	}
	// New credentials need a new test too; null removes them.
	if pv := e.do("PATCH", "/v1/endpoints/"+id, e.key, `{"basic_auth":null}`).json(t); pv["status"] != "untested" || pv["basic_auth"] != nil {
		t.Errorf("remove basic auth: %v", pv)
	}
	if pv := e.do("PATCH", "/v1/endpoints/"+id, e.key, `{"enabled":false}`).json(t); pv["status"] != "disabled" || pv["enabled"] != false {
		t.Errorf("disable: %v", pv)
	}
	e.do("PATCH", "/v1/endpoints/"+id, e.key, `{"enabled":true}`)

	// Rotation issues a new secret that signs from then on.
	rot := e.do("POST", "/v1/endpoints/"+id+"/secret/rotate", e.key, "")
	newSecret, _ := rot.json(t)["secret"].(string)
	if rot.status != 200 || newSecret == secret || len(newSecret) != 64 {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "")
	req, body = rc.last()
	if !signature.Verify(newSecret, req.Header.Get("Date"), body, req.Header.Get("X-Ct-Hmac-Sha256")) {
		t.Error("webhook after rotation is not signed with the new secret")
	}

	// Delete.
	if r := e.do("DELETE", "/v1/endpoints/"+id, e.key, ""); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/endpoints/"+id, e.key, ""); r.status != 404 {
		t.Errorf("get after delete: %d", r.status)
	}

	// Nothing secret was logged on the way.
	logs := e.logs.String()
	for _, s := range []string{secret, newSecret, "s3cr3t-pw", e.key, apikey.Hash(e.key), req.Header.Get("X-Ct-Hmac-Sha256")} {
		if strings.Contains(logs, s) {
			t.Errorf("a log line holds a secret (%.8s…)", s)
		}
	}
}

func TestFailedTestFire(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 503)
	id := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	r := e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "")
	res := r.json(t)
	if r.status != 200 || res["delivered"] != false || res["status_code"] != float64(503) || !strings.Contains(fmt.Sprint(res["error"]), "503") {
		t.Fatalf("test fire: %d %s", r.status, r.body)
	}
	v := e.do("GET", "/v1/endpoints/"+id, e.key, "").json(t)
	if v["status"] != "untested" || v["last_test"].(map[string]any)["delivered"] != false {
		t.Errorf("after failed test: %v", v)
	}
	_, body := rc.last()
	checkTestLogged(t, e, id, res["delivery_id"].(string), body, "failed", 503)
	// Nothing listening: no status code, an error.
	rc.Close()
	res = e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "").json(t)
	if res["delivered"] != false || res["status_code"] != nil || res["error"] == nil {
		t.Errorf("test fire to a closed port: %v", res)
	}
}

// TestGoneTestFireDisables: a 410 disables its endpoint from a test fire as
// from a delivery (API.md section 3); enabling it again is the account
// holder's choice.
func TestGoneTestFireDisables(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 410)
	id := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	if res := e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "").json(t); res["delivered"] != false || res["status_code"] != float64(410) {
		t.Fatalf("test fire: %v", res)
	}
	v := e.do("GET", "/v1/endpoints/"+id, e.key, "").json(t)
	if v["status"] != "disabled" || v["enabled"] != false {
		t.Errorf("after a 410 to a test fire: status %v, enabled %v", v["status"], v["enabled"])
	}
	if r := e.do("PATCH", "/v1/endpoints/"+id, e.key, `{"enabled":true}`); r.status != 200 || r.json(t)["status"] != "untested" {
		t.Errorf("enabled again: %d %s", r.status, r.body)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, e.do("POST", "/v1/endpoints", e.key, `{"name":"n","url":"https://example.com/h","triggers":["*"]}`).json(t)["id"].(string))
	}
	var seen []string
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		path := "/v1/endpoints?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.do("GET", path, e.key, "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		page := r.json(t)
		for _, item := range page["data"].([]any) {
			m := item.(map[string]any)
			if m["secret"] != nil {
				t.Error("list item shows the secret")
			}
			seen = append(seen, m["id"].(string))
		}
		if page["next_cursor"] == nil {
			break
		}
		cursor = page["next_cursor"].(string)
		// Another account cannot use this cursor, even with a valid key.
		other := e.newKey(uniqueAccount())
		if r := e.do("GET", "/v1/endpoints?cursor="+cursor, other, ""); r.status != 400 || r.code() != "invalid_cursor" {
			t.Errorf("another account's cursor: %d %s", r.status, r.body)
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(ids) {
		t.Errorf("pages %v, want %v", seen, ids)
	}
}

func TestAccountIsolation(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)
	id := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	other := e.newKey(uniqueAccount())
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/endpoints/" + id, ""},
		{"PATCH", "/v1/endpoints/" + id, `{"name":"stolen"}`},
		{"DELETE", "/v1/endpoints/" + id, ""},
		{"POST", "/v1/endpoints/" + id + "/test", ""},
		{"PUT", "/v1/endpoints/" + id + "/thermometers", `{"thermometers":[]}`},
		{"GET", "/v1/endpoints/" + id + "/thermometers", ""},
		{"POST", "/v1/endpoints/" + id + "/secret/rotate", ""},
	} {
		r := e.do(tc.method, tc.path, other, tc.body)
		unknown := e.do(tc.method, strings.Replace(tc.path, id, "ep_00000000000000000000000000", 1), other, tc.body)
		if r.status != 404 || r.code() != "not_found" || r.status != unknown.status || r.code() != unknown.code() {
			t.Errorf("%s %s with another account's key: %d %s (unknown id: %d)", tc.method, tc.path, r.status, r.body, unknown.status)
		}
	}
	if list := e.do("GET", "/v1/endpoints", other, ""); string(list.body) != "{\"data\":[],\"next_cursor\":null}\n" {
		t.Errorf("other account lists %s", list.body)
	}
	if _, body := rc.last(); body != nil {
		t.Error("another account's test fire reached the receiver")
	}
	if v := e.do("GET", "/v1/endpoints/"+id, e.key, "").json(t); v["name"] != "Red comments to helpdesk" {
		t.Errorf("endpoint changed by another account: %v", v)
	}
}

// TestRemovingAbsentBasicAuthKeepsStatus: only a change of url or basic_auth
// sets an endpoint untested; null for an endpoint without Basic Auth, or the
// same url again, is no change.
func TestRemovingAbsentBasicAuthKeepsStatus(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)
	id := e.do("POST", "/v1/endpoints", e.key, fmt.Sprintf(`{"name":"n","url":%q,"triggers":["*"]}`, rc.URL)).json(t)["id"].(string)
	if r := e.do("POST", "/v1/endpoints/"+id+"/test", e.key, ""); r.json(t)["delivered"] != true {
		t.Fatalf("test fire: %s", r.body)
	}
	for _, body := range []string{`{"basic_auth":null}`, fmt.Sprintf(`{"url":%q,"basic_auth":null}`, rc.URL)} {
		r := e.do("PATCH", "/v1/endpoints/"+id, e.key, body)
		if v := r.json(t); r.status != 200 || v["status"] != "active" || v["basic_auth"] != nil {
			t.Errorf("PATCH %s: %d %s, want status active", body, r.status, r.body)
		}
	}
	// New credentials are a change: they cannot be compared with the
	// stored ones, so they need a new test.
	if v := e.do("PATCH", "/v1/endpoints/"+id, e.key, `{"basic_auth":{"username":"ct","password":"pw-new"}}`).json(t); v["status"] != "untested" {
		t.Errorf("new credentials: status %v", v["status"])
	}
}

// TestThermometerLimit: one endpoint links at most 100 thermometers, however
// many fit in a 64 KiB body.
func TestThermometerLimit(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)
	id := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "")
	body := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"id":"th_%d","name":"t","type":"email"}`, i)
		}
		return `{"thermometers":[` + strings.Join(items, ",") + `]}`
	}
	r := e.do("PUT", "/v1/endpoints/"+id+"/thermometers", e.key, body(101))
	var eb errorBody
	_ = json.Unmarshal(r.body, &eb)
	if r.status != 422 || r.code() != "validation_failed" || len(eb.Error.Details) != 1 || eb.Error.Details[0].Field != "thermometers" ||
		!strings.Contains(eb.Error.Details[0].Message, "at most 100") {
		t.Fatalf("101 thermometers: %d %s", r.status, r.body)
	}
	if got := e.do("GET", "/v1/endpoints/"+id+"/thermometers", e.key, "").json(t)["thermometers"].([]any); len(got) != 0 {
		t.Errorf("%d thermometers linked by a refused request", len(got))
	}
	if r := e.do("PUT", "/v1/endpoints/"+id+"/thermometers", e.key, body(100)); r.status != 200 || len(r.json(t)["thermometers"].([]any)) != 100 {
		t.Fatalf("100 thermometers: %d %.200s", r.status, r.body)
	}
}

// checkTestLogged checks that test fire delivery of endpoint id is in the
// delivery log like any webhook sent: listed for the endpoint, with the
// body sent as its payload and its one attempt.
func checkTestLogged(t *testing.T, e *env, id, delivery string, sent []byte, status string, code int) {
	t.Helper()
	doc := loadOpenAPI(t)
	ops := operations(t, doc)
	r := e.do("GET", "/v1/deliveries/"+delivery, e.key, "")
	checkDocumented(t, doc, ops["GET /v1/deliveries/{id}"], r)
	d := r.json(t)
	if r.status != 200 || d["event"] != "test" || d["trigger"] != "test" || d["endpoint_id"] != id || d["status"] != status ||
		d["attempt_count"] != float64(1) || d["last_status_code"] != float64(code) || d["next_attempt_at"] != nil {
		t.Fatalf("test fire in the log: %d %s", r.status, r.body)
	}
	var want any
	if err := json.Unmarshal(sent, &want); err != nil || !reflect.DeepEqual(d["payload"], want) {
		t.Errorf("logged payload %v, sent %s", d["payload"], sent)
	}
	attempts, _ := d["attempts"].([]any)
	if len(attempts) != 1 || attempts[0].(map[string]any)["status_code"] != float64(code) {
		t.Errorf("attempts %v", d["attempts"])
	}
	list := e.do("GET", "/v1/deliveries?endpoint_id="+id, e.key, "")
	checkDocumented(t, doc, ops["GET /v1/deliveries"], list)
	if !strings.Contains(string(list.body), delivery) {
		t.Errorf("test fire not listed for its endpoint: %s", list.body)
	}
}
