package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/domain"
)

type fakeKeys map[string]string // hash -> account

func (f fakeKeys) AccountByKeyHash(_ context.Context, hash string) (string, error) {
	if hash == apikey.Hash("ctwh_brokenbrokenbrokenbrokenbrokenbrokenbrokenb") {
		return "", errors.New("dynamodb: connection refused to table secret-internal-name")
	}
	if a, ok := f[hash]; ok {
		return a, nil
	}
	return "", domain.Errorf(domain.CodeNotFound, "api key not found")
}

type fakeEndpoints map[string][]domain.Endpoint

func (f fakeEndpoints) ListEndpoints(_ context.Context, account string, limit int) ([]domain.Endpoint, error) {
	return f[account], nil
}

func newTestHandler(t *testing.T) (http.Handler, string, *bytes.Buffer) {
	key := apikey.New()
	logs := &bytes.Buffer{}
	h := New(Deps{
		Keys: fakeKeys{apikey.Hash(key): "acc_1"},
		Endpoints: fakeEndpoints{"acc_2": {{ID: "ep_other", Name: "other", URL: "https://x.example", Triggers: []string{"*"},
			Status: "untested", Enabled: true, CreatedAt: time.Unix(0, 0), UpdatedAt: time.Unix(0, 0)}}},
		SourceIPs: []netip.Addr{netip.MustParseAddr("203.0.113.7")},
		Logger:    slog.New(slog.NewJSONHandler(logs, nil)),
	})
	return h, key, logs
}

func do(h http.Handler, method, path, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRoutes(t *testing.T) {
	h, key, _ := newTestHandler(t)
	for _, tc := range []struct {
		name, method, path, key string
		status                  int
		body                    string // exact JSON, or an error code prefixed with "code:"
	}{
		{"health needs no key", "GET", "/v1/health", "", 200, `{"status":"ok"}`},
		{"source ips", "GET", "/v1/source-ips", key, 200, `{"ips":["203.0.113.7"]}`},
		{"endpoints of a new account", "GET", "/v1/endpoints", key, 200, `{"data":[],"next_cursor":null}`},
		{"no key", "GET", "/v1/endpoints", "", 401, "code:unauthorized"},
		{"malformed key", "GET", "/v1/endpoints", "nope", 401, "code:unauthorized"},
		{"unknown key", "GET", "/v1/endpoints", apikey.New(), 401, "code:unauthorized"},
		{"source ips need a key", "GET", "/v1/source-ips", "", 401, "code:unauthorized"},
		{"unknown route", "GET", "/v1/nothing-here", key, 404, "code:not_found"},
		{"unknown route outside v1", "GET", "/", "", 404, "code:not_found"},
		{"wrong method", "DELETE", "/v1/health", "", 405, "code:method_not_allowed"},
		{"key store failure is internal", "GET", "/v1/endpoints", "ctwh_brokenbrokenbrokenbrokenbrokenbrokenbrokenb", 500, "code:internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(h, tc.method, tc.path, tc.key)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if code, ok := strings.CutPrefix(tc.body, "code:"); ok {
				var e errorBody
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || string(e.Error.Code) != code || e.Error.Message == "" {
					t.Fatalf("body %s, want error code %s", w.Body, code)
				}
				return
			}
			if got := strings.TrimSpace(w.Body.String()); got != tc.body {
				t.Errorf("body %s, want %s", got, tc.body)
			}
		})
	}
}

func TestMethodNotAllowedKeepsAllow(t *testing.T) {
	h, _, _ := newTestHandler(t)
	w := do(h, "POST", "/v1/health", "")
	if allow := w.Header().Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q", allow)
	}
}

func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	h, _, logs := newTestHandler(t)
	w := do(h, "GET", "/v1/endpoints", "ctwh_brokenbrokenbrokenbrokenbrokenbrokenbrokenb")
	if strings.Contains(w.Body.String(), "secret-internal-name") {
		t.Errorf("internal cause leaked to the client: %s", w.Body)
	}
	if !strings.Contains(logs.String(), "secret-internal-name") {
		t.Errorf("internal cause not logged: %s", logs)
	}
}

func TestRequestLogNeverHoldsTheKey(t *testing.T) {
	h, key, logs := newTestHandler(t)
	do(h, "GET", "/v1/endpoints", key)
	line := logs.String()
	if strings.Contains(line, key) || strings.Contains(line, apikey.Hash(key)) {
		t.Fatalf("log holds the key or its hash: %s", line)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("log line is not JSON: %s", line)
	}
	if rec["account_id"] != "acc_1" || rec["route"] != "GET /v1/endpoints" || rec["status"] != float64(200) {
		t.Errorf("log line %v", rec)
	}
}

func TestAccountSeesOnlyItsEndpoints(t *testing.T) {
	h, key, _ := newTestHandler(t)
	w := do(h, "GET", "/v1/endpoints", key)
	if strings.Contains(w.Body.String(), "ep_other") {
		t.Fatalf("acc_1 sees acc_2's endpoint: %s", w.Body)
	}
}
