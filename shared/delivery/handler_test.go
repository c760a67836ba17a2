package delivery_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/store"
)

func TestFanOutReachesOnlyMatchingEndpoints(t *testing.T) {
	hs := newHarness(t, time.Second)
	a, b, c, d, e := newReceiver(t, 200), newReceiver(t, 204), newReceiver(t, 200), newReceiver(t, 200), newReceiver(t, 200)
	epA, secretA := hs.endpoint(a.URL+"/a", []string{"comment.red"}, true, "th_1")
	epB, secretB := hs.endpoint(b.URL+"/b", []string{"rating.gold", "comment.*"}, false, "th_1", "th_9")
	hs.endpoint(c.URL, []string{"rating.*"}, false, "th_1")    // trigger does not match
	hs.endpoint(d.URL, []string{"comment.red"}, false, "th_2") // not linked to th_1
	epE, _ := hs.endpoint(e.URL, []string{"*"}, false, "th_1")
	epE.Enabled = false
	if err := hs.st.SaveEndpoint(context.Background(), epE, epE.Thermometers); err != nil {
		t.Fatal(err)
	}

	if failed := hs.intake(hs.event("evt_fan_1", "comment", "red", "th_1")); len(failed) != 0 {
		t.Fatalf("intake failed %v", failed)
	}
	if n := hs.drainUntil(func() bool { return a.count() == 1 && b.count() == 1 }, 1500*time.Millisecond); n != 2 {
		t.Errorf("%d tasks, want 2", n)
	}
	if a.count() != 1 || b.count() != 1 || c.count()+d.count()+e.count() != 0 {
		t.Fatalf("receivers got a=%d b=%d c=%d d=%d e=%d", a.count(), b.count(), c.count(), d.count(), e.count())
	}
	ra, bodyA := a.get(0)
	verify(t, secretA, ra, bodyA)
	if u, p, ok := ra.BasicAuth(); !ok || u != "ct" || p != "pw-"+epA.ID {
		t.Errorf("basic auth %q %q", u, p)
	}
	rb, bodyB := b.get(0)
	verify(t, secretB, rb, bodyB)
	var body map[string]any
	_ = json.Unmarshal(bodyA, &body)
	dA, attemptsA := hs.deliveryOf("evt_fan_1", epA)
	if body["id"] != dA.ID || body["event"] != "comment" || body["trigger"] != "comment.red" || body["test"] != false ||
		body["webhook"].(map[string]any)["id"] != epA.ID || !strings.Contains(string(bodyA), "Très bien — 👍") {
		t.Errorf("body %s", bodyA)
	}
	if body["occurred_at"] != "2026-11-27T10:55:03.12Z" {
		t.Errorf("occurred_at %v, want the event's, in UTC, to the fraction of a second", body["occurred_at"])
	}
	if th := body["thermometer"].(map[string]any); th["id"] != "th_1" || th["name"] != "Thermometer th_1" {
		t.Errorf("thermometer %v (the name comes from the link when the event has none)", th)
	}
	if ra.Header.Get("X-Ct-Delivery-Id") != dA.ID || ra.Header.Get("Webhook-Id") != dA.ID || ra.Header.Get("X-Ct-Attempt") != "1" || ra.Header.Get("X-Ct-Event") != "comment" {
		t.Errorf("headers %v", ra.Header)
	}
	if dA.Status != domain.DeliveryDelivered || dA.AttemptCount != 1 || len(attemptsA) != 1 || attemptsA[0].StatusCode != 200 {
		t.Errorf("delivery %+v attempts %+v", dA, attemptsA)
	}
	if dB, _ := hs.deliveryOf("evt_fan_1", epB); dB.Status != domain.DeliveryDelivered || dB.LastStatusCode != 204 {
		t.Errorf("delivery B %+v", dB)
	}

	// The same event again (a producer resend) creates nothing and sends nothing.
	if failed := hs.intake(hs.event("evt_fan_1", "comment", "red", "th_1")); len(failed) != 0 {
		t.Fatal(failed)
	}
	if n := hs.drain(1200 * time.Millisecond); n != 0 || a.count() != 1 {
		t.Errorf("a resent event made %d tasks, receiver a has %d", n, a.count())
	}
	if !strings.Contains(hs.metrics.String(), `"CtWebhooks"`) || !strings.Contains(hs.metrics.String(), `"FanOut":[2]`) {
		t.Errorf("metrics: %s", hs.metrics.String())
	}
}

func TestRetriesKeepOneDeliveryID(t *testing.T) {
	hs := newHarness(t, time.Second, time.Second, time.Second)
	rc := newReceiver(t, 500, 503, 200)
	ep, secret := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_retry", "rating", "gold", "th_1"))
	hs.drainUntil(func() bool { return rc.count() == 3 }, 1500*time.Millisecond)
	if rc.count() != 3 {
		t.Fatalf("receiver got %d requests, want 3", rc.count())
	}
	id := ""
	for i := 0; i < 3; i++ {
		r, body := rc.get(i)
		verify(t, secret, r, body)
		if id == "" {
			id = r.Header.Get("X-Ct-Delivery-Id")
		}
		if r.Header.Get("X-Ct-Delivery-Id") != id || r.Header.Get("X-Ct-Attempt") != string(rune('1'+i)) {
			t.Errorf("attempt %d: delivery %s attempt %s", i+1, r.Header.Get("X-Ct-Delivery-Id"), r.Header.Get("X-Ct-Attempt"))
		}
	}
	d, attempts := hs.deliveryOf("evt_retry", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 3 || len(attempts) != 3 ||
		attempts[0].StatusCode != 500 || attempts[1].StatusCode != 503 || attempts[2].StatusCode != 200 || attempts[0].Error == "" {
		t.Errorf("delivery %+v attempts %+v", d, attempts)
	}
	if !attempts[1].At.After(attempts[0].At.Add(900 * time.Millisecond)) {
		t.Errorf("retry came before its backoff: %v then %v", attempts[0].At, attempts[1].At)
	}
}

func TestAlwaysFailingEndsFailed(t *testing.T) {
	hs := newHarness(t, time.Second, time.Second)
	rc, ep := hs.oneDelivery("evt_fail", 500)
	// After the last attempt the message keeps coming back until SQS moves
	// it to the dead-letter queue (maxReceiveCount).
	hs.drainUntil(func() bool { return rc.count() == 3 }, 2500*time.Millisecond)
	if rc.count() != 3 {
		t.Fatalf("receiver got %d attempts, want 3", rc.count())
	}
	d, attempts := hs.deliveryOf("evt_fail", ep)
	if d.Status != domain.DeliveryFailed || d.AttemptCount != 3 || len(attempts) != 3 || d.LastStatusCode != 500 {
		t.Errorf("delivery %+v", d)
	}
	cur, _ := hs.st.GetEndpoint(context.Background(), hs.account, ep.ID)
	if cur.Status() != domain.StatusFailing {
		t.Errorf("endpoint status %s, want failing", cur.Status())
	}
	if body := hs.deadLettered(); !strings.Contains(body, d.ID) {
		t.Fatalf("dead-letter queue holds %q", body)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 410)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_gone", "driver", "amber", "th_1"))
	hs.drainUntil(func() bool { return rc.count() >= 1 }, 2500*time.Millisecond)
	if rc.count() != 1 {
		t.Errorf("410 was retried: %d attempts", rc.count())
	}
	d, _ := hs.deliveryOf("evt_gone", ep)
	cur, _ := hs.st.GetEndpoint(context.Background(), hs.account, ep.ID)
	if d.Status != domain.DeliveryFailed || cur.Enabled || !cur.Gone || cur.Status() != domain.StatusDisabled {
		t.Errorf("delivery %s, endpoint enabled=%v gone=%v", d.Status, cur.Enabled, cur.Gone)
	}
}

func TestDeletedEndpointStopsDeliveries(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_del", "rating", "gold", "th_1"))
	cur, _ := hs.st.GetEndpoint(context.Background(), hs.account, ep.ID)
	if err := hs.st.DeleteEndpoint(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	hs.drainUntil(func() bool {
		d, _ := hs.deliveryOf("evt_del", ep)
		return d.Status == domain.DeliveryFailed
	}, 1500*time.Millisecond)
	if rc.count() != 0 {
		t.Errorf("a deleted endpoint received %d webhooks", rc.count())
	}
	if d, _ := hs.deliveryOf("evt_del", ep); d.Status != domain.DeliveryFailed || d.LastError != "endpoint deleted" {
		t.Errorf("delivery %+v", d)
	}
}

// TestLinkOfADeletedEndpointIsRemoved: an endpoint's deletion that stopped
// after deleting the endpoint but before its links leaves a link behind.
// The first delivery through it finds the endpoint gone and removes the
// link, so later events no longer fill the log with deliveries to it.
func TestLinkOfADeletedEndpointIsRemoved(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_orphan")
	if err := hs.deleteEndpointItem(ep); err != nil { // the links stay
		t.Fatal(err)
	}
	hs.intake(hs.event("evt_orphan_1", "rating", "gold", "th_orphan"))
	hs.drainUntil(func() bool {
		d, _ := hs.deliveryOf("evt_orphan_1", ep)
		return d.Status == domain.DeliveryFailed
	}, 1500*time.Millisecond)
	if d, _ := hs.deliveryOf("evt_orphan_1", ep); d.LastError != "endpoint deleted" {
		t.Fatalf("delivery %+v", d)
	}
	if linked, _, err := hs.st.LinkedEndpointsPage(context.Background(), hs.account, "th_orphan", "", 10); err != nil || len(linked) != 0 {
		t.Errorf("links left: %v (%v)", linked, err)
	}
	hs.intake(hs.event("evt_orphan_2", "rating", "gold", "th_orphan"))
	if d, err := hs.st.GetDelivery(context.Background(), hs.account, ids.Derived("dlv", hs.account, "evt_orphan_2", ep.ID)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("a later event still reached the deleted endpoint: %+v (%v)", d, err)
	}
	if rc.count() != 0 {
		t.Errorf("a deleted endpoint received %d webhooks", rc.count())
	}
}

func TestInvalidMessagesAreSetAsideWithoutBlockingTheBatch(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	unknown := strings.Replace(hs.event("evt_unknown", "rating", "gold", "th_1"), hs.account, "acc_nobody_"+rnd(), 1)
	failed := hs.intake("not json", hs.event("evt_ok", "rating", "gold", "th_1"), `{"version":1,"event_id":"evt_bad","type":"complaint"}`, unknown)
	if len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	hs.drainUntil(func() bool { return rc.count() == 1 }, 1500*time.Millisecond)
	if rc.count() != 1 {
		t.Errorf("the valid event reached the receiver %d times", rc.count())
	}
	out, err := hs.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &hs.dlqURL, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, m := range out.Messages {
		reasons[aws.ToString(m.MessageAttributes["event_id"].StringValue)] = aws.ToString(m.MessageAttributes["reason"].StringValue)
	}
	if len(out.Messages) != 3 || !strings.Contains(reasons["evt_bad"], "complaint") || !strings.Contains(reasons["evt_unknown"], "not a known account") || !strings.Contains(reasons[""], "not a JSON object") {
		t.Errorf("dead-letter queue holds %d: %v", len(out.Messages), reasons)
	}
	if !strings.Contains(hs.logs.String(), `"event_id":"evt_bad"`) {
		t.Error("no log line names the invalid event")
	}
}

// TestABodySQSCannotTakeIsSetAsideEncoded: an invalid event whose body SQS
// would refuse to store (empty, or not UTF-8: only a hand-made invocation
// brings one) is set aside all the same, in a form SQS takes, marked with
// body_encoding; it once came back at every receive instead, its copy
// refused, until SQS moved it without a reason.
func TestABodySQSCannotTakeIsSetAsideEncoded(t *testing.T) {
	hs := newHarness(t, time.Second)
	bad := "{\"event_id\":\"e\xff\"}"
	if failed := hs.intake(bad, ""); len(failed) != 0 {
		t.Fatalf("not set aside, will be retried: %v", failed)
	}
	out, err := hs.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &hs.dlqURL, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range out.Messages {
		enc := aws.ToString(m.MessageAttributes["body_encoding"].StringValue)
		got[enc] = aws.ToString(m.Body) + " / " + aws.ToString(m.MessageAttributes["reason"].StringValue)
	}
	if want := base64.StdEncoding.EncodeToString([]byte(bad)) + " / body is not valid UTF-8"; got["base64"] != want {
		t.Errorf("the body that is not UTF-8 was set aside as %q, want %q", got["base64"], want)
	}
	if !strings.HasSuffix(got["empty"], " / body is not a JSON object of the event schema: unexpected end of JSON input") {
		t.Errorf("the empty body was set aside as %q", got["empty"])
	}
}

func TestLargeFanOutContinuesInAnotherMessage(t *testing.T) {
	hs := newHarness(t, time.Second)
	hs.h.FanOutPage = 2
	rc := newReceiver(t, 200)
	for i := 0; i < 5; i++ {
		hs.endpoint(rc.URL, []string{"*"}, false, "th_big")
	}
	hs.intake(hs.event("evt_big", "comment", "green", "th_big"))
	hs.drainUntil(func() bool { return rc.count() == 5 }, 1500*time.Millisecond)
	if rc.count() != 5 {
		t.Errorf("%d of 5 endpoints reached", rc.count())
	}
	ids := map[string]bool{}
	for i := 0; i < rc.count(); i++ {
		r, _ := rc.get(i)
		ids[r.Header.Get("X-Ct-Delivery-Id")] = true
	}
	if len(ids) != 5 {
		t.Errorf("%d distinct deliveries, want 5", len(ids))
	}
}

// TestLargeEventFansOutWhole: an event near the size limit whose comment
// is full of characters JSON may escape for HTML fans out in pages and is
// delivered as sent. Escaped, its continuation message and its webhook body
// would be six times the event, more than SQS and DynamoDB take.
func TestLargeEventFansOutWhole(t *testing.T) {
	hs := newHarness(t, time.Second)
	hs.h.FanOutPage = 1
	rc := newReceiver(t, 200, 200)
	for i := 0; i < 2; i++ {
		hs.endpoint(rc.URL, []string{"*"}, false, "th_large")
	}
	comment := strings.Repeat("<&>", 200<<10/3)
	ev := `{"version":1,"event_id":"evt_large","type":"comment","account_id":"` + hs.account +
		`","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_large","type":"email"},"response":{"id":"rsp_1","rating":"red","comment":"` + comment + `"}}`
	if failed := hs.intake(ev); len(failed) != 0 {
		t.Fatalf("intake failed %v", failed)
	}
	hs.drainUntil(func() bool { return rc.count() == 2 }, 1500*time.Millisecond)
	if rc.count() != 2 {
		t.Fatalf("%d of 2 endpoints reached", rc.count())
	}
	for i := 0; i < 2; i++ {
		r, body := rc.get(i)
		if !strings.Contains(string(body), `"comment":"`+comment+`"`) {
			t.Errorf("webhook %d (%s, %d bytes) does not carry the comment as sent", i+1, r.Header.Get("X-Ct-Delivery-Id"), len(body))
		}
	}
}

// pageLimits records the page sizes fan-out asks for.
type pageLimits struct {
	*store.Store
	mu     sync.Mutex
	limits []int
}

func (p *pageLimits) LinkedEndpointsPage(ctx context.Context, account, thermometer, after string, limit int) ([]domain.Endpoint, string, error) {
	p.mu.Lock()
	p.limits = append(p.limits, limit)
	p.mu.Unlock()
	return p.Store.LinkedEndpointsPage(ctx, account, thermometer, after, limit)
}

// TestALargeEventFansOutInSmallerPages: a page of a large event reaches
// fewer endpoints, so that the bodies one invocation holds stay bounded
// whatever the event's size; every endpoint is still reached.
func TestALargeEventFansOutInSmallerPages(t *testing.T) {
	hs := newHarness(t, time.Second)
	pages := &pageLimits{Store: hs.st}
	hs.h.Store, hs.h.FanOutPage = pages, 500
	rc := newReceiver(t, 200)
	for i := 0; i < 24; i++ {
		hs.endpoint(rc.URL, []string{"*"}, false, "th_wide")
	}
	comment := strings.Repeat("x", 200<<10)
	ev := `{"version":1,"event_id":"evt_wide","type":"comment","account_id":"` + hs.account +
		`","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_wide","type":"email"},"response":{"id":"rsp_1","rating":"red","comment":"` + comment + `"}}`
	small := hs.event("evt_narrow", "comment", "red", "th_wide")
	if failed := hs.intake(ev, small); len(failed) != 0 {
		t.Fatalf("intake failed %v", failed)
	}
	hs.drainUntil(func() bool { return rc.count() == 48 }, 1500*time.Millisecond)
	if rc.count() != 48 {
		t.Fatalf("%d of 48 webhooks sent", rc.count())
	}
	pages.mu.Lock()
	defer pages.mu.Unlock()
	// 4 MiB of bodies a page: 20 endpoints of a 200 KiB event, then the
	// rest; the small event's page is the configured 500.
	slices.Sort(pages.limits)
	if !slices.Equal(pages.limits, []int{20, 20, 500}) {
		t.Errorf("pages of %v endpoints, want 20 and 20 for the large event and 500 for the small one", pages.limits)
	}
}

// TestHangingReceiverDoesNotDelayAnother: both deliveries of one event go
// out concurrently; the fast receiver gets its webhook while the hanging one
// is still holding its request.
func TestHangingReceiverDoesNotDelayAnother(t *testing.T) {
	hs := newHarness(t, time.Second)
	hang, fast := newReceiver(t, 200), newReceiver(t, 200)
	hang.release = make(chan struct{})
	hs.endpoint(hang.URL, []string{"*"}, false, "th_1")
	hs.endpoint(fast.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_hang", "rating", "gold", "th_1"))
	done := make(chan struct{})
	go func() { hs.drain(time.Second); close(done) }()
	// Both requests arrive (in either order) while the batch is still
	// running: the fast one was not held back by the hanging one.
	for fast.count() == 0 || hang.count() == 0 {
		select {
		case <-done:
			t.Fatalf("the batch ended with %d request(s) at the fast receiver and %d at the hanging one", fast.count(), hang.count())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if fast.count() != 1 || hang.count() != 1 {
		t.Errorf("fast receiver has %d requests, hanging receiver %d; want 1 each", fast.count(), hang.count())
	}
	select {
	case <-done:
		t.Error("the batch finished before the hanging receiver was released or timed out")
	default:
	}
	close(hang.release)
	<-done
}

// TestRedriveFromDeadLetterQueueStartsANewRound: a message the console moves
// back from the dead-letter queue makes new attempts on the same delivery.
func TestRedriveFromDeadLetterQueueStartsANewRound(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep, _ := hs.failedAfterTwoAttempts("evt_redrive", 500, 500, 200)
	hs.redrive(hs.deadLettered())
	hs.drainUntil(func() bool { return rc.count() == 3 }, 1500*time.Millisecond)
	d, attempts := hs.deliveryOf("evt_redrive", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 3 || len(attempts) != 3 || rc.count() != 3 {
		t.Errorf("after redrive: %+v, %d attempts logged, receiver %d", d, len(attempts), rc.count())
	}
	r, _ := rc.get(2)
	if r.Header.Get("X-Ct-Attempt") != "3" {
		t.Errorf("redriven attempt numbered %s", r.Header.Get("X-Ct-Attempt"))
	}
}

// TestRedrivenDeliveryRetriesWithinItsNewRound: the first attempt of a
// redriven delivery fails, and its retry still comes (found by the fault
// battery: the redriven message's body names the round that failed, so its
// retry was taken for a message of that round and dropped, leaving the
// delivery retrying for good).
func TestRedrivenDeliveryRetriesWithinItsNewRound(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep, _ := hs.failedAfterTwoAttempts("evt_redrive_retry", 500, 500, 500, 200)
	hs.redrive(hs.deadLettered())
	hs.drainUntil(func() bool { return rc.count() == 4 }, 2500*time.Millisecond)
	d, attempts := hs.deliveryOf("evt_redrive_retry", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 4 || d.RoundStart != 3 || len(attempts) != 4 || rc.count() != 4 {
		t.Errorf("after redrive: %+v, %d attempts logged, receiver %d", d, len(attempts), rc.count())
	}
	if r, _ := rc.get(rc.count() - 1); r.Header.Get("X-Ct-Attempt") != "4" {
		t.Errorf("last attempt numbered %s", r.Header.Get("X-Ct-Attempt"))
	}
}

// TestNewRoundMessageStartsTheRoundWhenReceivedAgain: the message a
// redriven delivery hands over to starts the new round even on a later
// receive (its first receiver died before starting it); a redrive is never
// left undone.
func TestNewRoundMessageStartsTheRoundWhenReceivedAgain(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep, d := hs.failedAfterTwoAttempts("evt_handover", 500, 500, 200)
	var task map[string]any
	if err := json.Unmarshal([]byte(hs.deadLettered()), &task); err != nil {
		t.Fatal(err)
	}
	task["round_start"] = d.AttemptCount + 1
	body, _ := json.Marshal(task)
	tasksQueue := hs.tasksURL[strings.LastIndex(hs.tasksURL, "/")+1:]
	hs.h.Handle(context.Background(), []delivery.Message{{ID: "m-handover", Body: string(body), ReceiptHandle: "gone", ReceiveCount: 3, Queue: tasksQueue}})
	d, attempts := hs.deliveryOf("evt_handover", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 3 || d.RoundStart != 3 || len(attempts) != 3 || rc.count() != 3 {
		t.Errorf("after the new round's message: %+v, %d attempts logged, receiver %d", d, len(attempts), rc.count())
	}
}

func TestUnmatchedEventIsAcknowledgedAndCounted(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	hs.endpoint(rc.URL, []string{"comment.*"}, false, "th_1")
	failed := hs.intake(hs.event("evt_nobody", "rating", "gold", "th_1"), hs.event("evt_unlinked", "comment", "red", "th_none"))
	if len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if n := hs.drain(1200 * time.Millisecond); n != 0 || rc.count() != 0 {
		t.Errorf("%d tasks, %d webhooks for events nobody subscribed to", n, rc.count())
	}
	if !strings.Contains(hs.metrics.String(), `"UnmatchedEvents":2`) {
		t.Errorf("metrics %s", hs.metrics.String())
	}
}

// TestGoneEndpointIsDisabledByTheMessageBack: a worker that recorded a 410
// but failed to disable the endpoint (found by the fault battery, with AWS
// requests failing), or stopped before it, keeps the message; back, it
// disables the endpoint and goes, without another request. A change to the
// endpoint meanwhile (a new name, the service's failing flag) does not
// stop that; a new URL does: the 410 said nothing of it.
func TestGoneEndpointIsDisabledByTheMessageBack(t *testing.T) {
	for _, change := range []string{"none", "name", "url"} {
		hs := newHarness(t, time.Second)
		rc, ep := hs.oneDelivery("evt_gone_back", 410)
		ctx := context.Background()
		m := hs.receiveTask()
		working := hs.h.Store
		hs.h.Store = hs.storeFailing("TransactWriteItems") // every endpoint write
		failed := hs.h.Handle(ctx, []delivery.Message{m})
		hs.h.Store = working
		if !slices.Equal(failed, []string{m.ID}) {
			t.Fatalf("messages kept %v, want %s: the endpoint is not disabled yet", failed, m.ID)
		}
		if d, _ := hs.deliveryOf("evt_gone_back", ep); d.Status != domain.DeliveryFailed || rc.count() != 1 {
			t.Fatalf("delivery %s after %d requests, want failed after one", d.Status, rc.count())
		}
		cur, err := hs.st.GetEndpoint(ctx, hs.account, ep.ID)
		if err != nil || !cur.Enabled {
			t.Fatalf("endpoint enabled=%v (%v) although its update failed", cur.Enabled, err)
		}
		if change != "none" {
			cur.UpdatedAt = time.Now().UTC()
			if change == "name" {
				cur.Name, cur.Failing = "renamed", true
			} else {
				cur.URL = rc.URL + "/elsewhere"
			}
			if err := hs.st.SaveEndpoint(ctx, cur, cur.Thermometers); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		hs.drain(1500 * time.Millisecond)
		if cur, err = hs.st.GetEndpoint(ctx, hs.account, ep.ID); err != nil {
			t.Fatal(err)
		}
		if change == "url" && (!cur.Enabled || cur.Gone) {
			t.Errorf("endpoint with a new URL: enabled=%v gone=%v, want it left enabled", cur.Enabled, cur.Gone)
		}
		if change != "url" && (cur.Enabled || !cur.Gone || cur.Status() != domain.StatusDisabled) {
			t.Errorf("change %s: endpoint after the message came back: enabled=%v gone=%v, want disabled by the 410", change, cur.Enabled, cur.Gone)
		}
		if rc.count() != 1 || hs.waiting(hs.tasksURL) != 0 {
			t.Errorf("change %s: receiver got %d requests, %d messages left; want one request, no message", change, rc.count(), hs.waiting(hs.tasksURL))
		}
	}
}

// TestFanOutRecoversFromACrashBeforeThePayload: the process died after
// creating a delivery but before writing its payload and queueing its task
// (found by the fault battery). The event comes back and the delivery goes
// out, once.
func TestFanOutRecoversFromACrashBeforeThePayload(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc := newReceiver(t, 200)
	ep, secret := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	now := time.Now().UTC()
	d := domain.Delivery{ID: ids.Derived("dlv", hs.account, "evt_crash", ep.ID), AccountID: hs.account, EndpointID: ep.ID, EndpointURL: ep.URL,
		EventID: "evt_crash", Event: "rating", Trigger: "rating.gold", ThermometerID: "th_1", Status: domain.DeliveryPending, RoundStart: 1,
		NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
	if created, _, err := hs.st.CreateDelivery(context.Background(), d, now.Add(time.Hour)); err != nil || !created {
		t.Fatal(created, err)
	}
	if failed := hs.intake(hs.event("evt_crash", "rating", "gold", "th_1")); len(failed) != 0 {
		t.Fatal(failed)
	}
	hs.drainUntil(func() bool { return rc.count() == 1 }, time.Second)
	r, body := rc.get(0)
	verify(t, secret, r, body)
	got, _, _, _, err := hs.st.DeliveryDetail(context.Background(), hs.account, d.ID, 0)
	if err != nil || got.Status != domain.DeliveryDelivered || rc.count() != 1 {
		t.Errorf("delivery %+v (%v), receiver %d", got, err, rc.count())
	}
	if p, err := hs.st.Payload(context.Background(), hs.account, d.ID); err != nil || !strings.Contains(string(p), "evt_crash") {
		t.Errorf("payload %s, %v", p, err)
	}
}

// TestDeliveryOutlivesItsMessagesReceiveLimit: a delivery with more attempts
// than the tasks queue's maxReceiveCount makes all of them (found by the
// fault battery: SQS moved the message to the dead-letter queue before the
// last attempts, leaving the delivery retrying with nothing to attempt it).
func TestDeliveryOutlivesItsMessagesReceiveLimit(t *testing.T) {
	schedule := make([]time.Duration, maxReceives+1)
	for i := range schedule {
		schedule[i] = time.Second
	}
	hs := newHarness(t, schedule...)
	script := make([]int, len(schedule)+1)
	for i := range script {
		script[i] = 500
	}
	script[len(script)-1] = 200
	rc, ep := hs.oneDelivery("evt_long", script...)
	hs.drainUntil(func() bool { return rc.count() == len(script) }, 1500*time.Millisecond)
	d, attempts := hs.deliveryOf("evt_long", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != len(script) || len(attempts) != len(script) || rc.count() != len(script) {
		t.Errorf("delivery %+v, %d attempts logged, receiver %d, want delivered at attempt %d", d, len(attempts), rc.count(), len(script))
	}
	id, _ := rc.get(0)
	for i := 1; i < rc.count(); i++ {
		if r, _ := rc.get(i); r.Header.Get("X-Ct-Delivery-Id") != id.Header.Get("X-Ct-Delivery-Id") {
			t.Errorf("attempt %d has delivery id %s", i+1, r.Header.Get("X-Ct-Delivery-Id"))
		}
	}
	if n := hs.waiting(hs.tasksDLQURL); n != 0 {
		t.Errorf("%d messages on the dead-letter queue", n)
	}
}

// TestLostReceivesDoNotStrandADelivery: receives lost to crashed invocations
// count towards maxReceiveCount too; the delivery still gets every attempt.
func TestLostReceivesDoNotStrandADelivery(t *testing.T) {
	hs := newHarness(t, time.Second, time.Second, time.Second)
	rc, ep := hs.oneDelivery("evt_lost", 500, 500, 500, 200)
	// Three invocations die holding the message: it comes back unhandled.
	ctx := context.Background()
	for lost := 0; lost < 3; {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			lost++
			if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	hs.drainUntil(func() bool { return rc.count() == 4 }, 1500*time.Millisecond)
	d, attempts := hs.deliveryOf("evt_lost", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 4 || len(attempts) != 4 || rc.count() != 4 {
		t.Errorf("delivery %+v, %d attempts logged, receiver %d", d, len(attempts), rc.count())
	}
	if n := hs.waiting(hs.tasksDLQURL); n != 0 {
		t.Errorf("%d messages on the dead-letter queue", n)
	}
}

// TestEarlyMessageWaitsForItsAttempt: a delivery's message that comes back
// before the delivery's next attempt is due (its visibility change was lost,
// or it is a fresh message for a delay longer than SQS's 15 minutes) is
// hidden again, without an early attempt.
func TestEarlyMessageWaitsForItsAttempt(t *testing.T) {
	hs := newHarness(t, time.Hour)
	rc, ep := hs.oneDelivery("evt_early", 500, 200)
	ctx := context.Background()
	msg := hs.receiveTask()
	if failed := hs.h.Handle(ctx, []delivery.Message{msg}); len(failed) != 1 || rc.count() != 1 {
		t.Fatalf("first attempt: failed %v, receiver %d", failed, rc.count())
	}
	d, _ := hs.deliveryOf("evt_early", ep)
	if d.Status != domain.DeliveryRetrying || d.NextAttemptAt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("after the first attempt: %+v", d)
	}
	// The same message again, long before its retry is due.
	msg.ReceiveCount = 2
	if failed := hs.h.Handle(ctx, []delivery.Message{msg}); len(failed) != 1 || failed[0] != msg.ID {
		t.Errorf("early message reported %v, want it back later", failed)
	}
	if rc.count() != 1 {
		t.Errorf("receiver got %d requests, want no early attempt", rc.count())
	}
	if after, _ := hs.deliveryOf("evt_early", ep); after.AttemptCount != 1 || after.Status != domain.DeliveryRetrying || !after.NextAttemptAt.Equal(d.NextAttemptAt) {
		t.Errorf("early message changed the delivery: %+v", after)
	}
	// Hidden until the attempt is due: nothing to receive now.
	if out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, WaitTimeSeconds: 1}); err != nil || len(out.Messages) != 0 {
		t.Errorf("message visible again: %v, %d", err, len(out.Messages))
	}
}

// TestLateDuplicateDoesNotReopenAFailedDelivery: a duplicate of a delivery's
// task, sent before the delivery failed but received only afterwards (a
// fan-out repeated after a crash), is not taken for a redrive (found by the
// fault battery: such duplicates gave failed deliveries another round).
func TestLateDuplicateDoesNotReopenAFailedDelivery(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep, d := hs.failedAfterTwoAttempts("evt_late_dup", 500)
	body := hs.deadLettered()
	tasksQueue := hs.tasksURL[strings.LastIndex(hs.tasksURL, "/")+1:]
	dup := delivery.Message{ID: "m-late-dup", Body: body, ReceiptHandle: "gone", ReceiveCount: 1, SentAt: d.CreatedAt, Queue: tasksQueue}
	if failed := hs.h.Handle(context.Background(), []delivery.Message{dup}); len(failed) != 0 {
		t.Errorf("duplicate reported %v, want it dropped as a spare (the last attempt's own message carries the failure)", failed)
	}
	hs.drain(1500 * time.Millisecond)
	after, attempts := hs.deliveryOf("evt_late_dup", ep)
	if after.Status != domain.DeliveryFailed || after.AttemptCount != 2 || after.RoundStart != 1 || len(attempts) != 2 || rc.count() != 2 {
		t.Errorf("after the duplicate: %+v, %d attempts logged, receiver %d", after, len(attempts), rc.count())
	}

	// The same body redriven (a new message, sent now) does start a round.
	redrive := dup
	redrive.ID, redrive.SentAt = "m-redrive", time.Now()
	hs.h.Handle(context.Background(), []delivery.Message{redrive})
	hs.drainUntil(func() bool { return rc.count() == 4 }, 2500*time.Millisecond)
	if after, _ := hs.deliveryOf("evt_late_dup", ep); after.Status != domain.DeliveryFailed || after.AttemptCount != 4 || after.RoundStart != 3 {
		t.Errorf("after a redrive: %+v, receiver %d", after, rc.count())
	}
}

// TestLongestRetryFitsSQSVisibilityLimit: SQS refuses a visibility change
// that would end more than 12 hours after the message was received, so a
// 12-hour retry delay (plus jitter) is hidden for a little less; refused, the
// message would come back after the queue's own visibility timeout instead.
func TestLongestRetryFitsSQSVisibilityLimit(t *testing.T) {
	hs := newHarness(t, 12*time.Hour)
	hs.h.Jitter = func(d time.Duration) time.Duration { return d / 5 }
	_, ep := hs.oneDelivery("evt_12h", 500)
	ctx := context.Background()
	msg := hs.receiveTask()
	received := time.Now()
	hs.h.Handle(ctx, []delivery.Message{msg})
	d, _ := hs.deliveryOf("evt_12h", ep)
	if d.Status != domain.DeliveryRetrying {
		t.Fatalf("after the first attempt: %+v", d)
	}
	if next := d.NextAttemptAt.Sub(received); next > 12*time.Hour-30*time.Second || next < 11*time.Hour {
		t.Errorf("next attempt %v after the receive, want just under 12h", next)
	}
}

// TestConcurrentDuplicateKeepsTheRetry: SQS hands one message to two
// invocations at once (it delivers at least once). Both make the attempt;
// the one whose record loses must not delete the message that carries the
// delivery's retry: deleting it through either receipt handle may delete
// it (the emulator always does), and the delivery would be left retrying
// with nothing to attempt it.
func TestConcurrentDuplicateKeepsTheRetry(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep := hs.oneDelivery("evt_dup_now", 500, 500, 200)
	rc.release = make(chan struct{})
	ctx := context.Background()
	first := hs.receiveTask()
	if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &first.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	second := hs.receiveTask()
	if first.ID != second.ID {
		t.Fatalf("two messages %s and %s, want one received twice", first.ID, second.ID)
	}

	hs.attemptAtOnce(rc, first, second)

	hs.drainUntil(func() bool { return rc.count() == 3 }, 1500*time.Millisecond)
	d, attempts := hs.deliveryOf("evt_dup_now", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 2 || rc.count() != 3 {
		t.Errorf("delivery %+v, receiver %d; want delivered at attempt 2", d, rc.count())
	}
	// Every request sent is in the log, the first attempt's two as well:
	// neither record replaced the other.
	var numbers []int
	for _, a := range attempts {
		numbers = append(numbers, a.Number)
	}
	if !slices.Equal(numbers, []int{1, 1, 2}) {
		t.Errorf("attempts logged %v, want 1, 1, 2: one record per request sent", numbers)
	}
	first0, _ := rc.get(0)
	for i := 1; i < rc.count(); i++ {
		if r, _ := rc.get(i); r.Header.Get("X-Ct-Delivery-Id") != first0.Header.Get("X-Ct-Delivery-Id") {
			t.Errorf("request %d has delivery id %s, want %s", i+1, r.Header.Get("X-Ct-Delivery-Id"), first0.Header.Get("X-Ct-Delivery-Id"))
		}
	}
}

// TestOldMessageHandsOver: SQS deletes a message older than its queue's
// retention period however it is hidden, so a delivery whose retry would
// come after its message has grown old continues in a fresh message (a
// custom retry schedule may be longer than the retention period).
func TestOldMessageHandsOver(t *testing.T) {
	hs := newHarness(t, time.Hour)
	_, ep := hs.oneDelivery("evt_old_msg", 500)
	ctx := context.Background()
	msg := hs.receiveTask()
	msg.SentAt = time.Now().Add(-71*time.Hour - 30*time.Minute) // 72.5 h old an hour from now
	if failed := hs.h.Handle(ctx, []delivery.Message{msg}); len(failed) != 0 {
		t.Errorf("old message reported %v, want it replaced", failed)
	}
	if _, err := hs.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &msg.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if d, _ := hs.deliveryOf("evt_old_msg", ep); d.Status != domain.DeliveryRetrying || d.AttemptCount != 1 {
		t.Fatalf("after the first attempt: %+v", d)
	}
	out, err := hs.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &hs.tasksURL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		t.Fatal(err)
	}
	if n := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)]; n != "1" {
		t.Errorf("%s delayed messages on the tasks queue, want the fresh one", n)
	}

	// A young message with the same wait keeps its delivery.
	hs.intake(hs.event("evt_young_msg", "rating", "red", "th_1"))
	young := hs.receiveTask()
	if failed := hs.h.Handle(ctx, []delivery.Message{young}); len(failed) != 1 {
		t.Errorf("young message reported %v, want it hidden for the retry", failed)
	}
}

// TestSpareMessagesAreDropped: a second task message for the same delivery
// (a fan-out repeated after a crash queues one) is dropped once the other
// has made an attempt, rather than following the delivery through every
// retry and sending each attempt twice; a message sent after that attempt
// (a hand-over's fresh message) is kept.
func TestSpareMessagesAreDropped(t *testing.T) {
	hs := newHarness(t, time.Hour)
	rc, ep := hs.oneDelivery("evt_spare", 500, 500, 500)
	ctx := context.Background()
	carrier := hs.receiveTask()
	hs.redrive(carrier.Body)            // the spare, queued before the attempt
	time.Sleep(1100 * time.Millisecond) // more than the margin for clocks
	if failed := hs.h.Handle(ctx, []delivery.Message{carrier}); len(failed) != 1 {
		t.Fatalf("first attempt: failed %v", failed)
	}
	spare := hs.receiveTask()
	if spare.ID == carrier.ID {
		t.Fatal("received the carrier again")
	}
	if failed := hs.h.Handle(ctx, []delivery.Message{spare}); len(failed) != 0 {
		t.Errorf("spare message reported %v, want it dropped", failed)
	}
	hs.redrive(carrier.Body) // sent after the attempt: kept
	later := hs.receiveTask()
	if failed := hs.h.Handle(ctx, []delivery.Message{later}); len(failed) != 1 {
		t.Errorf("message sent after the attempt reported %v, want it kept hidden", failed)
	}
	if d, _ := hs.deliveryOf("evt_spare", ep); d.AttemptCount != 1 || rc.count() != 1 || d.Carrier != carrier.ID {
		t.Errorf("delivery %+v, receiver %d; want one attempt, carried by %s", d, rc.count(), carrier.ID)
	}
}

// TestConcurrentSpareIsDropped: two different messages for one delivery
// attempt it at once; the one whose record loses is a spare and goes, so
// one message carries the delivery from then on.
func TestConcurrentSpareIsDropped(t *testing.T) {
	hs := newHarness(t, time.Hour)
	rc, ep := hs.oneDelivery("evt_spare_now", 500, 500, 500)
	rc.release = make(chan struct{})
	first := hs.receiveTask()
	hs.redrive(first.Body)
	second := hs.receiveTask()
	if first.ID == second.ID {
		t.Fatal("one message, want two")
	}
	time.Sleep(1100 * time.Millisecond) // both sent more than the margin for clocks before the attempt
	hs.attemptAtOnce(rc, first, second)
	if n := hs.waiting(hs.tasksURL); n != 1 {
		t.Errorf("%d messages left for the delivery, want one", n)
	}
	if d, _ := hs.deliveryOf("evt_spare_now", ep); d.Status != domain.DeliveryRetrying || d.AttemptCount != 1 {
		t.Errorf("delivery %+v", d)
	}
}

// TestTwoTasksInOneBatchMakeOneAttempt: two task messages for one delivery
// (a fan-out repeated before the first attempt queues a second) may arrive
// in one batch. One attempt is made and logged: two would send the webhook
// twice and write the same attempt twice into one log batch, which DynamoDB
// refuses whole, failing every delivery of the batch, round after round.
func TestTwoTasksInOneBatchMakeOneAttempt(t *testing.T) {
	hs := newHarness(t, time.Hour)
	rc, ep := hs.oneDelivery("evt_twins", 500, 500)
	first := hs.receiveTask()
	hs.redrive(first.Body)
	second := hs.receiveTask()
	if first.ID == second.ID {
		t.Fatal("one message, want two")
	}
	failed := hs.h.Handle(context.Background(), []delivery.Message{first, second})
	d, attempts := hs.deliveryOf("evt_twins", ep)
	if rc.count() != 1 || d.AttemptCount != 1 || len(attempts) != 1 || d.Status != domain.DeliveryRetrying {
		t.Fatalf("receiver %d, delivery %+v, %d attempts logged; want one attempt, retrying", rc.count(), d, len(attempts))
	}
	// Both messages wait for the retry (neither is yet known to be spare):
	// nothing is lost and the delivery goes on.
	if len(failed) != 2 {
		t.Errorf("failed %v, want both messages kept for the retry", failed)
	}
}

// TestRedeliveryTaskStartsItsRound: the API queues a redelivery's task
// before it records the new round; when recording fails, the task finds the
// delivery still delivered (or failed) and starts the round itself, so an
// accepted redelivery is never left without an attempt.
func TestRedeliveryTaskStartsItsRound(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep := hs.oneDelivery("evt_rd_task", 200, 200)
	hs.drainUntil(func() bool { return rc.count() == 1 }, 1500*time.Millisecond)
	d, _ := hs.deliveryOf("evt_rd_task", ep)
	if d.Status != domain.DeliveryDelivered {
		t.Fatalf("first round: %+v", d)
	}
	hs.redeliveryTask(d)
	hs.drainUntil(func() bool { return rc.count() == 2 }, 1500*time.Millisecond)
	d, attempts := hs.deliveryOf("evt_rd_task", ep)
	if rc.count() != 2 || d.Status != domain.DeliveryDelivered || d.AttemptCount != 2 || d.RoundStart != 2 || len(attempts) != 2 {
		t.Errorf("receiver %d, delivery %+v, %d attempts; want the new round's attempt 2 delivered", rc.count(), d, len(attempts))
	}
}

// TestMissingPayloadStopsTheDelivery: a delivery whose payload is no longer
// in the log (expired) has nothing to send; it ends failed, saying why,
// instead of failing as an infrastructure error until the dead-letter queue.
func TestMissingPayloadStopsTheDelivery(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep := hs.oneDelivery("evt_no_payload", 200, 200)
	hs.drainUntil(func() bool { return rc.count() == 1 }, 1500*time.Millisecond)
	d, _ := hs.deliveryOf("evt_no_payload", ep)
	if err := hs.deleteItem(d, "#PAYLOAD"); err != nil {
		t.Fatal(err)
	}
	hs.redeliveryTask(d)
	msg := hs.receiveTask()
	// Young, a missing payload is an error retried like any other.
	if failed := hs.h.Handle(context.Background(), []delivery.Message{msg}); len(failed) != 1 {
		t.Errorf("failed %v, want the task of a young delivery retried", failed)
	}
	// Older than any payload can be missing for but by expiring.
	hs.h.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if failed := hs.h.Handle(context.Background(), []delivery.Message{msg}); len(failed) != 0 {
		t.Errorf("failed %v, want the task acknowledged", failed)
	}
	if d, _ = hs.deliveryOf("evt_no_payload", ep); d.Status != domain.DeliveryFailed || !strings.Contains(d.LastError, "payload") || rc.count() != 1 {
		t.Errorf("delivery %+v, receiver %d; want failed for its payload, nothing sent", d, rc.count())
	}
}

// TestRedeliveryOfARetryingDeliveryStartsAtOnce: the redelivery's task can
// reach the delivery function before the API has recorded the new round.
// A delivery still retrying, its next retry an hour away, starts the new
// round and attempts at once rather than waiting for the old retry.
func TestRedeliveryOfARetryingDeliveryStartsAtOnce(t *testing.T) {
	hs := newHarness(t, time.Hour)
	rc, ep := hs.oneDelivery("evt_rd_retrying", 500, 200)
	if failed := hs.h.Handle(context.Background(), []delivery.Message{hs.receiveTask()}); len(failed) != 1 {
		t.Fatalf("first attempt: failed %v", failed)
	}
	d, _ := hs.deliveryOf("evt_rd_retrying", ep)
	if d.Status != domain.DeliveryRetrying {
		t.Fatalf("after the first attempt: %+v", d)
	}
	hs.redeliveryTask(d)
	if failed := hs.h.Handle(context.Background(), []delivery.Message{hs.receiveTask()}); len(failed) != 0 {
		t.Errorf("redelivery: failed %v", failed)
	}
	if d, _ = hs.deliveryOf("evt_rd_retrying", ep); rc.count() != 2 || d.Status != domain.DeliveryDelivered || d.RoundStart != 2 || d.AttemptCount != 2 {
		t.Errorf("receiver %d, delivery %+v; want the new round's attempt made at once", rc.count(), d)
	}
}

// panicSender panics on every send: a bug meeting data it did not expect.
type panicSender struct{}

func (panicSender) Send(context.Context, dispatch.Webhook) dispatch.Result { panic("unexpected") }

// TestPanicFailsOnlyItsMessage: a panic while handling one message is
// logged and that message comes back later; the process does not die, so
// the rest of the batch is handled and nothing is lost.
func TestPanicFailsOnlyItsMessage(t *testing.T) {
	hs := newHarness(t, time.Second)
	_, ep := hs.oneDelivery("evt_panic", 200)
	task := hs.receiveTask()
	hs.h.Sender = panicSender{}
	failed := hs.h.Handle(context.Background(), []delivery.Message{task})
	if len(failed) != 1 || failed[0] != task.ID {
		t.Errorf("failed %v, want the task back", failed)
	}
	if !strings.Contains(hs.logs.String(), "internal error") {
		t.Error("no log line for the panic")
	}
	if d, _ := hs.deliveryOf("evt_panic", ep); d.Status != domain.DeliveryPending {
		t.Errorf("delivery %+v, want it still pending", d)
	}
}
