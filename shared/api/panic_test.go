package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// panicking is an endpoint store whose listing panics, as a bug would.
type panicking struct{ endpointStore }

func (panicking) ListEndpoints(context.Context, string, int, string) ([]domain.Endpoint, bool, error) {
	var eps []domain.Endpoint
	return eps[:1], false, nil // out of range
}

// TestAPanicFailsItsRequestAlone: a handler that panics answers 500 with
// the contract's internal error and logs the panic and the request; the
// next request is served.
func TestAPanicFailsItsRequestAlone(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.Endpoints = panicking{d.Endpoints} })
	r := e.do("GET", "/v1/endpoints", e.key, "")
	body := r.json(t)
	got, _ := body["error"].(map[string]any)
	if r.status != http.StatusInternalServerError || got["code"] != "internal" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("a panicking route answered %d %s", r.status, r.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"panic serving request"`) || !strings.Contains(logs, "slice bounds out of range") ||
		!strings.Contains(logs, `"route":"GET /v1/endpoints","path":"/v1/endpoints","status":500`) {
		t.Errorf("the panic or its request is not logged:\n%s", logs)
	}
	if r := e.do("GET", "/v1/health", "", ""); r.status != http.StatusOK {
		t.Errorf("the next request: %d %s", r.status, r.body)
	}
}
