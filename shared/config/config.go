// Package config reads the service's settings from the environment, once, into
// a typed struct. Both functions use the same settings (template.yaml sets them
// in Globals), and a missing or malformed variable stops start-up with a message
// that names it, instead of a failure on the first request.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Config is everything the functions read from the environment.
type Config struct {
	// EndpointsTable holds endpoints, thermometer links, accounts and API key hashes.
	EndpointsTable string
	// DeliveriesTable is the delivery log.
	DeliveriesTable string
	// KMSKeyID encrypts shared secrets and Basic Auth passwords at rest.
	KMSKeyID string
	// EventsQueueURL is the response-events queue.
	EventsQueueURL string
	// EventsDLQURL is where invalid events are set aside.
	EventsDLQURL string
	// DeliveryTasksQueueURL holds one message per delivery.
	DeliveryTasksQueueURL string
	// StackName names the deployment in metrics.
	StackName string
	// SourceIPs are the addresses webhooks leave from, published by the API.
	SourceIPs []netip.Addr
	// RetrySchedule is the delay before each retry of a failed delivery.
	RetrySchedule []time.Duration
	// LogRetention is how long delivery-log items are kept: LOG_RETENTION_DAYS,
	// or longer when a round of retries can outlast that (see Load).
	LogRetention time.Duration
	// RetentionRaised tells that LOG_RETENTION_DAYS was shorter than a round
	// of retries and LogRetention was raised to fit one.
	RetentionRaised bool
	// RateLimitPerMinute is how many API requests one account may make per
	// minute.
	RateLimitPerMinute int
	// SendsPerMinute is how many webhooks one account may have the API send
	// per minute (test fires and redeliveries together).
	SendsPerMinute int
	// DeliveryMaxReceives is the delivery-tasks queue's maxReceiveCount: SQS
	// moves a message received more often to the dead-letter queue.
	DeliveryMaxReceives int
	// LocalMode allows loopback webhook targets on any port, so tests can run
	// receivers on the developer's machine. Never set in template.yaml.
	LocalMode bool
}

// WarnRaisedRetention logs, once at start-up, that the log keeps deliveries
// longer than LOG_RETENTION_DAYS asks, and why.
func (c Config) WarnRaisedRetention(logger *slog.Logger) {
	if c.RetentionRaised {
		logger.Warn("log retention raised to outlast a round of retries",
			slog.String("retention", c.LogRetention.String()), slog.String("round", c.RoundSpan().Round(time.Second).String()))
	}
}

// MaxAttempts is how many attempts a delivery gets in one round: the first
// and one per retry delay.
func (c Config) MaxAttempts() int { return len(c.RetrySchedule) + 1 }

// MaxJitter is the most random delay added to a retry delay d, so receivers
// that failed together are not retried in lockstep: a fifth of d.
func MaxJitter(d time.Duration) time.Duration { return d / 5 }

// RetryDelay is the delay before retry i (counted from 0), before jitter,
// when the receiver asked with Retry-After for a wait of asked (zero when
// it did not): the schedule's delay, or the wait asked for when longer, up
// to the schedule's next delay. The last retry's delay is its own. A
// receiver that keeps asking for long waits moves a delivery's retries
// later one step at a time, and the round keeps its number of attempts
// and ends within RoundSpan.
func RetryDelay(schedule []time.Duration, i int, asked time.Duration) time.Duration {
	return max(schedule[i], min(asked, schedule[min(i+1, len(schedule)-1)]))
}

// RoundSpan is the longest a round of attempts can last: every retry delay,
// as long as a receiver's Retry-After can make it, with its largest jitter.
func (c Config) RoundSpan() time.Duration {
	var span time.Duration
	for i := range c.RetrySchedule {
		d := RetryDelay(c.RetrySchedule, i, math.MaxInt64)
		span += d + MaxJitter(d)
	}
	return span
}

// PayloadRetention is how long a delivery's payload is kept from when it is
// written: the log's retention and a round of retries more. The payload is
// written once, at fan-out (and again at a redelivery's new round), while
// every attempt keeps the delivery's summary for LogRetention from its own
// time; kept only LogRetention, the payload would expire while the
// delivery is still shown, or still to be redelivered.
func (c Config) PayloadRetention() time.Duration {
	return c.LogRetention + c.RoundSpan() + retentionMargin
}

// retentionMargin is how much longer than a round of retries the log keeps
// a delivery at least: for messages that come back late, and a day to read
// the outcome.
const retentionMargin = 24 * time.Hour

// MaxRetryDelay is the longest single retry delay: SQS cannot hide a message
// for longer than 12 hours.
const MaxRetryDelay = 12 * time.Hour

// Load reads the configuration through lookup (os.LookupEnv in production).
// The error names every missing or malformed variable.
func Load(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var errs []error
	required := func(name string) string {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("missing required environment variable %s", name))
		}
		return v
	}
	c.EndpointsTable = required("ENDPOINTS_TABLE")
	c.DeliveriesTable = required("DELIVERIES_TABLE")
	c.KMSKeyID = required("KMS_KEY_ID")
	c.EventsQueueURL = required("EVENTS_QUEUE_URL")
	c.EventsDLQURL = required("EVENTS_DLQ_URL")
	c.DeliveryTasksQueueURL = required("DELIVERY_TASKS_QUEUE_URL")
	c.StackName = "ct-webhooks"
	if v, ok := lookup("STACK_NAME"); ok && strings.TrimSpace(v) != "" {
		c.StackName = strings.TrimSpace(v)
	}

	if v := required("SOURCE_IPS"); v != "" {
		ips, err := parseIPs(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SOURCE_IPS: %w", err))
		}
		c.SourceIPs = ips
	}

	c.RetrySchedule = DefaultRetrySchedule()
	if v, ok := lookup("RETRY_SCHEDULE"); ok && strings.TrimSpace(v) != "" {
		s, err := ParseRetrySchedule(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("RETRY_SCHEDULE: %w", err))
		}
		c.RetrySchedule = s
	}

	// whole reads a whole number in lo..hi, or def when the variable is unset.
	whole := func(name string, def, lo, hi int, unit string) int {
		v, ok := lookup(name)
		if !ok || strings.TrimSpace(v) == "" {
			return def
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s: %q is not a whole number%s between %d and %d", name, v, unit, lo, hi))
		}
		return n
	}
	c.LogRetention = time.Duration(whole("LOG_RETENTION_DAYS", 30, 1, 3650, " of days")) * 24 * time.Hour
	// A delivery's payload is written once, when the event fans out: a
	// retention shorter than its retries would expire it before its last
	// attempt, which could then send nothing.
	if need := c.RoundSpan() + retentionMargin; c.LogRetention < need {
		c.LogRetention, c.RetentionRaised = need.Truncate(time.Hour)+time.Hour, true
	}
	c.RateLimitPerMinute = whole("RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000, "")
	c.SendsPerMinute = whole("SENDS_PER_MINUTE", 60, 1, 1_000_000, "")
	c.DeliveryMaxReceives = whole("DELIVERY_MAX_RECEIVE_COUNT", 12, 2, 1000, "")

	if v, ok := lookup("LOCAL_MODE"); ok && strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("LOCAL_MODE: %q is not true or false", v))
		}
		c.LocalMode = b
	}

	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// DefaultRetrySchedule is 7 retries after the first attempt (8 attempts) over
// about 27.6 hours before jitter, as template.yaml's default.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 8 * time.Hour, 12 * time.Hour}
}

// ParseRetrySchedule reads a comma-separated list of Go durations ("1m,5m,2h").
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 50 {
		return nil, fmt.Errorf("%d delays; at most 50", len(parts))
	}
	out := make([]time.Duration, 0, len(parts))
	for _, p := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration like 30s, 5m or 2h", strings.TrimSpace(p))
		}
		if d < time.Second || d > MaxRetryDelay {
			return nil, fmt.Errorf("delay %s is outside 1s..12h", d)
		}
		out = append(out, d)
	}
	return out, nil
}

func parseIPs(s string) ([]netip.Addr, error) {
	var ips []netip.Addr
	for _, p := range strings.Split(s, ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", strings.TrimSpace(p))
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// MemoryLimit is the soft limit for the Go runtime's heap: nine tenths of
// the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, in MB), so that
// garbage is collected before Lambda stops the function for memory,
// rather than when the heap has doubled. It is 0, no limit set, when
// GOMEMLIMIT sets one already or the size is not given.
func MemoryLimit(lookup func(string) (string, bool)) int64 {
	if _, ok := lookup("GOMEMLIMIT"); ok {
		return 0
	}
	v, _ := lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
	mb, err := strconv.ParseInt(v, 10, 64)
	if err != nil || mb < 1 || mb > 1<<20 {
		return 0
	}
	return mb << 20 / 10 * 9
}
