package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/metrics"
	"github.com/customerthermometer/webhooks/shared/payload"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// Message is one queue message as the handler sees it.
type Message struct {
	ID            string
	Body          string
	ReceiptHandle string
	ReceiveCount  int
	// SentAt is when SQS accepted the message (SentTimestamp); zero when
	// unknown. A message redriven from a dead-letter queue is a new message,
	// sent after its delivery failed.
	SentAt time.Time
	// Queue is the name of the queue the message came from.
	Queue string
}

// NewMessage is a message as SQS hands it over, with its system attributes
// (ApproximateReceiveCount, SentTimestamp); an attribute that is missing or
// not plausible is left zero.
func NewMessage(id, body, receiptHandle, queue string, attrs map[string]string) Message {
	m := Message{ID: id, Body: body, ReceiptHandle: receiptHandle, Queue: queue}
	if n, err := strconv.Atoi(attrs["ApproximateReceiveCount"]); err == nil && n > 0 {
		m.ReceiveCount = n
	}
	if ms, err := strconv.ParseInt(attrs["SentTimestamp"], 10, 64); err == nil && ms > 0 && ms <= 1<<47 {
		m.SentAt = time.UnixMilli(ms).UTC()
	}
	return m
}

// The small interfaces the handler needs; *store.Store, *queue.Queue,
// *kms.Sealer and *dispatch.Client satisfy them.
type (
	deliveryStore interface {
		AccountExists(ctx context.Context, account string) (bool, error)
		LinkedEndpointsPage(ctx context.Context, account, thermometer, after string, limit int) ([]domain.Endpoint, string, error)
		CreateDelivery(ctx context.Context, d domain.Delivery, expires time.Time) (bool, domain.Delivery, error)
		GetDelivery(ctx context.Context, account, id string) (domain.Delivery, error)
		SaveDelivery(ctx context.Context, d domain.Delivery, prev int, expires time.Time) error
		StartRound(ctx context.Context, account, id string, attempts int, now, expires, payloadExpires time.Time) (domain.Delivery, error)
		Payload(ctx context.Context, account, id string) ([]byte, error)
		PutLogItems(ctx context.Context, items []store.LogItem) error
		PutPayloadIfAbsent(ctx context.Context, li store.LogItem) error
		GetEndpoint(ctx context.Context, account, id string) (domain.Endpoint, error)
		SaveEndpoint(ctx context.Context, e domain.Endpoint, previous []domain.Thermometer) error
		SaveEndpointState(ctx context.Context, e domain.Endpoint) error
		DeleteLink(ctx context.Context, account, thermometer, endpointID string) error
		RepairLink(ctx context.Context, e domain.Endpoint, thermometer string) error
	}
	messageQueue interface {
		SendBatch(ctx context.Context, url string, msgs []queue.Message) error
		ChangeVisibility(ctx context.Context, url string, vs []queue.Visibility) error
	}
	opener interface {
		Open(ctx context.Context, ciphertext []byte, ec map[string]string) ([]byte, error)
	}
	sender interface {
		Send(ctx context.Context, w dispatch.Webhook) dispatch.Result
	}
)

// Handler processes batches from the response-events and delivery-tasks
// queues.
type Handler struct {
	Store   deliveryStore
	Queue   messageQueue
	Secrets opener
	Sender  sender

	// TasksQueueURL is the delivery-tasks queue; EventsDLQURL is where
	// invalid events are set aside. EventsQueueURL is the response-events
	// queue, whose messages' visibility an infrastructure failure changes
	// (empty: they come back after the queue's visibility timeout).
	TasksQueueURL  string
	EventsDLQURL   string
	EventsQueueURL string

	// Schedule is the delay before each retry: len(Schedule)+1 attempts.
	Schedule []time.Duration
	// Jitter returns the random extra added to a delay (testable); none when nil.
	Jitter func(time.Duration) time.Duration
	// Retention is how long log items are kept.
	Retention time.Duration
	// PayloadRetention is how long a payload is kept
	// (config.PayloadRetention); Retention when shorter.
	PayloadRetention time.Duration
	// FanOutPage bounds the endpoints one invocation fans an event out to;
	// the rest continue in a message of their own.
	FanOutPage int
	// Concurrency bounds the sends and writes in flight.
	Concurrency int
	// MaxReceives is the tasks queue's maxReceiveCount. Once a delivery's
	// message has been received half this often, the delivery continues in
	// a fresh message; 0 turns that off.
	MaxReceives int

	Logger    *slog.Logger
	Metrics   io.Writer // EMF lines; nothing when nil
	StackName string
	Now       func() time.Time

	secrets secretCache

	// fanOutSlots bounds the fan-out pages in progress at once, events' and
	// continuations' together (fanOutGate).
	fanOutOnce  sync.Once
	fanOutSlots chan struct{}
}

// infraRetry is how soon a message comes back after an infrastructure error
// at its first receive. At each later receive the wait doubles, up to
// maxInfraRetry: SQS moves a message to the dead-letter queue once it has
// been received maxReceiveCount times, and at a fixed 30 s an AWS outage of
// a few minutes would use up the receives of every delivery due meanwhile.
// With the template's 12, a delivery rides out about an hour and three
// quarters of AWS trouble (30 s + 1 + 2 + 4 + 8 min + 6 × 15 min) before
// its message needs a redrive. A schedule whose longest delay is shorter
// than maxInfraRetry (a test's, say) caps the wait at that delay instead,
// and never below infraRetry: an infrastructure retry waits no longer than
// a scheduled one.
const (
	infraRetry    = 30 * time.Second
	maxInfraRetry = 15 * time.Minute
)

// infraDelay is how soon message m comes back after an infrastructure
// error.
func (h *Handler) infraDelay(m Message) time.Duration {
	limit := maxInfraRetry
	if len(h.Schedule) > 0 {
		limit = max(infraRetry, min(slices.Max(h.Schedule), maxInfraRetry))
	}
	d := infraRetry
	for n := 1; n < m.ReceiveCount && d < limit; n++ {
		d *= 2
	}
	return min(d, limit)
}

// afterInfraFailure is when task message m, whose work met an
// infrastructure failure, comes back. On its last receive SQS moves it to the
// dead-letter queue instead, with its delivery unfinished; that is counted
// (StrandedTasks) for the alarm that calls an operator to redrive it, since
// finally failed deliveries, which reach that queue by design, must not.
func (h *Handler) afterInfraFailure(m Message, rec *metrics.Recorder) time.Duration {
	if h.lastReceive(m) {
		rec.Count(metrics.StrandedTasks)
	}
	return h.infraDelay(m)
}

// lastReceive says whether SQS moves task message m to the dead-letter queue
// rather than deliver it again, should it come back.
func (h *Handler) lastReceive(m Message) bool {
	return h.MaxReceives > 0 && m.ReceiveCount >= h.MaxReceives
}

// Handle processes a batch and returns the ids of the messages that must
// come back (batch item failures).
func (h *Handler) Handle(ctx context.Context, msgs []Message) []string {
	var rec metrics.Recorder
	var mu sync.Mutex
	var failed []string
	visibility := map[string][]queue.Visibility{} // by queue URL
	tasksQueue := queueName(h.TasksQueueURL)
	fail := func(m Message, after time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, m.ID)
		url := h.TasksQueueURL
		if m.Queue != tasksQueue {
			url = h.EventsQueueURL
		}
		if after >= 0 && url != "" {
			visibility[url] = append(visibility[url], queue.Visibility{ReceiptHandle: m.ReceiptHandle, Timeout: after})
		}
	}

	var intake, tasks []Message
	for _, m := range msgs {
		if m.Queue == tasksQueue {
			tasks = append(tasks, m)
		} else {
			intake = append(intake, m)
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); h.handleIntake(ctx, intake, &rec, fail) }()
	go func() { defer wg.Done(); h.handleTasks(ctx, tasks, &rec, fail) }()
	wg.Wait()

	for url, vs := range visibility {
		// Best effort: a message whose visibility could not be changed still
		// comes back, after the queue's own visibility timeout.
		if err := h.Queue.ChangeVisibility(ctx, url, vs); err != nil {
			h.Logger.WarnContext(ctx, "visibility not changed", slog.String("error", err.Error()))
		}
	}
	if h.Metrics != nil {
		_ = rec.Flush(h.Metrics, h.StackName, h.Now())
	}
	return failed
}

func queueName(url string) string { return url[strings.LastIndex(url, "/")+1:] }

// taskMessage is the body of a delivery-tasks message.
type taskMessage struct {
	Kind string `json:"kind"` // "delivery" or "fanout"

	// kind delivery
	AccountID  string `json:"account_id,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
	RoundStart int    `json:"round_start,omitempty"`
	// Redelivery marks a round an account holder asked for: it is sent
	// whatever the endpoint's links and triggers now say.
	Redelivery bool            `json:"redelivery,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"` // the body to send, when small enough

	// kind fanout: the rest of an event's endpoints, after After
	Event json.RawMessage `json:"event,omitempty"`
	After string          `json:"after,omitempty"`
}

// body is t as a message body, encoded as webhook bodies are.
func (t taskMessage) body() string { return string(payload.Encode(t)) }

// maxInlinePayload is the largest body carried in a task message; larger
// ones are read from the log (SQS messages are at most 256 KiB).
const maxInlinePayload = 200 << 10

func (h *Handler) expires() time.Time { return h.Now().Add(h.Retention) }

// payloadExpires is when a payload written now expires.
func (h *Handler) payloadExpires() time.Time {
	return h.Now().Add(max(h.PayloadRetention, h.Retention))
}

func (h *Handler) parallel(n int, fn func(i int)) { h.parallelN(h.Concurrency, n, fn) }

// parallelN runs fn for 0..n-1 with at most limit running at once. A panic
// in one call is raised again in the caller once all calls are done, where
// the message it concerns recovers from it (recovered), rather than ending
// the process and, with it, every message of the batch.
func (h *Handler) parallelN(limit, n int, fn func(i int)) {
	limit = max(limit, 1)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var panicked *panicError
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { panicked = &panicError{value: r, stack: debug.Stack()} })
				}
				<-sem
				wg.Done()
			}()
			fn(i)
		}()
	}
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}

// panicError is a panic carried from the goroutine it happened in.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprint(p.value) }

// recovered, deferred in the work for message m, turns a panic (a bug
// meeting data it did not expect) into a logged infrastructure failure of m
// alone: then is called to report it.
func (h *Handler) recovered(ctx context.Context, m Message, then func()) {
	r := recover()
	if r == nil {
		return
	}
	p, ok := r.(*panicError)
	if !ok {
		p = &panicError{value: r, stack: debug.Stack()}
	}
	h.logAttrs(ctx, slog.LevelError, "internal error; the message will be retried", slog.String("message_id", m.ID),
		slog.String("panic", p.Error()), slog.String("stack", string(p.stack)))
	then()
}

func (h *Handler) logAttrs(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	h.Logger.LogAttrs(ctx, level, msg, attrs...)
}
