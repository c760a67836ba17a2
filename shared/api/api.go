package api

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/store"
)

// OpenAPI is the OpenAPI 3.1 document of this API, served at
// GET /v1/openapi.json; a test walks it against the handler.
//
//go:embed openapi.json
var OpenAPI []byte

// The small interfaces the handler needs; *store.Store, *kms.Sealer,
// *dispatch.Client and *cursor.Codec satisfy them.
type (
	keyResolver interface {
		AccountByKeyHash(ctx context.Context, keyHash string) (string, error)
	}
	endpointStore interface {
		CreateEndpoint(ctx context.Context, e domain.Endpoint) error
		GetEndpoint(ctx context.Context, account, id string) (domain.Endpoint, error)
		ListEndpoints(ctx context.Context, account string, limit int, after string) ([]domain.Endpoint, bool, error)
		SaveEndpoint(ctx context.Context, e domain.Endpoint, previous []domain.Thermometer) error
		DeleteEndpoint(ctx context.Context, e domain.Endpoint) error
	}
	sealer interface {
		Seal(ctx context.Context, plaintext []byte, ec map[string]string) ([]byte, error)
		Open(ctx context.Context, ciphertext []byte, ec map[string]string) ([]byte, error)
	}
	sender interface {
		Send(ctx context.Context, w dispatch.Webhook) dispatch.Result
	}
	deliveryLog interface {
		ListDeliveries(ctx context.Context, account string, f store.DeliveryFilter, limit int, after string) ([]domain.Delivery, string, error)
		DeliveryDetail(ctx context.Context, account, id string, maxAttempts int) (domain.Delivery, []byte, []domain.Attempt, bool, error)
		GetDelivery(ctx context.Context, account, id string) (domain.Delivery, error)
		StartRound(ctx context.Context, account, id string, attempts int, now, expires, payloadExpires time.Time) (domain.Delivery, error)
		CreateDelivery(ctx context.Context, d domain.Delivery, expires time.Time) (bool, domain.Delivery, error)
		PutLogItems(ctx context.Context, items []store.LogItem) error
	}
	taskQueue interface {
		Enqueue(ctx context.Context, d domain.Delivery) error
	}
	cursorCodec interface {
		Seal(scope string, position []byte) string
		Open(scope, token string) ([]byte, error)
	}
	requestCounter interface {
		CountRequest(ctx context.Context, account string, window time.Time, length time.Duration) (int64, error)
	}
)

// Deps is what the handler is built from.
type Deps struct {
	Keys      keyResolver
	Endpoints endpointStore
	Secrets   sealer
	Sender    sender
	// Deliveries is the delivery log; Tasks queues redeliveries.
	Deliveries deliveryLog
	Tasks      taskQueue
	Cursors    cursorCodec
	// Counter and RateLimitPerMinute limit each account's requests; a nil
	// Counter or a zero limit turns limiting off.
	Counter            requestCounter
	RateLimitPerMinute int
	// SendsPerMinute limits, with Counter, the webhooks one account may
	// have sent through the API in a clock minute: test fires and
	// redeliveries together. 0: no limit beyond RateLimitPerMinute.
	SendsPerMinute int
	SourceIPs      []netip.Addr
	// LocalMode accepts loopback endpoint URLs on any port.
	LocalMode bool
	// Retention is how long delivery-log items are kept; a redelivery keeps
	// its delivery this long from then on.
	Retention time.Duration
	// PayloadRetention is how long a redelivery keeps its delivery's
	// payload from then on (config.PayloadRetention); Retention when
	// shorter.
	PayloadRetention time.Duration
	Logger           *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

type handler struct {
	Deps
	mux *http.ServeMux
}

// New returns the API's http.Handler.
func New(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	h := &handler{Deps: d, mux: http.NewServeMux()}
	for pattern, fn := range h.routes() {
		h.mux.HandleFunc(pattern, fn)
	}
	return h
}

// routes maps every route of the API to its handler.
func (h *handler) routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /v1/health":                        h.health,
		"GET /v1/openapi.json":                  h.openAPI,
		"GET /v1/source-ips":                    h.authed(h.sourceIPs),
		"POST /v1/endpoints":                    h.authed(h.createEndpoint),
		"GET /v1/endpoints":                     h.authed(h.listEndpoints),
		"GET /v1/endpoints/{id}":                h.authed(h.getEndpoint),
		"PATCH /v1/endpoints/{id}":              h.authed(h.updateEndpoint),
		"DELETE /v1/endpoints/{id}":             h.authed(h.deleteEndpoint),
		"POST /v1/endpoints/{id}/test":          h.authed(h.testEndpoint),
		"PUT /v1/endpoints/{id}/thermometers":   h.authed(h.setThermometers),
		"GET /v1/endpoints/{id}/thermometers":   h.authed(h.getThermometers),
		"POST /v1/endpoints/{id}/secret/rotate": h.authed(h.rotateSecret),
		"GET /v1/deliveries":                    h.authed(h.listDeliveries),
		"GET /v1/deliveries/{id}":               h.authed(h.getDelivery),
		"POST /v1/deliveries/{id}/redeliver":    h.authed(h.redeliver),
	}
}

// ServeHTTP routes the request, answering unknown routes and methods with the
// contract's JSON errors instead of ServeMux's plain-text ones, and logs one
// line per request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.Now()
	rw := &responseWriter{ResponseWriter: w}
	var pattern string
	defer func() {
		// A bug that panics fails its own request with the contract's
		// internal error, rather than the function and API Gateway's
		// shapeless 502 (and, in local mode, every request in flight).
		if v := recover(); v != nil {
			h.Logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("route", pattern), slog.String("panic", truncate(fmt.Sprint(v), 200)),
				slog.String("stack", string(debug.Stack())), slog.String("request_id", r.Header.Get("X-Request-Id")))
			if rw.status == 0 {
				h.writeError(rw, r, domain.Errorf(domain.CodeInternal, "internal error"))
			}
		}
		h.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("route", pattern),
			slog.String("path", truncate(r.URL.Path, 200)),
			slog.Int("status", rw.status),
			slog.Int64("duration_ms", h.Now().Sub(start).Milliseconds()),
			slog.String("account_id", rw.account),
			slog.String("request_id", r.Header.Get("X-Request-Id")),
		)
	}()
	if p := r.URL.EscapedPath(); !canonical(p) {
		// ServeMux would answer a text/html redirect to the cleaned path,
		// before any key is checked; such a path names no route.
		h.writeError(rw, r, domain.Errorf(domain.CodeNotFound, "no route %s %s; paths have no empty, . or .. segments", r.Method, truncate(r.URL.Path, 200)))
	} else if route, pat := h.mux.Handler(r); pat == "" {
		// ServeMux's own answer tells 404 from 405 (and sets Allow). It
		// writes into headers of its own, so that nothing but Allow reaches
		// the response; its body is replaced.
		probe := &responseWriter{ResponseWriter: discardBody{header: http.Header{}}}
		route.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			if allow := probe.Header().Get("Allow"); allow != "" {
				rw.Header().Set("Allow", allow)
			}
			h.writeError(rw, r, domain.Errorf(domain.CodeMethodNotAllowed, "method %s is not allowed on %s", r.Method, truncate(r.URL.Path, 200)))
		} else {
			h.writeError(rw, r, domain.Errorf(domain.CodeNotFound, "no route %s %s", r.Method, truncate(r.URL.Path, 200)))
		}
	} else {
		pattern = pat
		// ServeMux.ServeHTTP, not route: it sets the path values ({id}).
		h.mux.ServeHTTP(rw, r)
	}
}

// canonical reports whether ServeMux routes path as it is: it redirects any
// other path to its cleaned form (path.Clean, keeping a trailing slash).
func canonical(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// authed requires a valid API key and an account within its rate limit,
// and passes the account to next.
func (h *handler) authed(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearer(r.Header.Get("Authorization"))
		// Malformed keys are refused without a table lookup.
		if !ok || !apikey.WellFormed(key) {
			h.writeError(w, r, domain.Errorf(domain.CodeUnauthorized, "a valid API key is required: Authorization: Bearer <key>"))
			return
		}
		account, err := h.Keys.AccountByKeyHash(r.Context(), apikey.Hash(key))
		if errors.Is(err, domain.ErrNotFound) {
			h.writeError(w, r, domain.Errorf(domain.CodeUnauthorized, "the API key is unknown or revoked"))
			return
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if rw, ok := w.(*responseWriter); ok {
			rw.account = account
		}
		if retry, limited := h.limited(r, account); limited {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			h.writeError(w, r, domain.Errorf(domain.CodeRateLimited, "more than %d requests in a minute; retry after %d seconds", h.RateLimitPerMinute, int(math.Ceil(retry.Seconds()))))
			return
		}
		next(w, r, account)
	}
}

// sendLimited refuses, with 429 rate_limited, a request that would send a
// webhook (a test fire, a redelivery) beyond the account's SendsPerMinute.
// Webhooks leave from the one address receivers allowlist: an account must
// not aim them at a third party at its full request rate. Account ids hold
// no '#', so this counter never meets an account's request counter.
func (h *handler) sendLimited(w http.ResponseWriter, r *http.Request, account string) bool {
	retry, over := h.overLimit(r, account, "#sends", h.SendsPerMinute)
	if over {
		secs := int(math.Ceil(retry.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.writeError(w, r, domain.Errorf(domain.CodeRateLimited, "more than %d test fires and redeliveries in a minute; retry after %d seconds", h.SendsPerMinute, secs))
	}
	return over
}

// limited counts the request in the account's current one-minute window.
func (h *handler) limited(r *http.Request, account string) (time.Duration, bool) {
	return h.overLimit(r, account, "", h.RateLimitPerMinute)
}

// overLimit counts one more in the account's counter named by suffix for
// the current one-minute window, and reports whether that passes limit and
// how long until the window ends. No counter or no limit limits nothing.
// When the counter cannot be reached the request goes through: limiting
// protects the service, it must not take it down.
func (h *handler) overLimit(r *http.Request, account, suffix string, limit int) (time.Duration, bool) {
	if h.Counter == nil || limit <= 0 {
		return 0, false
	}
	now := h.Now()
	window := now.Truncate(time.Minute)
	n, err := h.Counter.CountRequest(r.Context(), account+suffix, window, time.Minute)
	if err != nil {
		h.Logger.WarnContext(r.Context(), "rate limit not checked", slog.String("account_id", account), slog.String("counter", "requests"+suffix),
			slog.String("error", err.Error()))
		return 0, false
	}
	if n <= int64(limit) {
		return 0, false
	}
	return window.Add(time.Minute).Sub(now), true
}

func bearer(header string) (string, bool) {
	scheme, key, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(key), true
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
}

func (h *handler) sourceIPs(w http.ResponseWriter, r *http.Request, _ string) {
	ips := make([]string, len(h.SourceIPs))
	for i, ip := range h.SourceIPs {
		ips[i] = ip.String()
	}
	writeJSON(w, http.StatusOK, map[string][]string{"ips": ips})
}

type listJSON[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// log records a change to an endpoint, with ids and never secrets.
func (h *handler) log(r *http.Request, msg, endpointID string) {
	h.Logger.LogAttrs(r.Context(), slog.LevelInfo, msg,
		slog.String("endpoint_id", endpointID),
		slog.String("request_id", r.Header.Get("X-Request-Id")))
}

func attrs(r *http.Request, endpointID, deliveryID string, res dispatch.Result) []slog.Attr {
	a := []slog.Attr{
		slog.String("endpoint_id", endpointID),
		slog.String("delivery_id", deliveryID),
		slog.Bool("delivered", res.Delivered()),
		slog.Int("status_code", res.StatusCode),
		slog.Int64("latency_ms", res.Latency.Milliseconds()),
		slog.String("request_id", r.Header.Get("X-Request-Id")),
	}
	if res.Err != nil {
		a = append(a, slog.String("error", res.Err.Error()))
	}
	return a
}

func attrsDelivery(r *http.Request, d domain.Delivery) []slog.Attr {
	return []slog.Attr{
		slog.String("delivery_id", d.ID), slog.String("endpoint_id", d.EndpointID), slog.String("event_id", d.EventID),
		slog.Int("next_attempt", d.AttemptCount+1), slog.String("request_id", r.Header.Get("X-Request-Id")),
	}
}
