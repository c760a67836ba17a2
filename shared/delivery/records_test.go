// Tests of what the delivery log and the links say after trouble: stale
// links, failed log writes, duplicated attempts, expired deliveries, long
// retry steps.

package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/store"
)

// TestAStaleLinkIsCheckedAndRepaired: a write of an endpoint that stopped
// between its transactions leaves links as they were. An event fanned out
// through such a link is not sent (the endpoint no longer asks for it), and
// the link is brought in line with the endpoint, so the next events follow
// the endpoint as it is.
func TestAStaleLinkIsCheckedAndRepaired(t *testing.T) {
	hs := newHarness(t, time.Second)
	ctx := context.Background()
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_kept", "th_dropped")
	stale := []map[string]dbtypes.AttributeValue{hs.linkItem(ep, "th_kept"), hs.linkItem(ep, "th_dropped")}
	cur := ep
	cur.Triggers, cur.Thermometers = []string{"rating.red"}, ep.Thermometers[:1]
	if err := hs.st.SaveEndpoint(ctx, cur, ep.Thermometers); err != nil {
		t.Fatal(err)
	}
	for _, it := range stale { // as if the links' transaction had failed
		hs.putItem(it)
	}

	hs.intake(hs.event("evt_stale_trigger", "rating", "gold", "th_kept"), hs.event("evt_stale_link", "rating", "red", "th_dropped"))
	hs.drainUntil(func() bool {
		a, _ := hs.deliveryOf("evt_stale_trigger", ep)
		b, _ := hs.deliveryOf("evt_stale_link", ep)
		return a.Status == domain.DeliveryFailed && b.Status == domain.DeliveryFailed
	}, 1500*time.Millisecond)
	if rc.count() != 0 {
		t.Errorf("the receiver got %d webhooks the endpoint no longer asks for", rc.count())
	}
	if d, _ := hs.deliveryOf("evt_stale_trigger", ep); d.LastError != "endpoint no longer triggered by rating.gold" || d.AttemptCount != 0 {
		t.Errorf("delivery through the stale trigger: %+v", d)
	}
	if d, _ := hs.deliveryOf("evt_stale_link", ep); d.LastError != "thermometer no longer linked to the endpoint" || d.AttemptCount != 0 {
		t.Errorf("delivery through the stale link: %+v", d)
	}
	if linked, _, err := hs.st.LinkedEndpointsPage(ctx, hs.account, "th_dropped", "", 10); err != nil || len(linked) != 0 {
		t.Errorf("the dropped thermometer's link is left: %+v (%v)", linked, err)
	}
	if linked, _, err := hs.st.LinkedEndpointsPage(ctx, hs.account, "th_kept", "", 10); err != nil || len(linked) != 1 ||
		!slices.Equal(linked[0].Triggers, []string{"rating.red"}) || linked[0].Version != 2 {
		t.Errorf("the kept thermometer's link is not repaired: %+v (%v)", linked, err)
	}

	// The repaired links follow the endpoint.
	hs.intake(hs.event("evt_after_gold", "rating", "gold", "th_kept"), hs.event("evt_after_dropped", "rating", "red", "th_dropped"),
		hs.event("evt_after_red", "rating", "red", "th_kept"))
	for _, id := range []string{"evt_after_gold", "evt_after_dropped"} {
		if d, err := hs.st.GetDelivery(ctx, hs.account, ids.Derived("dlv", hs.account, id, ep.ID)); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s still made a delivery: %+v (%v)", id, d, err)
		}
	}
	hs.drainUntil(func() bool { return rc.count() == 1 }, 1500*time.Millisecond)
	if d, _ := hs.deliveryOf("evt_after_red", ep); d.Status != domain.DeliveryDelivered || rc.count() != 1 {
		t.Errorf("a matching event after the repair: %+v, %d webhooks", d, rc.count())
	}
}

// TestARetryOutlivesAChangeOfTriggers: the link is checked before the first
// attempt only. An event that matched when it was fanned out and first sent
// is retried to the end; disabling or deleting the endpoint stops it.
func TestARetryOutlivesAChangeOfTriggers(t *testing.T) {
	hs := newHarness(t, 4*time.Second)
	ctx := context.Background()
	rc := newReceiver(t, 500, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_retry_triggers", "comment", "amber", "th_1"))
	hs.drainUntil(func() bool { return rc.count() >= 1 }, 300*time.Millisecond)
	cur, err := hs.st.GetEndpoint(ctx, hs.account, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.Triggers, cur.Thermometers = []string{"rating.red"}, nil
	if err := hs.st.SaveEndpoint(ctx, cur, ep.Thermometers); err != nil {
		t.Fatal(err)
	}
	if rc.count() != 1 {
		t.Fatalf("%d attempts before the triggers changed, want 1", rc.count())
	}
	hs.drainUntil(func() bool { return rc.count() >= 2 }, 1500*time.Millisecond)
	if d, _ := hs.deliveryOf("evt_retry_triggers", ep); d.Status != domain.DeliveryDelivered || d.AttemptCount != 2 {
		t.Errorf("retry after the triggers changed: %+v, %d webhooks", d, rc.count())
	}
}

// linkItem reads the stored link of e to thermometer as it is.
func (hs *harness) linkItem(e domain.Endpoint, thermometer string) map[string]dbtypes.AttributeValue {
	hs.t.Helper()
	table := awstest.LoadStack(hs.t).Outputs["EndpointsTableName"]
	out, err := dynamodb.NewFromConfig(awstest.Config(hs.t)).GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: &table,
		Key: map[string]dbtypes.AttributeValue{
			"pk": &dbtypes.AttributeValueMemberS{Value: "ACCOUNT#" + e.AccountID + "#THERMOMETER#" + thermometer},
			"sk": &dbtypes.AttributeValueMemberS{Value: "ENDPOINT#" + e.ID},
		},
	})
	if err != nil || out.Item == nil {
		hs.t.Fatalf("link %s of %s: %v", thermometer, e.ID, err)
	}
	return out.Item
}

// putItem writes item to the endpoints table as it is.
func (hs *harness) putItem(item map[string]dbtypes.AttributeValue) {
	hs.t.Helper()
	table := awstest.LoadStack(hs.t).Outputs["EndpointsTableName"]
	if _, err := dynamodb.NewFromConfig(awstest.Config(hs.t)).PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
		hs.t.Fatal(err)
	}
}

// refusingLogOf is a store that refuses every log write holding an attempt
// of one delivery.
type refusingLogOf struct {
	*store.Store
	deliveryID string
}

func (r refusingLogOf) PutLogItems(ctx context.Context, items []store.LogItem) error {
	for _, it := range items {
		if it.DeliveryID == r.deliveryID && it.Attempt != nil {
			return errors.New("refused")
		}
	}
	return r.Store.PutLogItems(ctx, items)
}

// TestAFailedLogWriteFailsOnlyItsOwnDelivery: when the batch's log write
// fails, each attempt's record is written on its own; a webhook whose
// record is written is settled and not sent again, and only the one whose
// record cannot be written comes back.
func TestAFailedLogWriteFailsOnlyItsOwnDelivery(t *testing.T) {
	hs := newHarness(t, time.Second)
	ctx := context.Background()
	rcA, rcB := newReceiver(t, 200), newReceiver(t, 200)
	epA, _ := hs.endpoint(rcA.URL, []string{"*"}, false, "th_log")
	epB, _ := hs.endpoint(rcB.URL, []string{"*"}, false, "th_log")
	hs.intake(hs.event("evt_log", "rating", "green", "th_log"))
	hs.h.Store = refusingLogOf{hs.st, ids.Derived("dlv", hs.account, "evt_log", epB.ID)}

	var msgs []delivery.Message
	for start := time.Now(); len(msgs) < 2 && time.Since(start) < 10*time.Second; {
		out, err := hs.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &hs.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			msgs = append(msgs, hs.message(m))
		}
	}
	if len(msgs) != 2 {
		t.Fatalf("%d tasks, want 2", len(msgs))
	}
	failed := hs.h.Handle(ctx, msgs)
	if rcA.count() != 1 || rcB.count() != 1 {
		t.Fatalf("webhooks sent: %d and %d, want 1 each", rcA.count(), rcB.count())
	}
	a, attemptsA := hs.deliveryOf("evt_log", epA)
	if a.Status != domain.DeliveryDelivered || len(attemptsA) != 1 {
		t.Errorf("the delivery whose record was written: %+v, %d attempts logged", a, len(attemptsA))
	}
	b, _ := hs.deliveryOf("evt_log", epB)
	if b.Status != domain.DeliveryPending || b.AttemptCount != 0 {
		t.Errorf("the delivery whose record was refused claims its attempt: %+v", b)
	}
	if len(failed) != 1 || !strings.Contains(msgs[slices.IndexFunc(msgs, func(m delivery.Message) bool { return m.ID == failed[0] })].Body, b.ID) {
		t.Errorf("messages to come back: %v, want only the task of %s", failed, b.ID)
	}
}

// TestALongStepKeepsItsJitter: a step longer than SQS lets a message hide
// (12 hours, less the time a batch takes) is cut below that limit, and the
// jitter still spreads it there, so that receivers that failed together
// are not retried at the same second.
func TestALongStepKeepsItsJitter(t *testing.T) {
	var nexts []time.Duration
	for _, jitter := range []time.Duration{0, 12 * time.Hour / 5} {
		hs := newHarness(t, 12*time.Hour)
		hs.h.Jitter = func(time.Duration) time.Duration { return jitter }
		eventID := "evt_long_" + fmt.Sprint(len(nexts))
		rc, ep := hs.oneDelivery(eventID, 500)
		hs.drainUntil(func() bool { return rc.count() == 1 }, 300*time.Millisecond)
		d, attempts := hs.deliveryOf(eventID, ep)
		if d.Status != domain.DeliveryRetrying || len(attempts) != 1 {
			t.Fatalf("delivery %+v, %d attempts", d, len(attempts))
		}
		nexts = append(nexts, d.NextAttemptAt.Sub(d.UpdatedAt).Round(time.Minute))
	}
	if nexts[0] != 11*time.Hour+57*time.Minute || nexts[1] != 11*time.Hour+21*time.Minute {
		t.Errorf("next attempts %v after the first, want 11h57m without jitter and 11h21m with the most", nexts)
	}
}

// TestATaskWhoseDeliveryExpiredIsCounted: a task redriven after its
// delivery expired from the log has nothing to send; it is acknowledged,
// logged as an error and counted in StrandedTasks, which raises the
// operator's alarm.
func TestATaskWhoseDeliveryExpiredIsCounted(t *testing.T) {
	hs := newHarness(t, time.Second)
	rc, ep := hs.oneDelivery("evt_expired", 200)
	hs.drainUntil(func() bool { return rc.count() == 1 }, 300*time.Millisecond)
	d, _ := hs.deliveryOf("evt_expired", ep)
	if err := hs.deleteItem(d, "#SUMMARY"); err != nil {
		t.Fatal(err)
	}
	hs.redeliveryTask(d)
	msg := hs.receiveTask()
	if failed := hs.h.Handle(context.Background(), []delivery.Message{msg}); len(failed) != 0 {
		t.Errorf("failed %v, want the task acknowledged", failed)
	}
	if rc.count() != 1 {
		t.Errorf("%d webhooks, want the first alone", rc.count())
	}
	if !strings.Contains(hs.metrics.String(), `"StrandedTasks"`) || !strings.Contains(hs.logs.String(), `"level":"ERROR","msg":"task for a delivery no longer in the log dropped"`) {
		t.Errorf("the expired delivery's task is not counted or logged:\n%s\n%s", hs.metrics.String(), hs.logs.String())
	}
}

// TestADeliveredDuplicateReplacesAFailedOne: SQS hands one message to two
// invocations; the receiver fails one request and accepts the other, whose
// record comes second. The delivery ends delivered, not retrying: the
// receiver has the webhook, and a retry would send it again.
func TestADeliveredDuplicateReplacesAFailedOne(t *testing.T) {
	hs := newHarness(t, time.Second)
	var mu sync.Mutex
	arrived := 0
	both := make(chan struct{})
	var got atomic.Int32
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		mu.Lock()
		arrived++
		n := arrived
		if n == 2 {
			close(both)
		}
		mu.Unlock()
		<-both
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		time.Sleep(300 * time.Millisecond) // recorded after the failure
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_1")
	hs.intake(hs.event("evt_dup_ok", "rating", "gold", "th_1"))
	ctx := context.Background()
	first := hs.receiveTask()
	if _, err := hs.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &hs.tasksURL, ReceiptHandle: &first.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	second := hs.receiveTask()
	hs.handleAtOnce(ctx, first, second)()
	d, attempts := hs.deliveryOf("evt_dup_ok", ep)
	if d.Status != domain.DeliveryDelivered || d.AttemptCount != 1 || d.LastStatusCode != 200 || len(attempts) != 2 {
		t.Errorf("delivery %+v with %d attempts logged; want delivered at attempt 1, both requests logged", d, len(attempts))
	}
	hs.drainUntil(func() bool { return true }, 1500*time.Millisecond)
	if got.Load() != 2 {
		t.Errorf("the receiver got %d requests, want the two of the duplicated attempt and no retry", got.Load())
	}
}

// TestARedeliveryIsSentWhateverTheLinks: a delivery stopped before its
// first attempt because its thermometer was unlinked is sent when the
// account holder redelivers it: a redelivery is asked for, and the API has
// answered it 202.
func TestARedeliveryIsSentWhateverTheLinks(t *testing.T) {
	hs := newHarness(t, time.Second)
	ctx := context.Background()
	rc := newReceiver(t, 200)
	ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, "th_gone")
	hs.intake(hs.event("evt_unlinked", "rating", "amber", "th_gone"))
	cur := ep
	cur.Thermometers = nil
	if err := hs.st.SaveEndpoint(ctx, cur, ep.Thermometers); err != nil {
		t.Fatal(err)
	}
	hs.drainUntil(func() bool { d, _ := hs.deliveryOf("evt_unlinked", ep); return d.Status == domain.DeliveryFailed }, 300*time.Millisecond)
	d, _ := hs.deliveryOf("evt_unlinked", ep)
	if d.LastError != "thermometer no longer linked to the endpoint" || rc.count() != 0 {
		t.Fatalf("delivery %+v, %d webhooks; want it stopped unsent", d, rc.count())
	}
	d, err := hs.st.StartRound(ctx, hs.account, d.ID, d.AttemptCount, time.Now(), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	hs.redeliveryTask(d)
	hs.drainUntil(func() bool { return rc.count() == 1 }, 300*time.Millisecond)
	if d, _ = hs.deliveryOf("evt_unlinked", ep); d.Status != domain.DeliveryDelivered || rc.count() != 1 {
		t.Errorf("redelivered: %+v, %d webhooks; want it sent", d, rc.count())
	}
}

// TestARetryAfterPutsTheRetryOff: a receiver that answers 429 or 503 with
// Retry-After gets a wait that long when it is longer than the schedule's
// delay, up to the schedule's next delay, with the jitter on top; a shorter
// wait, or one given with another status, leaves the schedule as it is, and
// so does any wait before the last retry, which has no next delay to
// borrow. A wait that reaches SQS's 12-hour limit is cut below it as a step
// of the schedule is.
func TestARetryAfterPutsTheRetryOff(t *testing.T) {
	hs := newHarness(t, time.Minute, 5*time.Minute, 30*time.Minute)
	for i, c := range []struct {
		status     int
		retryAfter string
		jitter     bool // the largest, a fifth of the wait
		schedule   []time.Duration
		want       time.Duration
	}{
		{503, "180", false, nil, 3 * time.Minute},
		{429, "240", false, nil, 4 * time.Minute},
		{503, "a date 150 s on", false, nil, 150 * time.Second},
		{503, "3600", false, nil, 5 * time.Minute},
		{429, "20", false, nil, time.Minute},
		{500, "180", false, nil, time.Minute},
		{503, "180", true, nil, 3*time.Minute + 36*time.Second},
		{503, "3600", true, nil, 6 * time.Minute},
		{429, "20", true, nil, time.Minute + 12*time.Second},
		{503, "43200", false, []time.Duration{time.Hour, 12 * time.Hour}, 11*time.Hour + 57*time.Minute},
		{503, "3600", false, []time.Duration{time.Minute}, time.Minute},
	} {
		hs.h.Jitter = func(d time.Duration) time.Duration {
			if c.jitter {
				return d / 5
			}
			return 0
		}
		if c.schedule != nil {
			hs.h.Schedule = c.schedule
		}
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v := c.retryAfter
			if strings.HasPrefix(v, "a date") {
				v = time.Now().Add(150 * time.Second).UTC().Format(http.TimeFormat)
			}
			w.Header().Set("Retry-After", v)
			w.WriteHeader(c.status)
		}))
		th, eventID := fmt.Sprint("th_ra_", i), fmt.Sprint("evt_ra_", i)
		ep, _ := hs.endpoint(rc.URL, []string{"*"}, false, th)
		hs.intake(hs.event(eventID, "rating", "red", th))
		hs.drainUntil(func() bool { d, _ := hs.deliveryOf(eventID, ep); return d.AttemptCount == 1 }, 300*time.Millisecond)
		rc.Close()
		d, attempts := hs.deliveryOf(eventID, ep)
		if d.Status != domain.DeliveryRetrying || len(attempts) != 1 {
			t.Fatalf("%d: delivery %+v, %d attempts", i, d, len(attempts))
		}
		// The next attempt is counted from the attempt's record, a moment
		// after the receiver's answer: an HTTP date's whole second may
		// fall either side.
		if next := d.NextAttemptAt.Sub(d.UpdatedAt); next < c.want-time.Second || next > c.want+time.Second {
			t.Errorf("%d: %d with Retry-After %q: next attempt in %v, want %v", i, c.status, c.retryAfter, next, c.want)
		}
	}
}

// TestAPayloadIsKeptLongerThanItsDelivery: fan-out writes a delivery's
// payload once, and every attempt keeps the delivery's summary a retention
// from its own time; the payload is kept PayloadRetention, so that it does
// not expire while its delivery is still shown or can be redelivered.
func TestAPayloadIsKeptLongerThanItsDelivery(t *testing.T) {
	hs := newHarness(t, time.Second)
	hs.h.PayloadRetention = 3 * time.Hour // Retention is an hour
	rc, ep := hs.oneDelivery("evt_payload_kept", 200)
	hs.drainUntil(func() bool { return rc.count() == 1 }, 300*time.Millisecond)
	d, _ := hs.deliveryOf("evt_payload_kept", ep)
	expiry := func(sk string) time.Duration {
		table, key := hs.logItem(d, sk)
		out, err := dynamodb.NewFromConfig(awstest.Config(t)).GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &table, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := out.Item["expires_at"].(*dbtypes.AttributeValueMemberN)
		if n == nil {
			t.Fatalf("%s has no expiry: %v", sk, out.Item)
		}
		var unix int64
		fmt.Sscan(n.Value, &unix)
		return time.Until(time.Unix(unix, 0)).Round(time.Minute)
	}
	if summary, payload := expiry("#SUMMARY"), expiry("#PAYLOAD"); summary != time.Hour || payload != 3*time.Hour {
		t.Errorf("the summary expires in %v and the payload in %v, want 1h and 3h", summary, payload)
	}
}
