package domain

import "time"

// Delivery statuses (API.md section 4).
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryRetrying  = "retrying"
	DeliveryFailed    = "failed"
)

// Delivery is one (event, endpoint) pair: delivered and retried on its own.
type Delivery struct {
	ID            string
	AccountID     string
	EndpointID    string
	EndpointURL   string
	EventID       string
	Event         string // rating, comment or driver
	Trigger       string
	ThermometerID string
	Status        string
	AttemptCount  int
	// RoundStart is the number of the first attempt of the current round of
	// retries: 1, or the attempt after the last when redelivered.
	RoundStart     int
	LastStatusCode int
	LastError      string
	NextAttemptAt  time.Time // zero when no attempt is due
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Carrier is the id of the task message that made the last recorded
	// attempt: the one that carries the delivery on. Empty when unknown.
	Carrier string
	// LastURL is the URL the last attempt was sent to: EndpointURL, or the
	// endpoint's new URL when it changed after the delivery was made.
	LastURL string
	// PayloadSHA256 is the hex SHA-256 of the webhook body fan-out made for
	// the delivery; a body a task message carries is sent only if it
	// matches. Empty for deliveries made before it was kept.
	PayloadSHA256 string
}

// Final reports whether nothing more will be attempted (until a redelivery).
func (d Delivery) Final() bool { return d.Status == DeliveryDelivered || d.Status == DeliveryFailed }

// Attempt is one try to deliver.
type Attempt struct {
	Number       int
	At           time.Time
	StatusCode   int // 0: no response
	LatencyMS    int64
	Error        string
	ResponseBody string // at most 1 KiB
}
