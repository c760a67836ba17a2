package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/event"
	"github.com/customerthermometer/webhooks/shared/metrics"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// attempt is one task's work in a batch.
type attempt struct {
	m        Message
	task     taskMessage
	d        domain.Delivery
	ep       domain.Endpoint
	number   int
	res      dispatch.Result
	at       time.Time
	err      error // infrastructure failure before sending
	done     bool  // acknowledged without an attempt
	moveAway bool  // finally failed: hand the message to SQS's dead-letter redrive
	// notYet is how long until the delivery's next attempt is due, for a
	// message that came back early.
	notYet time.Duration
	// twin is the task of the same batch that attempts this task's delivery
	// instead of this one.
	twin *attempt
}

// withReserve is ctx ending bookkeeping before ctx's deadline (a quarter of
// the time left, if shorter), for the work whose outcome must still be
// recorded or reported before the invocation ends.
func withReserve(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline.Add(-min(bookkeeping, time.Until(deadline)/4)))
}

// readTask decodes a tasks-queue message body into t, and says what is
// wrong with it if it is not a task this service writes.
func readTask(body string, t *taskMessage) string {
	if err := json.Unmarshal([]byte(body), t); err != nil {
		return "not a task: " + err.Error()
	}
	switch t.Kind {
	case "delivery":
		if !domain.ValidAccountID(t.AccountID) || t.DeliveryID == "" || len(t.DeliveryID) > 128 || t.RoundStart < 1 {
			return "a delivery task needs account_id, delivery_id and round_start"
		}
	case "fanout":
		if len(t.Event) == 0 {
			return "a fan-out task needs its event"
		}
	default:
		return fmt.Sprintf("kind %.64q is neither delivery nor fanout", t.Kind)
	}
	return ""
}

// setAside hands a task message this service cannot act on to the tasks
// queue's dead-letter redrive, where an operator can read it: only this
// service writes to that queue, so it is a bug's or a hand-made message,
// and neither dropping it (a fan-out's remaining endpoints with it) nor
// retrying it forever would do. At its last receive it counts as stranded.
func (h *Handler) setAside(ctx context.Context, a *attempt, reason string, rec *metrics.Recorder) {
	h.logAttrs(ctx, slog.LevelError, "unreadable task set aside", slog.String("message_id", a.m.ID),
		slog.Int("receives", a.m.ReceiveCount), slog.String("reason", reason))
	if h.lastReceive(a.m) {
		rec.Count(metrics.StrandedTasks)
	}
	a.moveAway = true
}

// bookkeeping is how much of an invocation's time the attempts of a batch
// leave for writing them to the log, settling their deliveries and hiding
// their messages (a quarter of it, when the invocation has less than four
// times this).
const bookkeeping = 15 * time.Second

// handleTasks makes one attempt per delivery task, concurrently, then writes
// the attempts to the log in batches and settles each delivery.
func (h *Handler) handleTasks(ctx context.Context, msgs []Message, rec *metrics.Recorder, fail func(Message, time.Duration)) {
	if len(msgs) == 0 {
		return
	}
	work := make([]*attempt, len(msgs))
	for i, m := range msgs {
		a := &attempt{m: m}
		work[i] = a
		if reason := readTask(a.m.Body, &a.task); reason != "" {
			h.setAside(ctx, a, reason, rec)
		}
	}
	pairTwins(work)
	// The attempts must leave time for what follows them: an AWS call that
	// hangs for one task would otherwise hold back the log and the outcome
	// of every webhook the batch has sent until the invocation times out,
	// and they would all be sent again.
	sendCtx, cancel := withReserve(ctx)
	defer cancel()
	h.parallel(len(work), func(i int) {
		a := work[i]
		defer h.recovered(ctx, a.m, func() { a.done, a.err = false, errors.New("internal error") })
		switch {
		case a.done, a.moveAway, a.twin != nil:
		case a.task.Kind == "fanout":
			ev, err := event.Parse(a.task.Event)
			if err != nil {
				h.setAside(ctx, a, "its event: "+err.Error(), rec)
				return
			}
			a.done = true
			if err := h.fanOut(sendCtx, ev, a.task.Event, a.task.After, rec); err != nil {
				a.done, a.err = false, err
			}
		default:
			h.prepareAndSend(sendCtx, a, rec)
		}
	})

	// Log every attempt made, in batches, before any summary claims it;
	// each request sent keeps its own record, also when another invocation
	// sent the same attempt (the one whose summary write wins decides the
	// delivery's state, and both requests were sent).
	var items []store.LogItem
	var sent []*attempt
	for _, a := range work {
		if a.number > 0 {
			attempt := a.res.Attempt(a.number, a.at)
			items = append(items, store.LogItem{AccountID: a.d.AccountID, DeliveryID: a.d.ID, Expires: h.expires(), Request: store.NewRequestKey(), Attempt: &attempt})
			sent = append(sent, a)
		}
	}
	if err := h.Store.PutLogItems(ctx, items); err != nil && len(items) > 1 {
		// Each on its own: a webhook whose record is written is settled,
		// and only those whose record could not be written are sent again.
		logCtx, cancel := withReserve(ctx)
		h.parallel(len(items), func(i int) {
			if err := h.Store.PutLogItems(logCtx, items[i:i+1]); err != nil {
				sent[i].err = fmt.Errorf("log attempt %d of %s: %w", sent[i].number, sent[i].d.ID, err)
			}
		})
		cancel()
	} else if err != nil {
		sent[0].err = fmt.Errorf("log attempt %d of %s: %w", sent[0].number, sent[0].d.ID, err)
	}

	h.parallel(len(work), func(i int) {
		a := work[i]
		defer h.recovered(ctx, a.m, func() { fail(a.m, h.afterInfraFailure(a.m, rec)) })
		switch {
		case a.twin != nil:
			// Settled below, once its twin has.
		case a.err != nil:
			msg := "task will be retried"
			if h.lastReceive(a.m) {
				// Its last receive: SQS moves it to the dead-letter queue
				// next, and a redrive continues the delivery.
				msg = "delivery task goes to the dead-letter queue"
			}
			h.logAttrs(ctx, slog.LevelError, msg, slog.String("message_id", a.m.ID), slog.String("delivery_id", a.task.DeliveryID),
				slog.Int("receives", a.m.ReceiveCount), slog.String("error", a.err.Error()))
			fail(a.m, h.afterInfraFailure(a.m, rec))
		case a.moveAway:
			fail(a.m, 0)
		case a.notYet > 0:
			if !h.handOver(ctx, a, a.notYet) {
				fail(a.m, a.notYet)
			}
		case a.done:
		default:
			if after, retry := h.settle(ctx, a, rec); retry {
				fail(a.m, after)
			}
		}
	})
	h.parallel(len(work), func(i int) {
		if a := work[i]; a.twin != nil {
			defer h.recovered(ctx, a.m, func() { fail(a.m, h.afterInfraFailure(a.m, rec)) })
			h.settleTwin(ctx, a, rec, fail)
		}
	})
}

// pairTwins marks every delivery task in work whose delivery another task
// of the same batch also names (a second task queued by a repeated fan-out,
// a redelivery, a hand-over left behind) as that task's twin. Only one of
// them makes the attempt, the one of the latest round: two attempts of one
// delivery in one batch would send the webhook twice for nothing.
func pairTwins(work []*attempt) {
	type key [2]string
	pending := func(a *attempt) bool { return !a.done && !a.moveAway && a.task.Kind == "delivery" }
	latest := map[key]*attempt{}
	for _, a := range work {
		k := key{a.task.AccountID, a.task.DeliveryID}
		if w, ok := latest[k]; pending(a) && (!ok || a.task.RoundStart > w.task.RoundStart) {
			latest[k] = a
		}
	}
	for _, a := range work {
		if w := latest[key{a.task.AccountID, a.task.DeliveryID}]; pending(a) && w != a {
			a.twin = w
		}
	}
}

// settleTwin decides on a task whose twin made the batch's attempt, as on
// one that lost a race to record it: the twin's outcome decides.
func (h *Handler) settleTwin(ctx context.Context, a *attempt, rec *metrics.Recorder, fail func(Message, time.Duration)) {
	h.logAttrs(ctx, slog.LevelInfo, "second task for a delivery in one batch", slog.String("delivery_id", a.task.DeliveryID),
		slog.String("message_id", a.m.ID), slog.String("attempted_by", a.twin.m.ID))
	if a.twin.err != nil {
		fail(a.m, h.afterInfraFailure(a.m, rec))
		return
	}
	if a.twin.moveAway && a.twin.number == 0 {
		// The twin was set aside unread or unfit (a hand-made task naming
		// a later round, say) and attempted nothing: this task comes back
		// at once to make the attempt.
		fail(a.m, 0)
		return
	}
	if after, keep := h.afterConflict(ctx, rec, a.m, domain.Delivery{AccountID: a.task.AccountID, ID: a.task.DeliveryID}); keep {
		fail(a.m, after)
	}
}

// prepareAndSend reads the delivery and its endpoint and, unless there is
// nothing to attempt, sends the webhook.
func (h *Handler) prepareAndSend(ctx context.Context, a *attempt, rec *metrics.Recorder) {
	d, err := h.Store.GetDelivery(ctx, a.task.AccountID, a.task.DeliveryID)
	if errors.Is(err, domain.ErrNotFound) {
		// A delivery is made before its first task, so it has expired from
		// the log: a task redriven from the dead-letter queue later than
		// LogRetentionDays allows. Nothing is left to send; the operator
		// hears of it (StrandedDeliveriesAlarm).
		h.logAttrs(ctx, slog.LevelError, "task for a delivery no longer in the log dropped", slog.String("delivery_id", a.task.DeliveryID),
			slog.String("account_id", a.task.AccountID))
		rec.Count(metrics.StrandedTasks)
		a.done = true
		return
	}
	if err != nil {
		a.err = err
		return
	}
	switch {
	case a.task.RoundStart > d.AttemptCount+1:
		// Every task this service writes names a round that starts at the
		// delivery's next attempt at the latest. One past it would start a
		// new round at every receive, and its retries would never run out.
		h.setAside(ctx, a, fmt.Sprintf("round_start %d is past delivery %s's next attempt, %d", a.task.RoundStart, d.ID, d.AttemptCount+1), rec)
		return
	case a.task.RoundStart < d.RoundStart && !(d.Status == domain.DeliveryFailed && redriven(a.m, d)):
		// A message of an earlier round; the current round has its own.
		// (Unless it was redriven from the dead-letter queue after a later
		// round ended failed, a redelivery stopped while the endpoint was
		// disabled, say: that redrive starts a new round, below.)
		a.done = true
		return
	case d.Status == domain.DeliveryFailed && d.AttemptCount < d.RoundStart && a.task.RoundStart == d.RoundStart && !redriven(a.m, d):
		// A second message of a round stopped before its first attempt
		// (the endpoint was disabled or deleted): the event came while the
		// endpoint took none, so even an endpoint enabled again since must
		// not get it. Its round is over, not yet to start.
		a.done = true
		return
	case a.task.RoundStart > d.AttemptCount && (d.Status == domain.DeliveryFailed || d.Status == domain.DeliveryDelivered || a.task.RoundStart > d.RoundStart):
		// The message of a new round nothing has started yet: a redriven
		// delivery's (handed over below), or a redelivery's that got here
		// before the API recorded its start, or whose start the API could
		// not record. However often it has been received: a process that
		// died before starting the round must not leave it undone.
		if d, err = h.Store.StartRound(ctx, d.AccountID, d.ID, d.AttemptCount, h.Now(), h.expires(), h.payloadExpires()); err != nil {
			a.err = err
			return
		}
		h.logAttrs(ctx, slog.LevelInfo, "new round started", slog.String("delivery_id", d.ID), slog.Int("next_attempt", d.AttemptCount+1))
	case d.Status == domain.DeliveryDelivered:
		a.done = true
		return
	case d.Status == domain.DeliveryFailed && redriven(a.m, d):
		// Redriven from the dead-letter queue: a new round. Its body names
		// the round that failed, so its retries would be taken for that
		// round's and dropped: it hands over to a message of the new round,
		// which starts it (above).
		next := a.task
		next.RoundStart = d.AttemptCount + 1
		if err := h.Queue.SendBatch(ctx, h.TasksQueueURL, []queue.Message{{Body: next.body()}}); err != nil {
			a.err = err
			return
		}
		a.done = true
		return
	case d.Status == domain.DeliveryFailed && spare(a.m, d):
		h.dropSpare(ctx, a, d)
		return
	case d.Status == domain.DeliveryFailed && failedByGone(d):
		// A 410 disables the endpoint, and the worker that recorded it
		// keeps its message until it has: this is that message, back
		// after the update failed or the worker stopped before it.
		// (Redriven from the dead-letter queue, it was taken for a new
		// round above, and sends once more.)
		if err := h.disableGone(ctx, d); err != nil {
			a.err = err
			return
		}
		a.done = true
		return
	case d.Status == domain.DeliveryFailed:
		// Finally failed and waiting for SQS to move it to the dead-letter
		// queue, which happens once its receive count passes the queue's
		// maxReceiveCount.
		a.moveAway = true
		return
	}
	a.d = d
	if wait := d.NextAttemptAt.Sub(h.Now()); d.Status == domain.DeliveryRetrying && wait > earlyTolerance {
		if spare(a.m, d) {
			h.dropSpare(ctx, a, d)
			return
		}
		// Back before its retry is due: its visibility change was lost, or
		// it was sent for a delay longer than SQS allows. It waits.
		a.notYet = min(wait, maxHidden)
		return
	}
	ep, err := h.Store.GetEndpoint(ctx, d.AccountID, d.EndpointID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		h.stop(ctx, a, "endpoint deleted", rec)
		// The link that led here is left over from a deletion that stopped
		// part of the way; without it, the thermometer's next events no
		// longer reach the gone endpoint.
		if err := h.Store.DeleteLink(ctx, d.AccountID, d.ThermometerID, d.EndpointID); err != nil {
			h.logAttrs(ctx, slog.LevelWarn, "link of a deleted endpoint not removed", slog.String("endpoint_id", d.EndpointID), slog.String("error", err.Error()))
		}
		return
	case err != nil:
		a.err = err
		return
	case !ep.Enabled:
		h.stop(ctx, a, "endpoint disabled", rec)
		return
	case d.AttemptCount == 0 && !a.task.Redelivery && !ep.Links(d.ThermometerID):
		// Fan-out found a link the endpoint no longer has: the account
		// holder unlinked the thermometer meanwhile, or a write of the
		// endpoint stopped between its transactions and left the link.
		// Only the first attempt is checked: a retry's event matched when
		// it was first sent, and a redelivery is asked for.
		h.stop(ctx, a, "thermometer no longer linked to the endpoint", rec)
		h.repairLink(ctx, ep, d.ThermometerID)
		return
	case d.AttemptCount == 0 && !a.task.Redelivery && !domain.MatchesTrigger(ep.Triggers, d.Trigger):
		h.stop(ctx, a, "endpoint no longer triggered by "+d.Trigger, rec)
		h.repairLink(ctx, ep, d.ThermometerID)
		return
	}
	a.ep = ep
	body := []byte(a.task.Payload)
	if len(body) > 0 && payloadHash(body) != d.PayloadSHA256 {
		// Not the body fan-out made: a resent event's task with the new
		// body the log now holds, or a message not of this service's
		// making, whose bytes must not go out signed with the endpoint's
		// secret. The log's body is sent instead.
		if d.PayloadSHA256 != "" {
			h.logAttrs(ctx, slog.LevelWarn, "task's payload is not its delivery's; the log's is sent", slog.String("delivery_id", d.ID),
				slog.String("message_id", a.m.ID))
		}
		body = nil
	}
	if len(body) == 0 {
		body, err = h.Store.Payload(ctx, d.AccountID, d.ID)
		switch {
		case errors.Is(err, domain.ErrNotFound) && h.Now().Sub(d.CreatedAt) > payloadGrace:
			// Expired from the log: there is nothing left to send.
			h.stop(ctx, a, "payload no longer in the log", rec)
			return
		case err != nil:
			a.err = err
			return
		}
	}
	hook := dispatch.Webhook{URL: ep.URL, EndpointID: ep.ID, DeliveryID: d.ID, Event: d.Event, Attempt: d.AttemptCount + 1, Body: body}
	secret, err := h.secrets.open(ctx, h.Secrets, ep.Secret, domain.SealContext(ep.AccountID, ep.ID, domain.PurposeSecret))
	if err != nil {
		a.err = err
		return
	}
	hook.Secret = string(secret)
	if ep.BasicAuth != nil {
		pw, err := h.secrets.open(ctx, h.Secrets, ep.BasicAuth.Password, domain.SealContext(ep.AccountID, ep.ID, domain.PurposePassword))
		if err != nil {
			a.err = err
			return
		}
		hook.BasicAuth = &dispatch.BasicAuth{Username: ep.BasicAuth.Username, Password: string(pw)}
	}
	a.number, a.at = hook.Attempt, h.Now().UTC()
	a.res = h.Sender.Send(ctx, hook)
	rec.Add(metrics.AttemptLatency, float64(a.res.Latency.Milliseconds()))
	if !a.res.Delivered() {
		rec.Count(metrics.AttemptFailures)
	}
}

// payloadHash is the hex SHA-256 of a webhook body, as deliveries keep it.
func payloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// redriven reports whether m, which names failed delivery d's last round,
// was redriven from the dead-letter queue rather than left over from that
// round (a duplicate, or the message that carried its last attempt). A
// redrive makes a new message, so one sent after the delivery failed is a
// redrive. Without a sent time, a first receive is taken for one.
func redriven(m Message, d domain.Delivery) bool {
	if !m.SentAt.IsZero() {
		return m.SentAt.After(d.UpdatedAt)
	}
	return m.ReceiveCount <= 1
}

// spare reports whether m is a spare task message of d, which another
// message carries on: not the message that made d's last recorded attempt,
// and sent before that attempt was recorded (a second task from a fan-out
// repeated after a crash, or a message a hand-over left behind when its
// invocation died). A message sent since then (a hand-over's fresh message,
// a redelivery) is never a spare, nor is any message while the carrier or
// the sent time is unknown. "Before" leaves spareMargin for the clocks of
// SQS and of the function: a spare taken for a carrier only sends some
// attempts twice, a carrier taken for a spare would strand the delivery.
func spare(m Message, d domain.Delivery) bool {
	return d.Carrier != "" && m.ID != d.Carrier && !m.SentAt.IsZero() && m.SentAt.Before(d.UpdatedAt.Add(-spareMargin))
}

// spareMargin is how much earlier than a delivery's last record a message
// must have been sent to count as a spare.
const spareMargin = time.Second

// dropSpare acknowledges a spare message of d without an attempt.
func (h *Handler) dropSpare(ctx context.Context, a *attempt, d domain.Delivery) {
	a.done = true
	h.logAttrs(ctx, slog.LevelInfo, "spare task message dropped", slog.String("delivery_id", d.ID), slog.String("message_id", a.m.ID))
}

// payloadGrace is how old a delivery must be before a payload missing from
// the log is taken for expired (the shortest retention is a day); younger,
// it is an error retried like any other.
const payloadGrace = time.Hour

// earlyTolerance is how early a message may come back and still make its
// delivery's next attempt.
const earlyTolerance = 2 * time.Second

// maxHidden is the longest a message can be hidden by a visibility change:
// SQS refuses one that would end more than 12 hours after the message was
// received, and the change is made when the batch is done, up to the
// function's timeout (60 s) after the receive, later still if the
// event-source mapping held the message a while: this leaves three minutes
// for that.
const maxHidden = config.MaxRetryDelay - 3*time.Minute

// maxDelay is the longest delay SQS allows on a new message.
const maxDelay = 15 * time.Minute

// maxMessageAge is how old a message may grow before its delivery continues
// in a fresh one. SQS deletes a message once it is older than its queue's
// retention period, however it was hidden: 14 days in the template, 4 by
// SQS's default. A retry schedule may be longer than either.
const maxMessageAge = 3 * 24 * time.Hour

// handOver continues a delivery that must wait after in a fresh message,
// when its own message has been received half the queue's maxReceiveCount
// times or would be older than maxMessageAge by then. Every receive counts,
// including those lost to crashed or timed-out invocations, and SQS moves a
// message received once too often to the dead-letter queue even when its
// delivery still has attempts to make; a message older than the queue's
// retention period it deletes. The fresh message comes back after after, or
// after SQS's longest delay, and then waits for the rest. It reports whether
// the old message may go; when the send fails, the old message carries on.
func (h *Handler) handOver(ctx context.Context, a *attempt, after time.Duration) bool {
	often := h.MaxReceives > 0 && a.m.ReceiveCount >= max(1, h.MaxReceives/2)
	old := !a.m.SentAt.IsZero() && h.Now().Sub(a.m.SentAt)+after > maxMessageAge
	if !often && !old {
		return false
	}
	err := h.Queue.SendBatch(ctx, h.TasksQueueURL, []queue.Message{{Body: a.task.body(), Delay: min(after, maxDelay)}})
	if err != nil {
		h.logAttrs(ctx, slog.LevelWarn, "delivery not moved to a fresh message", slog.String("delivery_id", a.task.DeliveryID),
			slog.Int("receives", a.m.ReceiveCount), slog.String("error", err.Error()))
		return false
	}
	attrs := []slog.Attr{slog.String("delivery_id", a.task.DeliveryID), slog.Int("receives", a.m.ReceiveCount)}
	if !a.m.SentAt.IsZero() {
		attrs = append(attrs, slog.String("message_age", h.Now().Sub(a.m.SentAt).Round(time.Second).String()))
	}
	h.logAttrs(ctx, slog.LevelInfo, "delivery continues in a fresh message", attrs...)
	return true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// stop ends a delivery without an attempt: its endpoint is gone or disabled.
func (h *Handler) stop(ctx context.Context, a *attempt, reason string, rec *metrics.Recorder) {
	d := a.d
	prev := d.AttemptCount
	d.Status, d.LastError, d.NextAttemptAt, d.UpdatedAt = domain.DeliveryFailed, reason, time.Time{}, h.Now().UTC()
	err := h.Store.SaveDelivery(ctx, d, prev, h.expires())
	if errors.Is(err, store.ErrConflict) {
		// Another worker made an attempt meanwhile; its outcome decides.
		switch after, keep := h.afterConflict(ctx, rec, a.m, d); {
		case !keep:
			a.done = true
		case after > 0:
			a.notYet = after
		default:
			a.moveAway = true
		}
		return
	}
	if err != nil {
		a.err = err
		return
	}
	a.done = true
	rec.Count(metrics.DeliveryFailures)
	h.logAttrs(ctx, slog.LevelInfo, "delivery stopped", slog.String("delivery_id", d.ID), slog.String("endpoint_id", d.EndpointID), slog.String("reason", reason))
}

// repairLink brings the link that made a delivery in line with the
// endpoint, so that later events follow the endpoint as it is.
func (h *Handler) repairLink(ctx context.Context, ep domain.Endpoint, thermometer string) {
	if err := h.Store.RepairLink(ctx, ep, thermometer); err != nil {
		h.logAttrs(ctx, slog.LevelWarn, "link not repaired", slog.String("endpoint_id", ep.ID), slog.String("error", err.Error()))
	}
}

// settle records the attempt's outcome on the delivery (and, when it
// changes, the endpoint's state) and says whether the message must come
// back, and when.
func (h *Handler) settle(ctx context.Context, a *attempt, rec *metrics.Recorder) (time.Duration, bool) {
	d, res := a.d, a.res
	prev := d.AttemptCount
	d.AttemptCount, d.LastStatusCode, d.LastError, d.UpdatedAt = a.number, res.StatusCode, errString(res.Err), h.Now().UTC()
	d.NextAttemptAt, d.Carrier, d.LastURL = time.Time{}, a.m.ID, a.ep.URL
	var retryAfter time.Duration
	retry := false
	// A record whose round starts after its next attempt (written by hand,
	// or by a bug) counts that attempt as its round's first.
	inRound := max(a.number-d.RoundStart+1, 1)
	switch {
	case res.Delivered():
		d.Status = domain.DeliveryDelivered
	case res.Gone():
		d.Status = domain.DeliveryFailed
	case inRound < len(h.Schedule)+1:
		// A receiver shedding load (429 or 503) may ask for a longer wait
		// than the step: retrying sooner would only meet the same refusal.
		// The schedule's next delay bounds it, so that the round still ends
		// within RoundSpan, which the log's retention outlasts. The jitter
		// applies to the wait either way: deliveries a receiver refused
		// together, or told to come back at one time, are spread out.
		step := config.RetryDelay(h.Schedule, inRound-1, res.RetryAfter)
		var jitter time.Duration
		if h.Jitter != nil {
			jitter = h.Jitter(step)
		}
		retryAfter = step + jitter
		if retryAfter > maxHidden {
			// The visibility change that hides the message counts from its
			// receive, and SQS refuses one that would end more than 12
			// hours after it. Below that limit the jitter still spreads
			// the retries of receivers that failed together (by up to a
			// twentieth of the step: 36 minutes of a 12-hour one).
			retryAfter = maxHidden - jitter/4
		}
		d.Status, d.NextAttemptAt, retry = domain.DeliveryRetrying, h.Now().UTC().Add(retryAfter), true
	default:
		d.Status, retryAfter, retry = domain.DeliveryFailed, 0, true // to the dead-letter queue
	}
	err := h.Store.SaveDelivery(ctx, d, prev, h.expires())
	if errors.Is(err, store.ErrConflict) {
		// Another worker recorded this attempt first (a duplicated task).
		h.logAttrs(ctx, slog.LevelWarn, "duplicate attempt", slog.String("delivery_id", d.ID), slog.Int("attempt", a.number))
		if res.Delivered() && h.deliveredAfterAll(ctx, a, d, rec) {
			return 0, false
		}
		return h.afterConflict(ctx, rec, a.m, d)
	}
	if err != nil {
		h.logAttrs(ctx, slog.LevelError, "attempt not recorded; will be retried", slog.String("delivery_id", d.ID), slog.String("error", err.Error()))
		return h.afterInfraFailure(a.m, rec), true
	}
	attrs := []slog.Attr{
		slog.String("delivery_id", d.ID), slog.String("account_id", d.AccountID), slog.String("endpoint_id", d.EndpointID),
		slog.String("event_id", d.EventID), slog.Int("attempt", a.number), slog.String("status", d.Status),
		slog.Int("status_code", res.StatusCode), slog.Int64("latency_ms", res.Latency.Milliseconds()),
	}
	if res.Err != nil {
		attrs = append(attrs, slog.String("error", res.Err.Error()))
	}
	if retry && d.Status == domain.DeliveryRetrying {
		attrs = append(attrs, slog.String("retry_in", retryAfter.Round(time.Millisecond).String()))
	}
	h.logAttrs(ctx, slog.LevelInfo, "attempt", attrs...)
	if d.Status == domain.DeliveryRetrying && h.handOver(ctx, a, retryAfter) {
		return 0, false
	}

	switch d.Status {
	case domain.DeliveryDelivered:
		rec.Count(metrics.Deliveries)
		if a.ep.Failing {
			_ = h.updateEndpoint(ctx, a.ep, false, func(e *domain.Endpoint) bool { ch := e.Failing; e.Failing = false; return ch })
		}
	case domain.DeliveryFailed:
		rec.Count(metrics.DeliveryFailures)
		if res.Gone() {
			// 410: the receiver says it is gone for good. The message stays
			// until the endpoint is disabled, and comes back to finish it.
			if h.disableGone(ctx, d) != nil {
				return h.afterInfraFailure(a.m, rec), true
			}
		} else {
			_ = h.updateEndpoint(ctx, a.ep, false, func(e *domain.Endpoint) bool { ch := !e.Failing; e.Failing = true; return ch })
		}
	}
	return retryAfter, retry
}

// deliveredAfterAll records d, delivered by this worker's request, over
// the failure another worker recorded first for the same attempt (its
// request of the same webhook failed): the receiver has the webhook, and
// leaving the delivery retrying would send it again. A 410 answer stays,
// having disabled the endpoint. It reports whether d is now recorded.
func (h *Handler) deliveredAfterAll(ctx context.Context, a *attempt, d domain.Delivery, rec *metrics.Recorder) bool {
	cur, err := h.Store.GetDelivery(ctx, d.AccountID, d.ID)
	if err != nil || cur.Status == domain.DeliveryDelivered || cur.AttemptCount != a.number || cur.RoundStart != d.RoundStart || failedByGone(cur) {
		return false
	}
	if err := h.Store.SaveDelivery(ctx, d, a.number, h.expires()); err != nil {
		return false
	}
	rec.Count(metrics.Deliveries)
	h.logAttrs(ctx, slog.LevelInfo, "attempt", slog.String("delivery_id", d.ID), slog.String("account_id", d.AccountID),
		slog.String("endpoint_id", d.EndpointID), slog.String("event_id", d.EventID), slog.Int("attempt", a.number),
		slog.String("status", d.Status), slog.Int("status_code", a.res.StatusCode), slog.String("replaces", cur.Status))
	if cur.Status == domain.DeliveryFailed || a.ep.Failing {
		_ = h.updateEndpoint(ctx, a.ep, false, func(e *domain.Endpoint) bool { ch := e.Failing; e.Failing = false; return ch })
	}
	return true
}

// afterConflict says what becomes of message m of a task that lost the race
// to record d's state to another worker. The other worker's message may
// well be this same one: SQS now and then hands a message to two receivers
// at once, and deleting it through either receipt handle may delete it. So
// m stays while the delivery still needs it, as a message that arrived
// after the other worker had finished would: hidden until the next attempt
// is due, or left for the dead-letter queue once the delivery has failed.
// Only a spare message (another message carries the delivery) goes.
func (h *Handler) afterConflict(ctx context.Context, rec *metrics.Recorder, m Message, d domain.Delivery) (time.Duration, bool) {
	cur, err := h.Store.GetDelivery(ctx, d.AccountID, d.ID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return 0, false
	case err != nil:
		h.logAttrs(ctx, slog.LevelError, "delivery not read after a duplicate attempt; the task will be retried",
			slog.String("delivery_id", d.ID), slog.String("error", err.Error()))
		return h.afterInfraFailure(m, rec), true
	case cur.Status == domain.DeliveryDelivered || spare(m, cur):
		return 0, false
	case cur.Status == domain.DeliveryFailed:
		return 0, true
	case cur.Status == domain.DeliveryRetrying:
		return min(max(cur.NextAttemptAt.Sub(h.Now()), time.Second), maxHidden), true
	default:
		return h.afterInfraFailure(m, rec), true
	}
}

// updateEndpoint applies change to the endpoint's current state and saves it
// when it changed anything, its links too when links is set (a change fan-out
// reads). A failure is logged and returned; only a 410's disabling is retried
// (the failing flag follows the endpoint's next delivery anyway). An
// endpoint deleted meanwhile needs nothing.
func (h *Handler) updateEndpoint(ctx context.Context, ep domain.Endpoint, links bool, change func(*domain.Endpoint) bool) error {
	var err error
	for try := 0; try < 5; try++ {
		var cur domain.Endpoint
		cur, err = h.Store.GetEndpoint(ctx, ep.AccountID, ep.ID)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			break
		}
		if !change(&cur) {
			return nil
		}
		cur.UpdatedAt = h.Now().UTC()
		if links {
			err = h.Store.SaveEndpoint(ctx, cur, cur.Thermometers)
		} else {
			err = h.Store.SaveEndpointState(ctx, cur)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			break
		}
		h.logAttrs(ctx, slog.LevelInfo, "endpoint status changed", slog.String("endpoint_id", ep.ID), slog.String("status", cur.Status()))
		return nil
	}
	h.logAttrs(ctx, slog.LevelError, "endpoint state not updated", slog.String("endpoint_id", ep.ID), slog.String("error", err.Error()))
	return err
}

// failedByGone reports whether failed delivery d ended with a 410 answer to
// an attempt of its current round, rather than stopped without one (a
// redelivery's round stopped because the 410 had disabled the endpoint
// keeps that status code).
func failedByGone(d domain.Delivery) bool {
	return d.LastStatusCode == http.StatusGone && d.AttemptCount >= d.RoundStart
}

// disableGone disables the endpoint of d, which a 410 ended, unless that is
// done or the endpoint now points elsewhere: the 410 came from the URL d's
// last attempt was sent to, and says nothing of another one the account
// holder has set since. (Other changes, the service's own failing flag
// among them, do not matter.)
func (h *Handler) disableGone(ctx context.Context, d domain.Delivery) error {
	return h.updateEndpoint(ctx, domain.Endpoint{AccountID: d.AccountID, ID: d.EndpointID}, true, func(e *domain.Endpoint) bool {
		if !e.Enabled || e.URL != d.LastURL {
			return false
		}
		e.Enabled, e.Gone = false, true
		return true
	})
}
