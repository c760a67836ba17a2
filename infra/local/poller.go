package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// poller plays Lambda's SQS event-source mapping: it receives batches, invokes
// the function with an SQS event and deletes what the function finished. With
// ReportBatchItemFailures the messages the function names stay on the queue
// and come back after their visibility timeout; a function error, or a
// response that cannot be read, fails the whole batch, as in Lambda.
type poller struct {
	sqs            *sqs.Client
	queueURL       string
	queueArn       string
	region         string
	batchSize      int
	window         time.Duration
	reportFailures bool
	concurrency    int
	fn             invoker
	log            *lineLog
	// wait is the long-poll time of each receive.
	wait int32
}

// run polls until stop is done. A receive under way is never cancelled:
// SQS (and the emulator) would hand its messages to a request nobody reads,
// hiding them for the whole visibility timeout. Instead the receive finishes
// and, when stopping, what it got is made visible again at once.
func (p *poller) run(stop context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < p.concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stop.Err() == nil {
				if err := p.once(stop); err != nil && stop.Err() == nil {
					p.log.printf("poller: %v", err)
					select {
					case <-stop.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
	}
	wg.Wait()
}

// once receives one batch and hands it to the function, or gives it back to
// the queue when stop is done.
func (p *poller) once(stop context.Context) error {
	ctx := context.WithoutCancel(stop)
	msgs, err := p.receive(ctx)
	if err != nil || len(msgs) == 0 {
		return err
	}
	if stop.Err() != nil {
		return p.release(ctx, msgs)
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		ev.Records[i] = p.record(m)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	// The batch is finished even when the runner is stopping, so that a
	// message is never half handled by the local stack's own doing.
	out, err := p.fn.invoke(ctx, payload)
	if err != nil {
		p.log.printf("poller: batch of %d failed, all messages return after their visibility timeout: %v", len(msgs), err)
		return nil
	}
	done := p.finished(msgs, out)
	return p.delete(ctx, done)
}

// receive gathers up to batchSize messages, waiting at most the batching
// window once the first message has arrived.
func (p *poller) receive(ctx context.Context) ([]types.Message, error) {
	var msgs []types.Message
	deadline := time.Time{}
	for len(msgs) < p.batchSize {
		wait := p.wait
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			wait = int32(min(left.Round(time.Second)/time.Second, 20))
		}
		out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &p.queueURL,
			MaxNumberOfMessages:         int32(min(p.batchSize-len(msgs), 10)),
			WaitTimeSeconds:             wait,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			if len(msgs) > 0 && ctx.Err() == nil {
				break
			}
			return msgs, err
		}
		msgs = append(msgs, out.Messages...)
		if len(msgs) == 0 {
			return nil, nil
		}
		if p.window <= 0 {
			break
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(p.window)
		}
		if len(out.Messages) == 0 {
			break
		}
	}
	return msgs, nil
}

func (p *poller) record(m types.Message) events.SQSMessage {
	attrs := map[string]string{}
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	mattrs := map[string]events.SQSMessageAttribute{}
	for k, v := range m.MessageAttributes {
		mattrs[k] = events.SQSMessageAttribute{
			StringValue: v.StringValue, BinaryValue: v.BinaryValue,
			StringListValues: v.StringListValues, BinaryListValues: v.BinaryListValues,
			DataType: aws.ToString(v.DataType),
		}
	}
	return events.SQSMessage{
		MessageId:              aws.ToString(m.MessageId),
		ReceiptHandle:          aws.ToString(m.ReceiptHandle),
		Body:                   aws.ToString(m.Body),
		Md5OfBody:              aws.ToString(m.MD5OfBody),
		Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
		Attributes:             attrs,
		MessageAttributes:      mattrs,
		EventSourceARN:         p.queueArn,
		EventSource:            "aws:sqs",
		AWSRegion:              p.region,
	}
}

// finished returns the messages the function's response says are done.
func (p *poller) finished(msgs []types.Message, out []byte) []types.Message {
	if !p.reportFailures {
		return msgs
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		p.log.printf("poller: the function's response is not an SQSEventResponse, the whole batch fails: %s", truncate(out))
		return nil
	}
	failed := make([]string, 0, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		known := slices.ContainsFunc(msgs, func(m types.Message) bool { return aws.ToString(m.MessageId) == f.ItemIdentifier })
		if strings.TrimSpace(f.ItemIdentifier) == "" || !known {
			p.log.printf("poller: batch item failure %q names no message of the batch, the whole batch fails", f.ItemIdentifier)
			return nil
		}
		failed = append(failed, f.ItemIdentifier)
	}
	var done []types.Message
	for _, m := range msgs {
		if !slices.Contains(failed, aws.ToString(m.MessageId)) {
			done = append(done, m)
		}
	}
	return done
}

// release makes received messages visible again at once.
func (p *poller) release(ctx context.Context, msgs []types.Message) error {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}
	}
	for chunk := range slices.Chunk(entries, 10) {
		if _, err := p.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &p.queueURL, Entries: chunk}); err != nil {
			return err
		}
	}
	return nil
}

func (p *poller) delete(ctx context.Context, msgs []types.Message) error {
	for chunk := range slices.Chunk(msgs, 10) {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		out, err := p.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &p.queueURL, Entries: entries})
		if err != nil {
			return err
		}
		if len(out.Failed) > 0 {
			return errors.New("delete finished messages: " + aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}
