package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/store"
)

var deliveryStatuses = []string{domain.DeliveryPending, domain.DeliveryDelivered, domain.DeliveryRetrying, domain.DeliveryFailed}

// deliveryJSON is the delivery object of API.md section 4.
type deliveryJSON struct {
	ID             string          `json:"id"`
	EndpointID     string          `json:"endpoint_id"`
	EndpointURL    string          `json:"endpoint_url"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	Trigger        string          `json:"trigger"`
	ThermometerID  string          `json:"thermometer_id"`
	Status         string          `json:"status"`
	AttemptCount   int             `json:"attempt_count"`
	LastStatusCode *int            `json:"last_status_code"`
	LastError      *string         `json:"last_error"`
	NextAttemptAt  *string         `json:"next_attempt_at"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Attempts       *[]attemptJSON  `json:"attempts,omitempty"`
	// AttemptsTruncated says that Attempts leaves out earlier ones.
	AttemptsTruncated *bool `json:"attempts_truncated,omitempty"`
}

// MaxAttemptsShown is the most attempts GET /v1/deliveries/{id} shows, the
// latest ones. A delivery redelivered again and again gathers attempts
// without end, each with up to 1 KiB of response body; all of them would
// not fit in one answer (Lambda returns at most 6 MB).
const MaxAttemptsShown = 100

type attemptJSON struct {
	Number       int     `json:"number"`
	At           string  `json:"at"`
	StatusCode   *int    `json:"status_code"`
	LatencyMS    int64   `json:"latency_ms"`
	Error        *string `json:"error"`
	ResponseBody *string `json:"response_body"`
}

func optInt(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deliveryView(d domain.Delivery) deliveryJSON {
	v := deliveryJSON{
		ID: d.ID, EndpointID: d.EndpointID, EndpointURL: d.EndpointURL, EventID: d.EventID, Event: d.Event,
		Trigger: d.Trigger, ThermometerID: d.ThermometerID, Status: d.Status, AttemptCount: d.AttemptCount,
		LastStatusCode: optInt(d.LastStatusCode), LastError: optString(d.LastError),
		CreatedAt: d.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: d.UpdatedAt.UTC().Format(time.RFC3339),
	}
	if !d.NextAttemptAt.IsZero() && !d.Final() {
		at := d.NextAttemptAt.UTC().Format(time.RFC3339)
		v.NextAttemptAt = &at
	}
	return v
}

func (h *handler) listDeliveries(w http.ResponseWriter, r *http.Request, account string) {
	var v domain.ValidationError
	q := listQuery(r, &v)
	limit := listParams(q, &v, "endpoint_id", "status")
	f := store.DeliveryFilter{EndpointID: q.Get("endpoint_id"), Status: q.Get("status")}
	if q.Has("endpoint_id") && !ids.ValidEndpointID(f.EndpointID) {
		v.Add("endpoint_id", "is not an endpoint id (ep_…)")
	}
	if q.Has("status") && !slices.Contains(deliveryStatuses, f.Status) {
		v.Add("status", "must be one of pending, delivered, retrying, failed")
	}
	if err := v.Err(); err != nil {
		h.writeError(w, r, err)
		return
	}
	// The cursor is bound to the account and to the filters of the list.
	scope := account + "/deliveries?endpoint_id=" + f.EndpointID + "&status=" + f.Status
	after := ""
	if q.Has("cursor") {
		pos, err := h.Cursors.Open(scope, q.Get("cursor"))
		if err != nil || len(pos) == 0 {
			h.writeError(w, r, domain.Errorf(domain.CodeInvalidCursor, "cursor was not issued by this service for this list"))
			return
		}
		after = string(pos)
	}
	ds, next, err := h.Deliveries.ListDeliveries(r.Context(), account, f, limit, after)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := listJSON[deliveryJSON]{Data: make([]deliveryJSON, 0, len(ds))}
	for _, d := range ds {
		out.Data = append(out.Data, deliveryView(d))
	}
	if next != "" {
		c := h.Cursors.Seal(scope, []byte(next))
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) deliveryID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !ids.ValidDeliveryID(id) {
		return "", domain.Errorf(domain.CodeNotFound, "delivery %s not found", truncate(id, 64))
	}
	return id, nil
}

func (h *handler) getDelivery(w http.ResponseWriter, r *http.Request, account string) {
	id, err := h.deliveryID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	d, payload, attempts, truncated, err := h.Deliveries.DeliveryDetail(r.Context(), account, id, MaxAttemptsShown)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v := deliveryView(d)
	if json.Valid(payload) {
		v.Payload = payload
	} else {
		v.Payload = json.RawMessage("null")
	}
	list := make([]attemptJSON, 0, len(attempts))
	for _, a := range attempts {
		list = append(list, attemptJSON{Number: a.Number, At: a.At.UTC().Format(time.RFC3339Nano), StatusCode: optInt(a.StatusCode),
			LatencyMS: a.LatencyMS, Error: optString(a.Error), ResponseBody: optString(a.ResponseBody)})
	}
	v.Attempts = &list
	v.AttemptsTruncated = &truncated
	writeJSON(w, http.StatusOK, v)
}

// canRedeliver refuses a redelivery that would never be sent: the delivery
// function stops a delivery whose endpoint is deleted or disabled without
// an attempt, and 202 promises one.
func (h *handler) canRedeliver(r *http.Request, d domain.Delivery) error {
	e, err := h.Endpoints.GetEndpoint(r.Context(), d.AccountID, d.EndpointID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return domain.Errorf(domain.CodeEndpointDeleted, "the endpoint of delivery %s has been deleted; nothing can be sent", d.ID)
	case err != nil:
		return err
	case !e.Enabled:
		return domain.Errorf(domain.CodeEndpointDisabled, "endpoint %s is disabled; enable it (PATCH /v1/endpoints/%s with \"enabled\": true) before redelivering", e.ID, e.ID)
	}
	return nil
}

// redeliver starts a new round of attempts for a delivery, recorded on the
// same delivery with the next attempt numbers. The round's task is queued
// before the round is recorded: should recording fail, the task starts the
// round itself, so an accepted redelivery is never left without a task.
func (h *handler) redeliver(w http.ResponseWriter, r *http.Request, account string) {
	if err := h.noBody(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	id, err := h.deliveryID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	queued := 0 // the round whose task is queued
	for try := 0; ; try++ {
		d, err := h.Deliveries.GetDelivery(r.Context(), account, id)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if try == 0 {
			if err := h.canRedeliver(r, d); err != nil {
				h.writeError(w, r, err)
				return
			}
			if h.sendLimited(w, r, account) {
				return
			}
		}
		next := d
		next.RoundStart = d.AttemptCount + 1
		if next.RoundStart != queued {
			if err := h.Tasks.Enqueue(r.Context(), next); err != nil {
				h.writeError(w, r, err)
				return
			}
			queued = next.RoundStart
		}
		now := h.Now()
		started, err := h.Deliveries.StartRound(r.Context(), account, id, d.AttemptCount, now, now.Add(h.Retention), now.Add(max(h.PayloadRetention, h.Retention)))
		if errors.Is(err, store.ErrConflict) {
			// An attempt was recorded meanwhile. The task may have got to
			// the delivery function first and started its round itself;
			// otherwise the round starts after that attempt.
			cur, gerr := h.Deliveries.GetDelivery(r.Context(), account, id)
			switch {
			case gerr != nil:
				err = gerr
			case cur.RoundStart >= next.RoundStart:
				started, err = cur, nil
			case try < 3:
				continue
			default:
				err = busy(err)
			}
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.Logger.LogAttrs(r.Context(), 0, "redelivery queued", attrsDelivery(r, started)...)
		writeJSON(w, http.StatusAccepted, deliveryView(started))
		return
	}
}
