package delivery

import (
	"context"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/queue"
)

// Enqueuer queues a task for a delivery's current round (the API's
// redeliver). The task reads the payload from the log.
type Enqueuer struct {
	Queue    messageQueue
	QueueURL string
}

// Enqueue sends the task for d.
func (q *Enqueuer) Enqueue(ctx context.Context, d domain.Delivery) error {
	t := taskMessage{Kind: "delivery", AccountID: d.AccountID, DeliveryID: d.ID, RoundStart: d.RoundStart, Redelivery: true}
	return q.Queue.SendBatch(ctx, q.QueueURL, []queue.Message{{Body: t.body()}})
}
