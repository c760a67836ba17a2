package main

import (
	"context"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/customerthermometer/webhooks/shared/delivery"
)

type batchHandler interface {
	Handle(ctx context.Context, msgs []delivery.Message) []string
}

// handleSQS converts the Lambda SQS event for the handler and reports the
// messages it could not finish as batch item failures (the event sources use
// ReportBatchItemFailures), so SQS brings back only those.
func handleSQS(ctx context.Context, h batchHandler, ev events.SQSEvent) events.SQSEventResponse {
	msgs := make([]delivery.Message, 0, len(ev.Records))
	for _, r := range ev.Records {
		msgs = append(msgs, delivery.NewMessage(r.MessageId, r.Body, r.ReceiptHandle,
			r.EventSourceARN[strings.LastIndex(r.EventSourceARN, ":")+1:], r.Attributes))
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, id := range h.Handle(ctx, msgs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return resp
}
