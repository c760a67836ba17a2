package delivery_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/logcheck"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/signature"
	"github.com/customerthermometer/webhooks/shared/store"
)

// harness is the handler over the emulator's real tables, KMS and SQS, with a
// tasks queue and an events dead-letter queue of its own.
type harness struct {
	t           *testing.T
	h           *delivery.Handler
	st          *store.Store
	sealer      *kms.Sealer
	sqs         *sqs.Client
	tasksURL    string
	tasksDLQURL string
	dlqURL      string
	account     string
	logs        *logcheck.Buffer
	metrics     *logcheck.Buffer
}

func rnd() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newHarness(t *testing.T, schedule ...time.Duration) *harness {
	t.Helper()
	stack := awstest.LoadStack(t)
	cfg := awstest.Config(t)
	harnesses.Add(1)
	hs := &harness{t: t, sqs: sqs.NewFromConfig(cfg), logs: &logcheck.Buffer{}, metrics: &logcheck.Buffer{}, account: "acc_dlv_" + rnd()}
	hs.st = store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	hs.sealer = kms.New(awskms.NewFromConfig(cfg), stack.Outputs["SecretsKeyId"])
	tasksDLQ := hs.queue("tasks-dlq", "")
	hs.tasksURL = hs.queue("tasks", tasksDLQ)
	hs.tasksDLQURL = tasksDLQ
	hs.dlqURL = hs.queue("events-dlq", "")
	if err := hs.st.CreateAPIKey(context.Background(), hs.account, apikey.Hash(apikey.New()), time.Now()); err != nil {
		t.Fatal(err)
	}
	hs.h = &delivery.Handler{
		Store: hs.st, Queue: queue.New(hs.sqs), Secrets: hs.sealer,
		Sender:        dispatch.New(dispatch.Options{LocalMode: true}),
		TasksQueueURL: hs.tasksURL, EventsDLQURL: hs.dlqURL,
		Schedule: schedule, Retention: time.Hour, FanOutPage: 100, Concurrency: 8, MaxReceives: maxReceives,
		Logger: slog.New(slog.NewJSONHandler(io.MultiWriter(hs.logs, &suiteLogs), nil)), Metrics: io.MultiWriter(hs.metrics, &suiteLogs), StackName: "test", Now: time.Now,
	}
	return hs
}

// maxReceives is the test tasks queue's maxReceiveCount.
const maxReceives = 6

// queue creates a queue; with a dead-letter queue, SQS moves a message there
// after maxReceives receives, as the stack's tasks queue does.
func (hs *harness) queue(name, dlq string) string {
	hs.t.Helper()
	n := fmt.Sprintf("dlv-test-%s-%s", name, rnd())
	attrs := map[string]string{"VisibilityTimeout": "30"}
	if dlq != "" {
		arn, err := hs.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &dlq, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
		if err != nil {
			hs.t.Fatal(err)
		}
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, arn.Attributes["QueueArn"], maxReceives)
	}
	out, err := hs.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &n, Attributes: attrs})
	if err != nil {
		hs.t.Fatal(err)
	}
	hs.t.Cleanup(func() { _, _ = hs.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	return *out.QueueUrl
}

// endpoint stores an endpoint of the harness account, linked to thermometers.
func (hs *harness) endpoint(url string, triggers []string, basicAuth bool, thermometers ...string) (domain.Endpoint, string) {
	hs.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	e := domain.Endpoint{ID: ids.New("ep", now), AccountID: hs.account, Name: "ep " + url, URL: url, Triggers: triggers,
		Enabled: true, Tested: true, CreatedAt: now, UpdatedAt: now}
	secret := rnd() + rnd() + rnd() + rnd() + rnd() + rnd()[:4]
	remember(secret, "pw-"+e.ID)
	sealed, err := hs.sealer.Seal(ctx, []byte(secret), domain.SealContext(hs.account, e.ID, domain.PurposeSecret))
	if err != nil {
		hs.t.Fatal(err)
	}
	e.Secret = sealed
	if basicAuth {
		pw, err := hs.sealer.Seal(ctx, []byte("pw-"+e.ID), domain.SealContext(hs.account, e.ID, domain.PurposePassword))
		if err != nil {
			hs.t.Fatal(err)
		}
		e.BasicAuth = &domain.BasicAuth{Username: "ct", Password: pw}
	}
	for _, th := range thermometers {
		e.Thermometers = append(e.Thermometers, domain.Thermometer{ID: th, Name: "Thermometer " + th, Type: "email"})
	}
	if err := hs.st.CreateEndpoint(ctx, e); err != nil {
		hs.t.Fatal(err)
	}
	e.Version = 1
	return e, secret
}

func (hs *harness) event(id, typ, rating, thermometer string) string {
	b, _ := json.Marshal(map[string]any{
		"version": 1, "event_id": id, "type": typ, "account_id": hs.account, "occurred_at": "2026-11-27T11:55:03.120+01:00",
		"thermometer": map[string]any{"id": thermometer, "type": "email"},
		"response":    map[string]any{"id": "rsp_" + id, "rating": rating, "comment": "Très bien — 👍"},
	})
	return string(b)
}

// intake hands bodies to the handler as a batch from the events queue and
// returns the ids it reported as failed.
func (hs *harness) intake(bodies ...string) []string {
	msgs := make([]delivery.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = delivery.Message{ID: fmt.Sprintf("in-%d", i), Body: b, ReceiptHandle: "rh", ReceiveCount: 1, Queue: "ct-webhooks-ResponseEventsQueue-X"}
	}
	return hs.h.Handle(context.Background(), msgs)
}

// drain plays the event-source mapping on the tasks queue until it has been
// empty for quiet: visible messages go to the handler in batches, finished
// ones are deleted, failed ones stay (and come back when their visibility
// ends). It returns the tasks handled.
func (hs *harness) drain(quiet time.Duration) int {
	hs.t.Helper()
	return hs.drainUntil(func() bool { return true }, quiet)
}

// drainUntil drains until done holds and then the queue has been quiet for
// quiet: on a slow emulator, work still in flight is waited for rather than
// taken for finished.
func (hs *harness) drainUntil(done func() bool, quiet time.Duration) int {
	hs.t.Helper()
	ctx := context.Background()
	handled := 0
	last := time.Now()
	for start := time.Now(); time.Since(last) < quiet || !done(); {
		if time.Since(start) > 60*time.Second {
			hs.t.Fatal("the expected deliveries did not happen, or the tasks queue never went quiet")
		}
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &hs.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			hs.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			continue
		}
		last = time.Now()
		msgs := make([]delivery.Message, len(out.Messages))
		for i, m := range out.Messages {
			msgs[i] = hs.message(m)
		}
		failed := hs.h.Handle(ctx, msgs)
		handled += len(msgs)
		for _, m := range out.Messages {
			if !contains(failed, *m.MessageId) {
				_, _ = hs.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &hs.tasksURL, ReceiptHandle: m.ReceiptHandle})
			}
		}
	}
	return handled
}

// deadLettered waits for the one message SQS moves to the tasks dead-letter
// queue (it does so on a receive past maxReceives, so the tasks queue is
// polled meanwhile) and returns its body.
func (hs *harness) deadLettered() string {
	hs.t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksDLQURL, WaitTimeSeconds: 1})
		if err != nil {
			hs.t.Fatal(err)
		}
		if len(out.Messages) > 0 {
			return *out.Messages[0].Body
		}
		hs.drain(200 * time.Millisecond)
	}
	hs.t.Fatal("nothing reached the dead-letter queue")
	return ""
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (hs *harness) deliveryOf(eventID string, e domain.Endpoint) (domain.Delivery, []domain.Attempt) {
	hs.t.Helper()
	d, _, attempts, _, err := hs.st.DeliveryDetail(context.Background(), hs.account, ids.Derived("dlv", hs.account, eventID, e.ID), 0)
	if err != nil {
		hs.t.Fatalf("delivery of %s to %s: %v", eventID, e.ID, err)
	}
	return d, attempts
}

// receiver answers with the statuses in script, then with the last one
// forever, and records what it got.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  [][]byte
	script  []int
	release chan struct{} // when set, requests wait for it
}

func newReceiver(t *testing.T, script ...int) *receiver {
	rc := &receiver{script: script}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		remember(r.Header.Get("X-Ct-Hmac-Sha256"), r.Header.Get("Webhook-Signature"), r.Header.Get("Authorization"))
		rc.mu.Lock()
		rc.reqs, rc.bodies = append(rc.reqs, r), append(rc.bodies, b)
		n := len(rc.reqs)
		status := rc.script[min(n, len(rc.script))-1]
		release := rc.release
		rc.mu.Unlock()
		if release != nil {
			<-release
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.reqs) }

func (rc *receiver) get(i int) (*http.Request, []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs[i], rc.bodies[i]
}

func verify(t *testing.T, secret string, r *http.Request, body []byte) {
	t.Helper()
	if !signature.Verify(secret, r.Header.Get("Date"), body, r.Header.Get("X-Ct-Hmac-Sha256")) {
		t.Errorf("signature does not verify")
	}
}

// waiting is how many messages a queue holds, visible or not.
func (hs *harness) waiting(url string) int {
	hs.t.Helper()
	out, err := hs.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		hs.t.Fatal(err)
	}
	var visible, hidden int
	fmt.Sscan(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)], &visible)
	fmt.Sscan(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)], &hidden)
	return visible + hidden
}

// receiveTask receives the one message on the tasks queue, as the
// event-source mapping would hand it to the handler.
func (hs *harness) receiveTask() delivery.Message {
	hs.t.Helper()
	out, err := hs.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, WaitTimeSeconds: 5,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil || len(out.Messages) != 1 {
		hs.t.Fatalf("task: %v, %d messages", err, len(out.Messages))
	}
	return hs.message(out.Messages[0])
}

// message is m from the tasks queue as the handler gets it.
func (hs *harness) message(m sqstypes.Message) delivery.Message {
	hs.t.Helper()
	msg := delivery.NewMessage(*m.MessageId, *m.Body, *m.ReceiptHandle, hs.tasksURL[strings.LastIndex(hs.tasksURL, "/")+1:], m.Attributes)
	if msg.ReceiveCount == 0 || msg.SentAt.IsZero() {
		hs.t.Fatalf("message without its receive count or sent time: %v", m.Attributes)
	}
	return msg
}

// oneDelivery registers an endpoint for every trigger whose receiver answers
// script and takes in a red rating event eventID for it: one delivery, with
// its task on the tasks queue.
func (hs *harness) oneDelivery(eventID string, script ...int) (*receiver, domain.Endpoint) {
	hs.t.Helper()
	rc := newReceiver(hs.t, script...)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event(eventID, "rating", "red", "th_1"))
	return rc, ep
}

// failedAfterTwoAttempts sends event eventID to a new endpoint whose
// receiver answers script and, on a harness with one retry, drains until the
// delivery has failed after its two attempts.
func (hs *harness) failedAfterTwoAttempts(eventID string, script ...int) (*receiver, domain.Endpoint, domain.Delivery) {
	hs.t.Helper()
	rc, ep := hs.oneDelivery(eventID, script...)
	hs.drainUntil(func() bool { return rc.count() == 2 }, 2500*time.Millisecond)
	d, _ := hs.deliveryOf(eventID, ep)
	if d.Status != domain.DeliveryFailed || rc.count() != 2 {
		hs.t.Fatalf("before redrive: %s after %d attempts", d.Status, rc.count())
	}
	return rc, ep, d
}

// redrive does what a dead-letter redrive does: body, as a new message on
// the tasks queue.
func (hs *harness) redrive(body string) {
	hs.t.Helper()
	if _, err := hs.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &hs.tasksURL, MessageBody: &body}); err != nil {
		hs.t.Fatal(err)
	}
}

// attemptAtOnce hands m1 and m2 to two invocations at once, with rc holding
// both requests until each has sent its attempt, and settles each as the
// event-source mapping does, deleting what did not fail. rc.release must
// be set.
func (hs *harness) attemptAtOnce(rc *receiver, m1, m2 delivery.Message) {
	hs.t.Helper()
	ctx := context.Background()
	before := rc.count()
	wait := hs.handleAtOnce(ctx, m1, m2)
	for deadline := time.Now().Add(10 * time.Second); rc.count() < before+2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	close(rc.release)
	wait()
	if rc.count() != before+2 {
		hs.t.Fatalf("receiver got %d requests, want the attempt twice", rc.count()-before)
	}
}

// handleAtOnce hands each message to an invocation of its own, all at once,
// deleting what did not fail as the event-source mapping does; the
// returned func waits for them.
func (hs *harness) handleAtOnce(ctx context.Context, msgs ...delivery.Message) (wait func()) {
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if failed := hs.h.Handle(ctx, []delivery.Message{m}); !contains(failed, m.ID) {
				_, _ = hs.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &m.ReceiptHandle})
			}
		}()
	}
	return wg.Wait
}

// deleteItem removes one item of d's from the log table.
func (hs *harness) deleteItem(d domain.Delivery, sk string) error {
	table, key := hs.logItem(d, sk)
	_, err := dynamodb.NewFromConfig(awstest.Config(hs.t)).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: &table, Key: key})
	return err
}

// logItem is the delivery-log table and the key of d's item sk.
func (hs *harness) logItem(d domain.Delivery, sk string) (string, map[string]dbtypes.AttributeValue) {
	return awstest.LoadStack(hs.t).Outputs["DeliveriesTableName"], map[string]dbtypes.AttributeValue{
		"pk": &dbtypes.AttributeValueMemberS{Value: "DELIVERY#" + d.AccountID + "#" + d.ID},
		"sk": &dbtypes.AttributeValueMemberS{Value: sk},
	}
}

// deleteEndpointItem removes e's own item and leaves its links, as a
// deletion that stopped after its first transaction does.
func (hs *harness) deleteEndpointItem(e domain.Endpoint) error {
	table := awstest.LoadStack(hs.t).Outputs["EndpointsTableName"]
	_, err := dynamodb.NewFromConfig(awstest.Config(hs.t)).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: &table,
		Key: map[string]dbtypes.AttributeValue{
			"pk": &dbtypes.AttributeValueMemberS{Value: "ACCOUNT#" + e.AccountID},
			"sk": &dbtypes.AttributeValueMemberS{Value: "ENDPOINT#" + e.ID},
		},
	})
	return err
}

// redeliveryTask queues the task of a new round for d, as the API's
// redelivery does, without recording the round.
func (hs *harness) redeliveryTask(d domain.Delivery) {
	hs.t.Helper()
	d.RoundStart = d.AttemptCount + 1
	if err := (&delivery.Enqueuer{Queue: queue.New(hs.sqs), QueueURL: hs.tasksURL}).Enqueue(context.Background(), d); err != nil {
		hs.t.Fatal(err)
	}
}

// storeFailing is a store over the harness's tables whose requests of
// operation op (an X-Amz-Target operation, "TransactWriteItems") AWS
// refuses, every time.
func (hs *harness) storeFailing(op string) *store.Store {
	hs.t.Helper()
	cfg := awstest.Config(hs.t)
	cfg.HTTPClient = refusing{next: cfg.HTTPClient, op: op}
	stack := awstest.LoadStack(hs.t)
	return store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
}

// refusing answers requests of one operation with a 500, sending nothing.
type refusing struct {
	next aws.HTTPClient
	op   string
}

func (c refusing) Do(r *http.Request) (*http.Response, error) {
	if !awstest.IsOperation(r, c.op) {
		return c.next.Do(r)
	}
	return awstest.ErrorAnswer(r, http.StatusInternalServerError, "InternalServerError", "refused"), nil
}
