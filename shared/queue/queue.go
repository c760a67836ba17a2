// Package queue sends to and manages messages on SQS queues, in batches of
// ten (the most SQS takes per request), retrying entries SQS reports as
// failed.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/domain"
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

// maxRequestBytes is the most message data (bodies and attributes) one
// SendMessageBatch carries: SQS refuses a batch larger than the largest
// message it allows, 256 KiB on queues made before that limit was raised.
const maxRequestBytes = 256 << 10

// MessageSize is how much of a queue's maximum message size m takes: its
// body and, for each attribute sent, its name, data type and value.
func MessageSize(m Message) int {
	_, size := entry(m)
	return size
}

// SmallestMaxMessageSize is the largest message every queue takes: 256
// KiB, the maximum of queues made before SQS raised it.
const SmallestMaxMessageSize = maxRequestBytes

// SendBatch sends msgs to the queue at url, up to ten to a request and
// within maxRequestBytes (a message larger than that goes alone, for a queue
// that allows it). Attribute values are made fit for SQS: empty ones are
// left out (SQS refuses them) and characters SQS does not allow replaced.
func (q *Queue) SendBatch(ctx context.Context, url string, msgs []Message) error {
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		entries[i], sizes[i] = entry(m)
	}
	for len(entries) > 0 {
		n, size := 1, sizes[0]
		for n < min(len(entries), 10) && size+sizes[n] <= maxRequestBytes {
			n, size = n+1, size+sizes[n]
		}
		chunk := entries[:n]
		for i := range chunk {
			chunk[i].Id = aws.String(strconv.Itoa(i))
		}
		if err := q.send(ctx, url, chunk); err != nil {
			return err
		}
		entries, sizes = entries[n:], sizes[n:]
	}
	return nil
}

// entry is m as a batch entry (its Id still to set), and how much of a
// batch request's limit it takes.
func entry(m Message) (types.SendMessageBatchRequestEntry, int) {
	e := types.SendMessageBatchRequestEntry{MessageBody: aws.String(m.Body), DelaySeconds: int32(m.Delay / time.Second)}
	size := len(m.Body)
	for k, v := range m.Attributes {
		if v = Text(v); v == "" {
			continue
		}
		if e.MessageAttributes == nil {
			e.MessageAttributes = map[string]types.MessageAttributeValue{}
		}
		e.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		size += len(k) + len(v) + len("String")
	}
	return e, size
}

// retryWait is how long send waits before sending again what SQS failed.
const retryWait = 25 * time.Millisecond

// send sends one batch request's entries, again for those SQS reports as
// failed on its side, after 25, 50, 100 and 200 ms: an entry SQS failed on
// its side failed for a moment, and sending it straight back meets the same.
func (q *Queue) send(ctx context.Context, url string, entries []types.SendMessageBatchRequestEntry) error {
	for try := 0; len(entries) > 0; try++ {
		if try == 5 {
			return fmt.Errorf("send to %s: %d messages refused after 5 tries: %w", url, len(entries), domain.ErrUnavailable)
		}
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryWait << (try - 1)):
			}
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
	return nil
}

// Text is s with what SQS refuses in message text (invalid UTF-8, control
// characters other than tab and line ends, U+FFFE and U+FFFF, surrogates)
// replaced by U+FFFD.
func Text(s string) string {
	ok := func(r rune) bool {
		return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
	}
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !ok(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if !ok(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
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
