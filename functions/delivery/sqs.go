package main

import (
	"context"
	"strconv"
	"strings"
	"time"

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
		count, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
		msgs = append(msgs, delivery.Message{
			ID: r.MessageId, Body: r.Body, ReceiptHandle: r.ReceiptHandle, ReceiveCount: count,
			SentAt: sentAt(r.Attributes["SentTimestamp"]),
			Queue:  r.EventSourceARN[strings.LastIndex(r.EventSourceARN, ":")+1:],
		})
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, id := range h.Handle(ctx, msgs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return resp
}

// sentAt reads SQS's SentTimestamp (milliseconds since the epoch); zero when
// it is missing or not a plausible time.
func sentAt(ms string) time.Time {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 || n > 1<<47 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}
