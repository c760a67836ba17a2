package delivery_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// hiding is the harness's queue, remembering how long each message was
// hidden for.
type hiding struct {
	*queue.Queue
	mu     sync.Mutex
	hidden []time.Duration
}

func (q *hiding) ChangeVisibility(ctx context.Context, url string, vs []queue.Visibility) error {
	q.mu.Lock()
	for _, v := range vs {
		q.hidden = append(q.hidden, v.Timeout)
	}
	q.mu.Unlock()
	return q.Queue.ChangeVisibility(ctx, url, vs)
}

// TestAnOutageBacksOff: while DynamoDB fails, a delivery's message comes
// back later at each receive (30 s, 1, 2, 4 minutes), so that a few minutes
// of AWS trouble do not use up the receives after which SQS parks it in the
// dead-letter queue; once AWS is back it is delivered, from its own queue.
func TestAnOutageBacksOff(t *testing.T) {
	hs := newHarness(t, config.DefaultRetrySchedule()...) // waits up to 15 minutes
	rc, ep := hs.oneDelivery("evt_outage", 200)
	working := hs.h.Store
	hs.h.Store = hs.storeFailing("GetItem")
	q := &hiding{Queue: hs.h.Queue.(*queue.Queue)}
	hs.h.Queue = q
	ctx := context.Background()
	for n := 1; n < maxReceives-1; n++ {
		m := hs.receiveTask()
		if failed := hs.h.Handle(ctx, []delivery.Message{m}); len(failed) != 1 || m.ReceiveCount != n {
			t.Fatalf("receive %d (count %d): kept %v", n, m.ReceiveCount, failed)
		}
		if want := 30 * time.Second << (n - 1); len(q.hidden) != n || q.hidden[n-1] != want {
			t.Fatalf("receive %d: hidden for %v, want %v last", n, q.hidden, want)
		}
		// What the wait would do.
		if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	hs.h.Store = working
	hs.drain(1500 * time.Millisecond)
	if d, _ := hs.deliveryOf("evt_outage", ep); d.Status != domain.DeliveryDelivered || rc.count() != 1 {
		t.Errorf("after the outage: %s, %d requests", d.Status, rc.count())
	}
	if n := hs.waiting(hs.tasksDLQURL); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
}

// hangingStore is the harness's store whose reads of one endpoint hang
// until their context ends, as a stalled AWS connection would.
type hangingStore struct {
	*store.Store
	endpoint string
}

func (s hangingStore) GetEndpoint(ctx context.Context, account, id string) (domain.Endpoint, error) {
	if id == s.endpoint {
		<-ctx.Done()
		return domain.Endpoint{}, ctx.Err()
	}
	return s.Store.GetEndpoint(ctx, account, id)
}

// TestAHungCallLeavesTimeForTheRest: one task's AWS call that hangs does not
// hold back the rest of its batch past the invocation's deadline: the
// webhook the other task sent is logged and settled in time, and only the
// hung task is kept for later.
func TestAHungCallLeavesTimeForTheRest(t *testing.T) {
	hs := newHarness(t, time.Second)
	fast, stuck := newReceiver(t, 200), newReceiver(t, 200)
	epA, _ := hs.endpoint(fast.URL, []string{"*"}, false, "th_1")
	epB, _ := hs.endpoint(stuck.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_hung", "rating", "red", "th_1"))
	ctx := context.Background()
	var msgs []delivery.Message
	for len(msgs) < 2 {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 2,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil || len(out.Messages) == 0 {
			t.Fatalf("tasks: %v, %d of 2", err, len(msgs))
		}
		for _, m := range out.Messages {
			msgs = append(msgs, hs.message(m))
		}
	}
	hs.h.Store = hangingStore{hs.st, epB.ID}
	invocation, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	failed := hs.h.Handle(invocation, msgs)
	hs.h.Store = hs.st
	dA, attemptsA := hs.deliveryOf("evt_hung", epA)
	if dA.Status != domain.DeliveryDelivered || len(attemptsA) != 1 || fast.count() != 1 {
		t.Errorf("the other task: %s, %d attempts logged, %d requests", dA.Status, len(attemptsA), fast.count())
	}
	if dB, _ := hs.deliveryOf("evt_hung", epB); len(failed) != 1 || dB.Status != domain.DeliveryPending || stuck.count() != 0 {
		t.Errorf("the hung task: kept %d of 2, %s, %d requests", len(failed), dB.Status, stuck.count())
	}
}

// TestRedriveAfterALaterRoundStopped: a delivery failed and its message went
// to the dead-letter queue; a redelivery's round was then stopped without an
// attempt (its endpoint disabled). Once the endpoint is enabled again, a
// redrive of the first round's message starts a new round, as every redrive
// of a failed delivery does, rather than being dropped as a message of an
// earlier round.
func TestRedriveAfterALaterRoundStopped(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep, d := hs.failedAfterTwoAttempts("evt_redrive_late", 500, 500, 200)
	parked := hs.deadLettered()
	enable := func(on bool) {
		t.Helper()
		cur, err := hs.st.GetEndpoint(context.Background(), hs.account, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		cur.Enabled = on
		if err := hs.st.SaveEndpoint(context.Background(), cur, cur.Thermometers); err != nil {
			t.Fatal(err)
		}
	}
	enable(false)
	hs.redeliveryTask(d)
	hs.drain(1500 * time.Millisecond)
	if d, _ = hs.deliveryOf("evt_redrive_late", ep); d.Status != domain.DeliveryFailed || d.RoundStart != 3 || d.LastError != "endpoint disabled" {
		t.Fatalf("redelivery to the disabled endpoint: %+v", d)
	}
	enable(true)
	time.Sleep(10 * time.Millisecond) // the redrive comes after the stop, on SQS's clock too
	hs.redrive(parked)
	hs.drainUntil(func() bool { return rc.count() == 3 }, 1500*time.Millisecond)
	if d, attempts := hs.deliveryOf("evt_redrive_late", ep); d.Status != domain.DeliveryDelivered || d.AttemptCount != 3 || len(attempts) != 3 {
		t.Errorf("after the redrive: %+v, %d attempts logged, %d requests", d, len(attempts), rc.count())
	}
}

// TestGoneFromANewURLIsDisabledByTheMessageBack: the endpoint's URL changed
// after the delivery was made, its next attempt went to the new URL, which
// answered 410, and the endpoint could not be disabled then. Back, the
// message disables it: the 410 came from the URL the endpoint still has.
func TestGoneFromANewURLIsDisabledByTheMessageBack(t *testing.T) {
	hs := newHarness(t, time.Second)
	old, gone := newReceiver(t, 200), newReceiver(t, 410)
	ep, _ := hs.endpoint(old.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_gone_new_url", "rating", "red", "th_1"))
	ctx := context.Background()
	cur, err := hs.st.GetEndpoint(ctx, hs.account, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.URL = gone.URL
	if err := hs.st.SaveEndpoint(ctx, cur, cur.Thermometers); err != nil {
		t.Fatal(err)
	}
	m := hs.receiveTask()
	working := hs.h.Store
	hs.h.Store = hs.storeFailing("TransactWriteItems")
	if failed := hs.h.Handle(ctx, []delivery.Message{m}); len(failed) != 1 {
		t.Fatalf("the message went though the endpoint is still enabled: kept %v", failed)
	}
	hs.h.Store = working
	if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	hs.drain(1500 * time.Millisecond)
	cur, _ = hs.st.GetEndpoint(ctx, hs.account, ep.ID)
	if d, _ := hs.deliveryOf("evt_gone_new_url", ep); cur.Enabled || !cur.Gone || d.Status != domain.DeliveryFailed || gone.count() != 1 || old.count() != 0 {
		t.Errorf("endpoint enabled %v gone %v; delivery %s; requests: new URL %d, old %d", cur.Enabled, cur.Gone, d.Status, gone.count(), old.count())
	}
}

// TestAStrandedTaskIsCounted: a task whose AWS calls fail on its last
// receive goes to the dead-letter queue with its delivery unfinished, and
// the StrandedTasks metric (which the template's alarm watches) counts it
// then, and only then: finally failed deliveries reach that queue by
// design and must not call an operator.
func TestAStrandedTaskIsCounted(t *testing.T) {
	hs := newHarness(t, time.Second)
	hs.oneDelivery("evt_stranded", 200)
	hs.h.Store = hs.storeFailing("GetItem")
	ctx := context.Background()
	for n := 1; n <= maxReceives; n++ {
		m := hs.receiveTask()
		before := strings.Count(hs.metrics.String(), `"StrandedTasks"`)
		if failed := hs.h.Handle(ctx, []delivery.Message{m}); len(failed) != 1 || m.ReceiveCount != n {
			t.Fatalf("receive %d (count %d): kept %v", n, m.ReceiveCount, failed)
		}
		counted := strings.Count(hs.metrics.String(), `"StrandedTasks"`) > before
		if counted != (n == maxReceives) {
			t.Fatalf("receive %d of %d: stranded counted %v; metrics %s", n, maxReceives, counted, hs.metrics.String())
		}
		if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(hs.metrics.String(), `"StrandedTasks":1`) {
		t.Errorf("metrics %s", hs.metrics.String())
	}
	if !strings.Contains(hs.logs.String(), "delivery task goes to the dead-letter queue") {
		t.Errorf("the last receive is not logged as such")
	}
}

// TestADuplicateTaskDoesNotReopenAStoppedDelivery: a delivery stopped
// before any attempt (its endpoint was disabled) stays stopped when a second
// task of the same round turns up, even after the endpoint is enabled
// again: that event arrived while it was disabled.
func TestADuplicateTaskDoesNotReopenAStoppedDelivery(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_stopped", "rating", "gold", "th_1"))
	first := hs.receiveTask()
	dup := first
	dup.ID, dup.ReceiptHandle = "dup-of-"+first.ID, "gone"
	ctx := context.Background()
	setEnabled := func(on bool) {
		cur, err := hs.st.GetEndpoint(ctx, hs.account, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		cur.Enabled = on
		if err := hs.st.SaveEndpoint(ctx, cur, cur.Thermometers); err != nil {
			t.Fatal(err)
		}
	}
	setEnabled(false)
	hs.h.Handle(ctx, []delivery.Message{first})
	if d, _ := hs.deliveryOf("evt_stopped", ep); d.Status != domain.DeliveryFailed || d.LastError != "endpoint disabled" {
		t.Fatalf("after the first task: %+v", d)
	}
	setEnabled(true)
	if failed := hs.h.Handle(ctx, []delivery.Message{dup}); len(failed) != 0 {
		t.Errorf("the duplicate is kept: %v", failed)
	}
	if d, _ := hs.deliveryOf("evt_stopped", ep); rc.count() != 0 || d.Status != domain.DeliveryFailed || d.AttemptCount != 0 {
		t.Errorf("the duplicate reopened the stopped delivery: %d requests, %s after %d attempts", rc.count(), d.Status, d.AttemptCount)
	}
}

// TestAnUnreadableTaskIsSetAside: a tasks-queue message the service cannot
// act on (it writes every one itself, so a bug's or a hand-made one) goes
// to the dead-letter queue with its reason logged, where an operator can
// read it, and counts as stranded; it is neither deleted, which would lose
// a fan-out's remaining endpoints, nor retried forever.
func TestAnUnreadableTaskIsSetAside(t *testing.T) {
	hs := newHarness(t, time.Second)
	ctx := context.Background()
	bodies := map[string]string{
		"garbage": "not a task: invalid character",
		`{"kind":"delivery","account_id":"acc_1","delivery_id":"dlv_1","round_start":"2"}`: "cannot unmarshal string",
		`{"kind":"delivery","account_id":"acc_1","round_start":1}`:                         "needs account_id, delivery_id and round_start",
		`{"kind":"deliver"}`: "is neither delivery nor fanout",
		`{"kind":"fanout","event":{"version":1,"event_id":"evt_1"}}`: "its event: ",
	}
	for body := range bodies {
		if _, err := hs.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &hs.tasksURL, MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	for try := 0; try < 4*maxReceives && hs.waiting(hs.tasksDLQURL) < len(bodies); try++ {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []delivery.Message
		for _, m := range out.Messages {
			msgs = append(msgs, hs.message(m))
		}
		if failed := hs.h.Handle(ctx, msgs); len(failed) != len(msgs) {
			t.Fatalf("%d of %d unreadable tasks kept; the rest were deleted", len(failed), len(msgs))
		}
	}
	if n := hs.waiting(hs.tasksDLQURL); n != len(bodies) {
		t.Errorf("%d of %d unreadable tasks in the dead-letter queue", n, len(bodies))
	}
	for _, reason := range bodies {
		if !strings.Contains(hs.logs.String(), reason) {
			t.Errorf("no log line says %q", reason)
		}
	}
	stranded := 0
	for _, line := range strings.Split(hs.metrics.String(), "\n") {
		var m struct{ StrandedTasks int }
		if json.Unmarshal([]byte(line), &m) == nil {
			stranded += m.StrandedTasks
		}
	}
	if stranded != len(bodies) {
		t.Errorf("%d stranded tasks counted, want %d", stranded, len(bodies))
	}
}

// TestAThermometerNameOfLineSeparatorsIsDelivered: a valid event near the
// size limit whose thermometer name is all U+2028 (which encoding/json
// writes as six-byte escapes) still fits the log and the queues once built
// into a webhook, and is delivered.
func TestAThermometerNameOfLineSeparatorsIsDelivered(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_ls")
	name := strings.Repeat("\u2028", 230<<10/3)
	ev := `{"version":1,"event_id":"evt_ls","type":"comment","account_id":"` + hs.account +
		`","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_ls","type":"email","name":"` + name +
		`"},"response":{"id":"rsp_1","rating":"red"}}`
	if failed := hs.intake(ev); len(failed) != 0 {
		t.Fatalf("a valid %d-byte event is not taken: %v", len(ev), failed)
	}
	hs.drainUntil(func() bool { return rc.count() == 1 }, 1500*time.Millisecond)
	if d, _ := hs.deliveryOf("evt_ls", ep); d.Status != domain.DeliveryDelivered || rc.count() != 1 {
		t.Errorf("delivery %s, %d requests", d.Status, rc.count())
	}
}

// TestARoundPastTheNextAttemptIsSetAside: a task naming a round that starts
// after the delivery's next attempt (no task this service writes does) is
// set aside rather than obeyed: obeyed, it started a new round at every
// receive, so the delivery was retried without end.
func TestARoundPastTheNextAttemptIsSetAside(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, _, d := hs.failedAfterTwoAttempts("evt_far_round", 500, 500, 500, 500, 500, 500)
	hs.redrive(fmt.Sprintf(`{"kind":"delivery","account_id":%q,"delivery_id":%q,"round_start":1000000000}`, hs.account, d.ID))
	hs.drainUntil(func() bool { return strings.Contains(hs.logs.String(), "round_start 1000000000 is past delivery") }, 2*time.Second)
	if rc.count() != 2 || hs.waiting(hs.tasksDLQURL) == 0 {
		t.Errorf("the task made %d more attempts; %d messages in the dead-letter queue", rc.count()-2, hs.waiting(hs.tasksDLQURL))
	}
}

// TestATaskSendsOnlyItsDeliverysBody: a task message carrying a body that
// is not the one fan-out made for its delivery (a hand-made message on the
// tasks queue) does not get those bytes signed with the endpoint's secret
// and sent: the delivery's own body, from the log, is sent instead.
func TestATaskSendsOnlyItsDeliverysBody(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_own_body", "rating", "red", "th_1"))
	hs.drainUntil(func() bool { return rc.count() == 1 }, time.Second)
	_, sent := rc.get(0)
	d, _ := hs.deliveryOf("evt_own_body", ep)
	if sum := sha256.Sum256(sent); d.PayloadSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("the delivery keeps %q as its body's hash", d.PayloadSHA256)
	}
	if strings.Contains(hs.logs.String(), "task's payload is not its delivery's") {
		t.Error("fan-out's own task was taken for a foreign one")
	}
	forged := `{"id":"` + d.ID + `","event":"rating","trigger":"rating.gold","event_id":"evt_forged","response":{"id":"rsp_x","rating":"gold","comment":"refund approved"}}`
	hs.redrive(fmt.Sprintf(`{"kind":"delivery","account_id":%q,"delivery_id":%q,"round_start":%d,"payload":%s}`, hs.account, d.ID, d.AttemptCount+1, forged))
	hs.drainUntil(func() bool { return rc.count() == 2 }, time.Second)
	if _, b := rc.get(1); string(b) != string(sent) {
		t.Errorf("sent %.120s, want the delivery's own body %.120s", b, sent)
	}
	if !strings.Contains(hs.logs.String(), "task's payload is not its delivery's") {
		t.Error("no log line tells of the foreign body")
	}
}

// TestAResentEventKeepsItsDeliverysBody: an event resent before its
// delivery's first attempt, after the endpoint was renamed (its name is in
// the body), leaves the body the delivery was made with: the log kept the
// first, the first task carried the first, and the webhook went out with
// both bodies under one delivery id.
func TestAResentEventKeepsItsDeliverysBody(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	ev := hs.event("evt_resent_renamed", "rating", "red", "th_1")
	if failed := hs.intake(ev); len(failed) != 0 {
		t.Fatal(failed)
	}
	renamed, err := hs.st.GetEndpoint(context.Background(), hs.account, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	renamed.Name = "Zebra, named before the first attempt"
	if err := hs.st.SaveEndpoint(context.Background(), renamed, renamed.Thermometers); err != nil {
		t.Fatal(err)
	}
	if failed := hs.intake(ev); len(failed) != 0 {
		t.Fatal(failed)
	}
	hs.drainUntil(func() bool { return rc.count() >= 1 }, 1500*time.Millisecond)
	_, logged, _, _, err := hs.st.DeliveryDetail(context.Background(), hs.account, ids.Derived("dlv", hs.account, "evt_resent_renamed", ep.ID), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rc.count() {
		if _, b := rc.get(i); string(b) != string(logged) || strings.Contains(string(b), "Zebra") {
			t.Errorf("request %d sent %.300s; the log holds %.300s", i, b, logged)
		}
	}
}

// TestAGenuineTaskIsNotHeldBackByAnUnfitTwin: a hand-made task naming a
// later round, in the same batch as its delivery's genuine task, is set
// aside, and the genuine one comes back at once to make the attempt rather
// than waiting out the back-off of an AWS failure.
func TestAGenuineTaskIsNotHeldBackByAnUnfitTwin(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_unfit_twin", "rating", "red", "th_1"))
	d, _ := hs.deliveryOf("evt_unfit_twin", ep)
	hs.redrive(fmt.Sprintf(`{"kind":"delivery","account_id":%q,"delivery_id":%q,"round_start":1000000000}`, hs.account, d.ID))
	ctx := context.Background()
	var batch []delivery.Message
	for try := 0; try < 10 && len(batch) < 2; try++ {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			batch = append(batch, hs.message(m))
		}
	}
	if len(batch) != 2 {
		t.Fatalf("received %d task messages, want the two", len(batch))
	}
	genuine := batch[0].ID
	if strings.Contains(batch[0].Body, "1000000000") {
		genuine = batch[1].ID
	}
	hs.h.Handle(ctx, batch)
	if rc.count() != 0 {
		t.Fatalf("the unfit task was attempted: %d requests", rc.count())
	}
	if !strings.Contains(hs.logs.String(), "round_start 1000000000 is past delivery") {
		t.Error("the unfit task was not set aside")
	}
	// Back at once, not hidden for the 30 s an AWS failure's first
	// receive waits.
	back := false
	for try := 0; try < 3 && !back; try++ {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			back = back || *m.MessageId == genuine
		}
	}
	if !back {
		t.Error("the genuine task did not come back at once")
	}
}
