package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/domain"
)

// The small interfaces the handler needs; *store.Store satisfies them.
type (
	keyResolver interface {
		AccountByKeyHash(ctx context.Context, keyHash string) (string, error)
	}
	endpointLister interface {
		ListEndpoints(ctx context.Context, account string, limit int) ([]domain.Endpoint, error)
	}
)

// Deps is what the handler is built from.
type Deps struct {
	Keys      keyResolver
	Endpoints endpointLister
	SourceIPs []netip.Addr
	Logger    *slog.Logger
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
	h.mux.HandleFunc("GET /v1/health", h.health)
	h.mux.HandleFunc("GET /v1/source-ips", h.authed(h.sourceIPs))
	h.mux.HandleFunc("GET /v1/endpoints", h.authed(h.listEndpoints))
	return h
}

// ServeHTTP routes the request, answering unknown routes and methods with the
// contract's JSON errors instead of ServeMux's plain-text ones, and logs one
// line per request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.Now()
	rw := &responseWriter{ResponseWriter: w}
	route, pattern := h.mux.Handler(r)
	if pattern == "" {
		// ServeMux's own answer tells 404 from 405 (and sets Allow); keep the
		// status and headers, replace the body.
		probe := &responseWriter{ResponseWriter: discardBody{header: rw.Header()}}
		route.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			h.writeError(rw, r, domain.Errorf(domain.CodeMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
		} else {
			h.writeError(rw, r, domain.Errorf(domain.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
		}
	} else {
		route.ServeHTTP(rw, r)
	}
	h.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("route", pattern),
		slog.String("path", r.URL.Path),
		slog.Int("status", rw.status),
		slog.Int64("duration_ms", h.Now().Sub(start).Milliseconds()),
		slog.String("account_id", rw.account),
		slog.String("request_id", r.Header.Get("X-Request-Id")),
	)
}

// authed requires a valid API key and passes its account to next.
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
		next(w, r, account)
	}
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

func (h *handler) sourceIPs(w http.ResponseWriter, r *http.Request, _ string) {
	ips := make([]string, len(h.SourceIPs))
	for i, ip := range h.SourceIPs {
		ips[i] = ip.String()
	}
	writeJSON(w, http.StatusOK, map[string][]string{"ips": ips})
}

type endpointJSON struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	URL       string   `json:"url"`
	Triggers  []string `json:"triggers"`
	Status    string   `json:"status"`
	Enabled   bool     `json:"enabled"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
}

type listJSON[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func (h *handler) listEndpoints(w http.ResponseWriter, r *http.Request, account string) {
	eps, err := h.Endpoints.ListEndpoints(r.Context(), account, 20)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := listJSON[endpointJSON]{Data: make([]endpointJSON, 0, len(eps))}
	for _, e := range eps {
		out.Data = append(out.Data, endpointJSON{
			ID: e.ID, Name: e.Name, URL: e.URL, Triggers: e.Triggers, Status: e.Status, Enabled: e.Enabled,
			CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: e.UpdatedAt.UTC().Format(time.RFC3339),
		})
	}
	writeJSON(w, http.StatusOK, out)
}
