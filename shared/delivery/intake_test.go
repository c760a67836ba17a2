package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// limitedQueue refuses, as SQS does, a message larger than max (its body
// and its attributes' names, types and values), and any message whose body
// contains refuse.
type limitedQueue struct {
	max    int
	refuse string
	mu     sync.Mutex
	sent   []queue.Message
}

func (q *limitedQueue) SendBatch(_ context.Context, _ string, msgs []queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		if queue.MessageSize(m) > q.max {
			return errors.New("InvalidParameterValue: message must be shorter than the queue's maximum message size")
		}
		if q.refuse != "" && strings.Contains(m.Body, q.refuse) {
			return errors.New("InternalError")
		}
	}
	q.sent = append(q.sent, msgs...)
	return nil
}

func (q *limitedQueue) ChangeVisibility(context.Context, string, []queue.Visibility) error {
	return nil
}

// TestEveryInvalidEventIsSetAsideOnItsOwn: an event at the queue's size
// limit, which has no room left for the reason attributes, is set aside
// without them (the log keeps them); and one set-aside failing to send
// keeps only that message back, not the batch's other invalid events.
func TestEveryInvalidEventIsSetAsideOnItsOwn(t *testing.T) {
	q := &limitedQueue{max: queue.SmallestMaxMessageSize, refuse: "evt_unlucky"}
	var logs strings.Builder
	var mu sync.Mutex
	h := &Handler{Queue: q, TasksQueueURL: "https://sqs.example/1/tasks", EventsDLQURL: "https://sqs.example/1/events-dlq", Now: time.Now,
		Logger: slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) }), nil))}
	huge := `{"event_id":"evt_huge","pad":"` + strings.Repeat("x", queue.SmallestMaxMessageSize-len(`{"event_id":"evt_huge","pad":""}`)) + `"}`
	failed := h.Handle(context.Background(), []Message{
		{ID: "m-small", Body: "not json", Queue: "events"},
		{ID: "m-huge", Body: huge, Queue: "events"},
		{ID: "m-unlucky", Body: `{"event_id":"evt_unlucky"}`, Queue: "events"},
	})
	if strings.Join(failed, ",") != "m-unlucky" {
		t.Errorf("kept back %v, want only the one whose send failed", failed)
	}
	if len(q.sent) != 2 {
		t.Fatalf("%d events set aside, want 2", len(q.sent))
	}
	for _, m := range q.sent {
		if strings.Contains(m.Body, "evt_huge") != (m.Attributes == nil) {
			t.Errorf("attributes %v on a %d-byte event", m.Attributes, len(m.Body))
		}
	}
	for _, want := range []string{`"msg":"invalid event set aside","message_id":"m-huge","event_id":"evt_huge","reason":"body is`,
		`"msg":"invalid event not set aside; will be retried","message_id":"m-unlucky","event_id":"evt_unlucky","reason":"version is required"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line %s in\n%s", want, logs.String())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ io.Writer = writerFunc(nil)

// hangingLinks is a store whose link reads for one thermometer hang until
// their context ends, as a stalled AWS connection would; other events
// match nothing.
type hangingLinks struct{ deliveryStore }

func (hangingLinks) PutLogItems(context.Context, []store.LogItem) error { return nil }

func (hangingLinks) AccountExists(context.Context, string) (bool, error) { return true, nil }

func (hangingLinks) LinkedEndpointsPage(ctx context.Context, _, th, _ string, _ int) ([]domain.Endpoint, string, error) {
	if th == "th_hang" {
		<-ctx.Done()
		return nil, "", ctx.Err()
	}
	return nil, "", nil
}

// TestAHungIntakeCallLeavesTimeForTheBatch: an event whose AWS call stalls
// does not hold the batch past the invocation's deadline (Lambda would fail
// the whole batch, and every event in it would be fanned out again): it
// alone is reported back, in time.
func TestAHungIntakeCallLeavesTimeForTheBatch(t *testing.T) {
	h := &Handler{Store: hangingLinks{}, Queue: &limitedQueue{max: queue.SmallestMaxMessageSize}, TasksQueueURL: "https://sqs.example/1/tasks",
		EventsDLQURL: "https://sqs.example/1/dlq", FanOutPage: 10, Concurrency: 4, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: time.Now}
	ev := func(id, th string) string {
		return `{"version":1,"event_id":"` + id + `","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z",` +
			`"thermometer":{"id":"` + th + `","type":"email"},"response":{"id":"r","rating":"red"}}`
	}
	deadline := time.Now().Add(3 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	failed := h.Handle(ctx, []Message{{ID: "ok", Body: ev("evt_ok", "th_1"), Queue: "events"}, {ID: "hung", Body: ev("evt_hung", "th_hang"), Queue: "events"}})
	if !time.Now().Before(deadline) {
		t.Errorf("Handle returned at the invocation's deadline, not before it")
	}
	if strings.Join(failed, ",") != "hung" {
		t.Errorf("kept back %v, want only the hung event", failed)
	}
}

// visibilityQueue records the visibility changes made, by queue URL.
type visibilityQueue struct {
	limitedQueue
	changes map[string][]queue.Visibility
}

func (q *visibilityQueue) ChangeVisibility(_ context.Context, url string, vs []queue.Visibility) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.changes[url] = append(q.changes[url], vs...)
	return nil
}

// unavailableAccounts is a store whose account check fails, as in an AWS
// outage.
type unavailableAccounts struct{ deliveryStore }

func (unavailableAccounts) AccountExists(context.Context, string) (bool, error) {
	return false, errors.New("look up account: DynamoDB unavailable")
}

// TestAnEventThatMeetsAnOutageComesBackSoon: an event whose fan-out fails
// for infrastructure reasons comes back after 30 s (growing with its
// receives), through a visibility change on the events queue, rather than
// after the queue's visibility timeout of six minutes.
func TestAnEventThatMeetsAnOutageComesBackSoon(t *testing.T) {
	q := &visibilityQueue{limitedQueue: limitedQueue{max: queue.SmallestMaxMessageSize}, changes: map[string][]queue.Visibility{}}
	h := &Handler{Store: unavailableAccounts{}, Queue: q, TasksQueueURL: "https://sqs.example/1/tasks", EventsQueueURL: "https://sqs.example/1/events",
		EventsDLQURL: "https://sqs.example/1/dlq", Schedule: []time.Duration{time.Hour}, FanOutPage: 10, Concurrency: 4,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: time.Now}
	ev := `{"version":1,"event_id":"evt_1","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_1","type":"email"},"response":{"id":"r","rating":"red"}}`
	failed := h.Handle(context.Background(), []Message{
		{ID: "first", Body: ev, ReceiptHandle: "rh-1", Queue: "events", ReceiveCount: 1},
		{ID: "third", Body: ev, ReceiptHandle: "rh-3", Queue: "events", ReceiveCount: 3},
	})
	if len(failed) != 2 {
		t.Fatalf("failed %v, want both events back", failed)
	}
	got := map[string]time.Duration{}
	for _, v := range q.changes["https://sqs.example/1/events"] {
		got[v.ReceiptHandle] = v.Timeout
	}
	if got["rh-1"] != 30*time.Second || got["rh-3"] != 2*time.Minute || len(q.changes) != 1 {
		t.Errorf("visibility changes %v, want 30s and 2m0s on the events queue", q.changes)
	}
}

// countingLinks is a store whose link reads wait a moment, counting how
// many are under way at once.
type countingLinks struct {
	deliveryStore
	mu        sync.Mutex
	now, most int
}

func (c *countingLinks) AccountExists(context.Context, string) (bool, error) { return true, nil }

func (c *countingLinks) PutLogItems(context.Context, []store.LogItem) error { return nil }

func (c *countingLinks) LinkedEndpointsPage(ctx context.Context, _, _, _ string, _ int) ([]domain.Endpoint, string, error) {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	c.now--
	c.mu.Unlock()
	return nil, "", nil
}

// TestFanOutPagesAreBoundedPerInvocation: a batch of ten continuations of
// large fan-outs runs at most four pages at once, as intake does, so that
// the bodies they hold stay within the function's memory.
func TestFanOutPagesAreBoundedPerInvocation(t *testing.T) {
	links := &countingLinks{}
	h := &Handler{Store: links, Queue: &limitedQueue{max: queue.SmallestMaxMessageSize}, TasksQueueURL: "https://sqs.example/1/tasks",
		EventsDLQURL: "https://sqs.example/1/dlq", FanOutPage: 10, Concurrency: 32, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: time.Now}
	ev := `{"version":1,"event_id":"evt_1","type":"rating","account_id":"acc_1","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_1","type":"email"},"response":{"id":"r","rating":"red"}}`
	var msgs []Message
	for i := range 10 {
		msgs = append(msgs, Message{ID: fmt.Sprint("cont-", i), Body: taskMessage{Kind: "fanout", Event: json.RawMessage(ev), After: "ep_x"}.body(), Queue: "tasks", ReceiveCount: 1})
	}
	if failed := h.Handle(context.Background(), msgs); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if links.most != fanOutsAtOnce {
		t.Errorf("%d fan-out pages at once, want %d", links.most, fanOutsAtOnce)
	}
}
