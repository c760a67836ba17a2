package delivery_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/queue"
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
	hs := newHarness(t, time.Second)
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
