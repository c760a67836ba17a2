// Package queue sends to and manages messages on SQS queues, in batches of
// ten (the most SQS takes per request), retrying entries SQS reports as
// failed.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Queue is an SQS client.
type Queue struct{ client *sqs.Client }

// New returns a Queue.
func New(client *sqs.Client) *Queue { return &Queue{client: client} }

// Message is one message to send.
type Message struct {
	Body       string
	Delay      time.Duration     // at most 15 minutes
	Attributes map[string]string // string message attributes
}

// SendBatch sends msgs to the queue at url, ten to a request.
func (q *Queue) SendBatch(ctx context.Context, url string, msgs []Message) error {
	for start := 0; start < len(msgs); start += 10 {
		chunk := msgs[start:min(start+10, len(msgs))]
		entries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(m.Body),
				DelaySeconds: int32(m.Delay / time.Second),
			}
			if len(m.Attributes) > 0 {
				entries[i].MessageAttributes = map[string]types.MessageAttributeValue{}
				for k, v := range m.Attributes {
					entries[i].MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
				}
			}
		}
		for try := 0; len(entries) > 0; try++ {
			if try == 5 {
				return fmt.Errorf("send to %s: %d messages refused after 5 tries", url, len(entries))
			}
			out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
			if err != nil {
				return fmt.Errorf("send to %s: %w", url, err)
			}
			var again []types.SendMessageBatchRequestEntry
			for _, f := range out.Failed {
				if f.SenderFault {
					return fmt.Errorf("send to %s: %s", url, aws.ToString(f.Message))
				}
				for _, e := range entries {
					if aws.ToString(e.Id) == aws.ToString(f.Id) {
						again = append(again, e)
					}
				}
			}
			entries = again
		}
	}
	return nil
}

// Visibility is a new visibility timeout for a received message.
type Visibility struct {
	ReceiptHandle string
	Timeout       time.Duration // at most 12 hours
}

// ChangeVisibility hides received messages for their timeouts, ten to a
// request: how a failed delivery waits for its next attempt.
func (q *Queue) ChangeVisibility(ctx context.Context, url string, vs []Visibility) error {
	var errs []error
	for start := 0; start < len(vs); start += 10 {
		chunk := vs[start:min(start+10, len(vs))]
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, v := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(v.ReceiptHandle),
				VisibilityTimeout: int32(v.Timeout / time.Second),
			}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			errs = append(errs, fmt.Errorf("change visibility on %s: %w", url, err))
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("change visibility on %s: %s", url, aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}
