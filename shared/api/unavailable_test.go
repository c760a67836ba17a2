package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/store"
)

// answering gives every DynamoDB request the same error, sending nothing.
type answering struct {
	status int
	code   string
}

func (a *answering) Do(r *http.Request) (*http.Response, error) {
	return awstest.ErrorAnswer(r, a.status, a.code, "secret-cause-xyz"), nil
}

// TestAWSTroubleIsUnavailable: a request whose AWS calls still fail after
// the SDK's retries (AWS down or throttling for the moment) answers 503
// `unavailable` with a Retry-After, as the document says, and shows nothing
// of the cause; an AWS error that retrying cannot help (a bug of ours)
// stays `internal`.
func TestAWSTroubleIsUnavailable(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := operations(t, doc)
	answer := &answering{}
	cfg := awstest.Config(t)
	cfg.HTTPClient = answer
	stack := awstest.LoadStack(t)
	failing := store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	e := newEnv(t, func(d *Deps) { d.Endpoints, d.Deliveries = failing, failing })
	both := []string{"GET /v1/endpoints", "GET /v1/deliveries"}
	for _, c := range []struct {
		answer answering
		routes []string
		status int
		code   string
	}{
		{answering{http.StatusInternalServerError, "InternalServerError"}, both, http.StatusServiceUnavailable, "unavailable"},
		// The SDK waits longer between a throttled request's tries: one route.
		{answering{http.StatusBadRequest, "ThrottlingException"}, both[:1], http.StatusServiceUnavailable, "unavailable"},
		{answering{http.StatusBadRequest, "ValidationException"}, both, http.StatusInternalServerError, "internal"},
	} {
		*answer = c.answer
		for _, route := range c.routes {
			method, path, _ := strings.Cut(route, " ")
			r := e.do(method, path, e.key, "")
			body := r.json(t)
			got, _ := body["error"].(map[string]any)
			if r.status != c.status || got["code"] != c.code {
				t.Errorf("%s after %s: %d %s, want %d %s", route, c.answer.code, r.status, r.body, c.status, c.code)
			}
			if strings.Contains(string(r.body), "secret-cause-xyz") || strings.Contains(string(r.body), c.answer.code) {
				t.Errorf("%s shows the cause: %s", route, r.body)
			}
			if secs, err := strconv.Atoi(r.header.Get("Retry-After")); (c.code == "unavailable") != (err == nil && secs > 0) {
				t.Errorf("%s: Retry-After %q with %s", route, r.header.Get("Retry-After"), c.code)
			}
			checkDocumented(t, doc, ops[route], r)
		}
	}
}

// TestWorkLeftUndoneIsUnavailable: AWS work the store or the queue still
// left undone after their own retries (batch entries left unprocessed), and
// the invocation's time running out, answer 503 too; other errors stay
// internal.
func TestWorkLeftUndoneIsUnavailable(t *testing.T) {
	h := &handler{Deps: Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}}
	for err, status := range map[error]int{
		fmt.Errorf("batch get: keys left unprocessed after 8 retries: %w", domain.ErrUnavailable): http.StatusServiceUnavailable,
		fmt.Errorf("read endpoint: %w", context.DeadlineExceeded):                                 http.StatusServiceUnavailable,
		errors.New("decode endpoint: unexpected attribute"):                                       http.StatusInternalServerError,
	} {
		w := httptest.NewRecorder()
		h.writeError(w, httptest.NewRequest(http.MethodGet, "/v1/endpoints", nil), err)
		if w.Code != status || (status == http.StatusServiceUnavailable) != (w.Header().Get("Retry-After") != "") {
			t.Errorf("%v: %d, Retry-After %q; want %d", err, w.Code, w.Header().Get("Retry-After"), status)
		}
		if strings.Contains(w.Body.String(), err.Error()) {
			t.Errorf("%v: the answer shows the cause: %s", err, w.Body)
		}
	}
}

// conflicting is the endpoint store and delivery log with every conditional
// write meeting another request's change.
type conflicting struct {
	endpointStore
	deliveryLog
}

func (conflicting) SaveEndpoint(context.Context, domain.Endpoint, []domain.Thermometer) error {
	return store.ErrConflict
}
func (conflicting) DeleteEndpoint(context.Context, domain.Endpoint) error { return store.ErrConflict }
func (conflicting) StartRound(context.Context, string, string, int, time.Time, time.Time, time.Time) (domain.Delivery, error) {
	return domain.Delivery{}, store.ErrConflict
}

// TestChangedMeanwhileIsUnavailable: a write that keeps meeting other
// requests' changes after its rereads and retries answers 503 to retry
// later, not a 500 that reads as a bug; a redelivery retried that way
// queues its round's task once.
func TestChangedMeanwhileIsUnavailable(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := operations(t, doc)
	e := newEnv(t)
	ep := e.endpoint()
	d := e.delivery(e.account, ep, "failed", time.Now().UTC(), 2)
	c := conflicting{e.deps.Endpoints, e.deps.Deliveries}
	e.deps.Endpoints, e.deps.Deliveries = c, c
	e.h = New(e.deps)
	for _, c := range []struct{ route, path, body string }{
		{"PATCH /v1/endpoints/{id}", "/v1/endpoints/" + ep, `{"name":"renamed"}`},
		{"POST /v1/endpoints/{id}/secret/rotate", "/v1/endpoints/" + ep + "/secret/rotate", ""},
		{"DELETE /v1/endpoints/{id}", "/v1/endpoints/" + ep, ""},
		{"POST /v1/deliveries/{id}/redeliver", "/v1/deliveries/" + d.ID + "/redeliver", ""},
	} {
		method, _, _ := strings.Cut(c.route, " ")
		r := e.do(method, c.path, e.key, c.body)
		if r.status != http.StatusServiceUnavailable || r.code() != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s, want 503 unavailable with Retry-After", c.route, r.status, r.body)
		}
		checkDocumented(t, doc, ops[c.route], r)
	}
	if tasks := e.queuedTasks(t); len(tasks) != 1 {
		t.Errorf("%d tasks queued for one redelivery", len(tasks))
	}
}
