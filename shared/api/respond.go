package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// statusOf is the one place that maps error codes to HTTP statuses.
var statusOf = map[domain.Code]int{
	domain.CodeInvalidJSON:          http.StatusBadRequest,
	domain.CodeInvalidCursor:        http.StatusBadRequest,
	domain.CodeValidationFailed:     http.StatusUnprocessableEntity,
	domain.CodeUnauthorized:         http.StatusUnauthorized,
	domain.CodeNotFound:             http.StatusNotFound,
	domain.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	domain.CodeEndpointNotTested:    http.StatusConflict,
	domain.CodeEndpointDisabled:     http.StatusConflict,
	domain.CodeEndpointDeleted:      http.StatusConflict,
	domain.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	domain.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	domain.CodeRateLimited:          http.StatusTooManyRequests,
	domain.CodeUnavailable:          http.StatusServiceUnavailable,
	domain.CodeInternal:             http.StatusInternalServerError,
}

// unavailableRetry is the Retry-After of an unavailable answer, in seconds.
const unavailableRetry = 5

type errorBody struct {
	Error struct {
		Code    domain.Code         `json:"code"`
		Message string              `json:"message"`
		Details []domain.FieldError `json:"details"` // [] when no field is named: the shape is always the same
	} `json:"error"`
}

// writeError answers with the contract's error shape. Errors that are not
// *domain.Error are logged and never shown: work still undone after the
// retries (an AWS request that used up the SDK's attempts, batch entries
// left unprocessed, a record other requests kept changing, the
// invocation's time running out) is a 503 to retry after a few seconds,
// anything else internal.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *domain.Error
	var exhausted *retry.MaxAttemptsError
	switch {
	case errors.As(err, &exhausted) || errors.Is(err, domain.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		h.Logger.ErrorContext(r.Context(), "unavailable", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
		e = domain.Errorf(domain.CodeUnavailable, "the service is unavailable for the moment; retry after %d seconds", unavailableRetry)
	case errors.As(err, &e) && statusOf[e.Code] != 0 && e.Code != domain.CodeInternal:
	default:
		h.Logger.ErrorContext(r.Context(), "internal error", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		e = domain.Errorf(domain.CodeInternal, "internal error; the request id identifies it for support")
	}
	if e.Code == domain.CodeUnauthorized {
		// RFC 9110: a 401 names the scheme it wants.
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Details = e.Code, e.Message, e.Details
	if body.Error.Details == nil {
		body.Error.Details = []domain.FieldError{}
	}
	writeJSON(w, statusOf[e.Code], body)
}

// writeJSON answers v as JSON. HTML characters are written as they are
// (json.Marshal would write "<" as six bytes, in the stored payload too,
// which then is no longer the body that was sent and signed, and grows up to
// six-fold); the answer is application/json with nosniff, never HTML.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := encode(v)
	if err != nil {
		// Only our own types are encoded here; this cannot happen for them.
		http.Error(w, `{"error":{"code":"internal","message":"internal error","details":[]}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// encode is v as JSON, as writeJSON writes it (without its final newline):
// also for an answer built of parts whose size counts.
func encode(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// responseWriter remembers the status and account for the request log line.
type responseWriter struct {
	http.ResponseWriter
	status  int
	account string
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// discardBody lets ServeMux's not-found and method-not-allowed handlers run
// for their status and Allow header while their plain-text body is dropped.
type discardBody struct{ header http.Header }

func (d discardBody) Header() http.Header         { return d.header }
func (d discardBody) Write(b []byte) (int, error) { return len(b), nil }
func (d discardBody) WriteHeader(int)             {}
