package main

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/customerthermometer/webhooks/shared/delivery"
)

type batchHandler interface {
	Handle(ctx context.Context, msgs []delivery.Message) []string
}

// handleSQS converts the Lambda SQS event for the consumer and reports the
// messages it could not finish as batch item failures (the event source uses
// ReportBatchItemFailures), so SQS redelivers only those.
func handleSQS(ctx context.Context, h batchHandler, ev events.SQSEvent) events.SQSEventResponse {
	msgs := make([]delivery.Message, 0, len(ev.Records))
	for _, r := range ev.Records {
		count, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
		var sent time.Time
		if ms, err := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64); err == nil {
			sent = time.UnixMilli(ms)
		}
		msgs = append(msgs, delivery.Message{ID: r.MessageId, Body: r.Body, ReceiveCount: count, SentAt: sent})
	}
	var resp events.SQSEventResponse
	for _, id := range h.Handle(ctx, msgs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return resp
}
