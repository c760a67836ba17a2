package delivery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/event"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/metrics"
	"github.com/customerthermometer/webhooks/shared/payload"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// handleIntake validates response events, sets invalid ones aside and fans
// the valid ones out.
func (h *Handler) handleIntake(ctx context.Context, msgs []Message, rec *metrics.Recorder, fail func(Message, time.Duration)) {
	type invalid struct {
		m   Message
		inv *event.Invalid
	}
	var mu sync.Mutex
	var setAside []invalid
	// One event whose AWS calls stall must not hold the batch past the
	// invocation's deadline: Lambda would then fail the whole batch, and
	// every event in it would be fanned out again.
	work, cancel := withReserve(ctx)
	defer cancel()
	// A few events at a time: each fans out with h.Concurrency writes of
	// its own, and the product of the two is what one instance holds open.
	h.parallelN(fanOutsAtOnce, len(msgs), func(i int) {
		m := msgs[i]
		defer h.recovered(ctx, m, func() { fail(m, -1) })
		ev, err := event.Parse([]byte(m.Body))
		var inv *event.Invalid
		if errors.As(err, &inv) {
			mu.Lock()
			setAside = append(setAside, invalid{m, inv})
			mu.Unlock()
			return
		}
		known, err := h.Store.AccountExists(work, ev.AccountID)
		if err != nil {
			h.infraFailure(ctx, m, err, fail)
			return
		}
		if !known {
			mu.Lock()
			setAside = append(setAside, invalid{m, &event.Invalid{EventID: ev.ID, Reason: "account_id " + ev.AccountID + " is not a known account"}})
			mu.Unlock()
			return
		}
		if err := h.fanOut(work, ev, json.RawMessage(m.Body), "", rec); err != nil {
			h.infraFailure(ctx, m, err, fail)
		}
	})
	// Invalid events go to the dead-letter queue with their reason, each
	// acknowledged only once its own send succeeded: never retried forever,
	// never lost, never holding back the rest of the batch, not even
	// another invalid event.
	h.parallelN(4, len(setAside), func(i int) {
		s := setAside[i]
		defer h.recovered(ctx, s.m, func() { fail(s.m, -1) })
		m := queue.Message{Body: s.m.Body, Attributes: map[string]string{"reason": s.inv.Reason, "event_id": s.inv.EventID}}
		attrs := []slog.Attr{slog.String("message_id", s.m.ID), slog.String("event_id", s.inv.EventID), slog.String("reason", s.inv.Reason)}
		switch {
		case m.Body == "":
			// SQS refuses an empty body (and one with characters it does
			// not take): such a body, which only a hand-made invocation
			// carries, goes in a form SQS takes, and says which.
			m.Body, m.Attributes["body_encoding"] = "-", "empty"
		case queue.Text(m.Body) != m.Body:
			m.Body, m.Attributes["body_encoding"] = base64.StdEncoding.EncodeToString([]byte(m.Body)), "base64"
		}
		if queue.MessageSize(m) > queue.SmallestMaxMessageSize {
			// An event at the queue's size limit has no room for them; the
			// log line keeps them.
			enc, ok := m.Attributes["body_encoding"]
			m.Attributes = nil
			if ok {
				m.Attributes = map[string]string{"body_encoding": enc}
			}
			attrs = append(attrs, slog.Bool("attributes_left_out", true))
		}
		if err := h.Queue.SendBatch(ctx, h.EventsDLQURL, []queue.Message{m}); err != nil {
			h.logAttrs(ctx, slog.LevelError, "invalid event not set aside; will be retried", append(attrs, slog.String("error", err.Error()))...)
			fail(s.m, h.infraDelay(s.m))
			return
		}
		rec.Count(metrics.InvalidEvents)
		h.logAttrs(ctx, slog.LevelWarn, "invalid event set aside", attrs...)
	})
}

// infraFailure sends event message m back for another try after an
// infrastructure failure: after infraDelay (30 s, growing with its
// receives), not the queue's visibility timeout of several minutes.
func (h *Handler) infraFailure(ctx context.Context, m Message, err error, fail func(Message, time.Duration)) {
	h.logAttrs(ctx, slog.LevelError, "message will be retried", slog.String("message_id", m.ID), slog.String("error", err.Error()))
	fail(m, h.infraDelay(m))
}

// fanOutBytes bounds the bodies one page of a fan-out holds: each is held
// a few times over (the body, its task message, the encoded requests that
// carry them), for up to fanOutsAtOnce pages at once, in a 128 MB function.
const (
	fanOutBytes   = 4 << 20
	fanOutsAtOnce = 4
)

// fanOutGate waits for one of the fanOutsAtOnce slots for a fan-out page
// (an event's first, or a continuation's from the tasks queue: a batch of
// ten continuations would otherwise run ten at once) and returns its
// release.
func (h *Handler) fanOutGate(ctx context.Context) (func(), error) {
	h.fanOutOnce.Do(func() { h.fanOutSlots = make(chan struct{}, fanOutsAtOnce) })
	select {
	case h.fanOutSlots <- struct{}{}:
		return func() { <-h.fanOutSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fanOutPage is the number of endpoints one page of an event of size bytes
// reaches: at most limit, and fewer for a large event, so that a page's
// bodies stay within fanOutBytes.
func fanOutPage(limit, size int) int {
	return max(min(limit, fanOutBytes/max(size, 1)), 1)
}

// fanOut creates a delivery and a task for every endpoint linked to the
// event's thermometer whose triggers match, up to FanOutPage endpoints after
// after; the rest continue in a fanout task. It is safe to repeat: delivery
// ids derive from (account, event, endpoint), existing deliveries are never
// made twice, and only deliveries never attempted get their task again.
func (h *Handler) fanOut(ctx context.Context, ev event.Event, raw json.RawMessage, after string, rec *metrics.Recorder) error {
	release, err := h.fanOutGate(ctx)
	if err != nil {
		return fmt.Errorf("fan out %s: %w", ev.ID, err)
	}
	defer release()
	page := fanOutPage(h.FanOutPage, len(raw))
	links, next, err := h.Store.LinkedEndpointsPage(ctx, ev.AccountID, ev.Thermometer.ID, after, page)
	if err != nil {
		return fmt.Errorf("fan out %s: %w", ev.ID, err)
	}
	var matched []domain.Endpoint
	for _, e := range links {
		if e.Enabled && domain.Matches(e.Triggers, ev.Type, ev.Rating) {
			matched = append(matched, e)
		}
	}
	now := h.Now().UTC()
	type result struct {
		task    *queue.Message
		payload *store.LogItem
		err     error
	}
	results := make([]result, len(matched))
	h.parallel(len(matched), func(i int) {
		e := matched[i]
		th := ev.Thermometer
		if th.Name == "" && len(e.Thermometers) > 0 {
			th.Name = e.Thermometers[0].Name // the name the account holder gave when linking
		}
		d := domain.Delivery{
			ID: ids.Derived("dlv", ev.AccountID, ev.ID, e.ID), AccountID: ev.AccountID, EndpointID: e.ID, EndpointURL: e.URL,
			EventID: ev.ID, Event: ev.Type, Trigger: ev.Trigger(), ThermometerID: ev.Thermometer.ID,
			Status: domain.DeliveryPending, RoundStart: 1, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
		}
		body := payload.Body{
			ID: d.ID, Event: ev.Type, Trigger: ev.Trigger(), EventID: ev.ID,
			OccurredAt: ev.OccurredAt.UTC().Format(time.RFC3339Nano), Test: false,
			Webhook:     payload.Webhook{ID: e.ID, Name: e.Name},
			Thermometer: payload.Thermometer(th), Response: ev.Response,
		}.JSON()
		sum := payloadHash(body)
		d.PayloadSHA256 = sum
		created, existing, err := h.Store.CreateDelivery(ctx, d, h.expires())
		if err != nil {
			results[i].err = err
			return
		}
		if !created {
			// A resent event or a repeated message: only a delivery that
			// was never attempted gets its payload and task again (the
			// first run may have stopped before writing or sending them;
			// nothing of it has reached the receiver yet).
			if existing.Status != domain.DeliveryPending || existing.AttemptCount > 0 {
				return
			}
			d = existing
			// Its body may differ from the first run's (the endpoint was
			// renamed meanwhile): the log keeps the first run's, which the
			// first run's task may carry, unless that run stopped before
			// writing it. One delivery id never goes out with two bodies.
			if err := h.Store.PutPayloadIfAbsent(ctx, store.LogItem{AccountID: d.AccountID, DeliveryID: d.ID, Payload: body, Expires: h.payloadExpires()}); err != nil {
				results[i].err = err
				return
			}
		} else {
			results[i].payload = &store.LogItem{AccountID: d.AccountID, DeliveryID: d.ID, Payload: body, Expires: h.payloadExpires()}
		}
		tm := taskMessage{Kind: "delivery", AccountID: d.AccountID, DeliveryID: d.ID, RoundStart: d.RoundStart}
		// A task carries the body only when it is the one the delivery was
		// made with; otherwise it reads the log's.
		if len(body) <= maxInlinePayload && sum == d.PayloadSHA256 {
			tm.Payload = body
		}
		results[i].task = &queue.Message{Body: tm.body()}
	})
	var tasks []queue.Message
	var payloads []store.LogItem
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("fan out %s: %w", ev.ID, r.err)
		}
		if r.payload != nil {
			payloads = append(payloads, *r.payload)
		}
		if r.task != nil {
			tasks = append(tasks, *r.task)
		}
	}
	if err := h.Store.PutLogItems(ctx, payloads); err != nil {
		return fmt.Errorf("store payloads of %s: %w", ev.ID, err)
	}
	if next != "" {
		tasks = append(tasks, queue.Message{Body: taskMessage{Kind: "fanout", Event: raw, After: next}.body()})
	}
	if err := h.Queue.SendBatch(ctx, h.TasksQueueURL, tasks); err != nil {
		return fmt.Errorf("queue deliveries of %s: %w", ev.ID, err)
	}
	if after == "" && len(matched) == 0 && next == "" {
		rec.Count(metrics.UnmatchedEvents)
	}
	rec.Add(metrics.FanOut, float64(len(matched)))
	h.logAttrs(ctx, slog.LevelInfo, "event fanned out",
		slog.String("event_id", ev.ID), slog.String("account_id", ev.AccountID), slog.String("thermometer_id", ev.Thermometer.ID),
		slog.String("trigger", ev.Trigger()), slog.Int("linked", len(links)), slog.Int("matched", len(matched)), slog.Bool("continues", next != ""))
	return nil
}
