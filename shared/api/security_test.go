package api

import (
	"strings"
	"testing"
	"time"
)

// TestAnotherAccountLearnsNothing tries every documented route with another
// account's key and this account's ids, and with cursors that were altered
// or issued to someone else: each answer is the one an unknown id or a bad
// cursor gets, and no answer holds anything of this account.
func TestAnotherAccountLearnsNothing(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, 200)
	ep := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL+"/private-path")).json(t)
	id, secret := ep["id"].(string), ep["secret"].(string)
	e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL+"/second"))
	e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "")
	dlv := e.delivery(e.account, id, "failed", time.Now().UTC(), 2)
	e.delivery(e.account, id, "delivered", time.Now().UTC().Add(time.Second), 1)
	page := e.do("GET", "/v1/endpoints?limit=1", e.key, "").json(t)
	endpointsCursor := page["next_cursor"].(string)
	deliveriesCursor := e.do("GET", "/v1/deliveries?limit=1", e.key, "").json(t)["next_cursor"].(string)

	other := e.newKey(uniqueAccount())
	ops := operations(t, loadOpenAPI(t))
	secrets := []string{id, secret, dlv.ID, "private-path", "s3cr3t-pw"}
	for name := range ops {
		method, path, _ := strings.Cut(name, " ")
		if !strings.Contains(path, "{id}") {
			continue
		}
		mine := strings.ReplaceAll(path, "{id}", id)
		unknown := strings.ReplaceAll(path, "{id}", "ep_00000000000000000000000000")
		if strings.HasPrefix(path, "/v1/deliveries/") {
			mine = strings.ReplaceAll(path, "{id}", dlv.ID)
			unknown = strings.ReplaceAll(path, "{id}", "dlv_00000000000000000000000000")
		}
		body := map[string]string{"PATCH": `{"name":"taken"}`, "PUT": `{"thermometers":[]}`}[method]
		got, want := e.do(method, mine, other, body), e.do(method, unknown, other, body)
		if got.status != 404 || got.status != want.status || got.code() != want.code() {
			t.Errorf("%s %s with another account's key: %d %s; unknown id: %d", method, mine, got.status, got.body, want.status)
		}
		for _, s := range secrets {
			if strings.Contains(string(got.body), s) && s != id && s != dlv.ID {
				t.Errorf("%s %s reveals %q", method, mine, s)
			}
		}
	}
	for _, path := range []string{"/v1/endpoints", "/v1/deliveries", "/v1/deliveries?endpoint_id=" + id} {
		r := e.do("GET", path, other, "")
		if r.status != 200 || strings.Contains(string(r.body), id) || strings.Contains(string(r.body), dlv.ID) {
			t.Errorf("GET %s with another account's key: %d %s", path, r.status, r.body)
		}
	}
	tamper := func(c string) string {
		b := []byte(c)
		b[len(b)/2] ^= 0x01
		if b[len(b)/2] == '-' || b[len(b)/2] == '_' {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct{ path, key string }{
		{"/v1/endpoints?cursor=" + endpointsCursor, other},
		{"/v1/endpoints?cursor=" + tamper(endpointsCursor), e.key},
		{"/v1/endpoints?cursor=" + endpointsCursor + "A", e.key},
		{"/v1/endpoints?cursor=" + deliveriesCursor, e.key},
		{"/v1/deliveries?cursor=" + deliveriesCursor, other},
		{"/v1/deliveries?cursor=" + tamper(deliveriesCursor), e.key},
		{"/v1/deliveries?cursor=" + endpointsCursor, e.key},
		{"/v1/deliveries?status=failed&cursor=" + deliveriesCursor, e.key},
	} {
		r := e.do("GET", tc.path, tc.key, "")
		if r.status != 400 || r.code() != "invalid_cursor" {
			t.Errorf("GET %s: %d %s", tc.path, r.status, r.body)
		}
	}
}
