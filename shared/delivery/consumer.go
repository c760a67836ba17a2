package delivery

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// Message is one queue message as the consumer sees it.
type Message struct {
	ID           string
	Body         string
	ReceiveCount int
	SentAt       time.Time
}

// Consumer handles batches of messages.
type Consumer struct {
	Logger *slog.Logger
}

// Handle processes a batch and returns the ids of the messages that must come
// back later (batch item failures). It records each message it receives; the
// body is not logged, since responses carry respondents' personal data.
func (c *Consumer) Handle(ctx context.Context, msgs []Message) (failed []string) {
	for _, m := range msgs {
		var head struct {
			EventID   string `json:"event_id"`
			AccountID string `json:"account_id"`
			Type      string `json:"type"`
		}
		// Only for the log line; full validation belongs to event intake.
		_ = json.Unmarshal([]byte(m.Body), &head)
		c.Logger.LogAttrs(ctx, slog.LevelInfo, "message received",
			slog.String("message_id", m.ID),
			slog.Int("receive_count", m.ReceiveCount),
			slog.Int("bytes", len(m.Body)),
			slog.String("event_id", head.EventID),
			slog.String("account_id", head.AccountID),
			slog.String("type", head.Type),
		)
	}
	return nil
}
