package config

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func complete() map[string]string {
	return map[string]string{
		"ENDPOINTS_TABLE":            "ep",
		"DELIVERIES_TABLE":           "dl",
		"KMS_KEY_ID":                 "key",
		"EVENTS_QUEUE_URL":           "http://q",
		"EVENTS_DLQ_URL":             "http://dlq",
		"DELIVERY_TASKS_QUEUE_URL":   "http://tasks",
		"STACK_NAME":                 "stack-1",
		"SOURCE_IPS":                 "203.0.113.7",
		"RETRY_SCHEDULE":             "1s,2s,5s",
		"LOG_RETENTION_DAYS":         "7",
		"LOCAL_MODE":                 "true",
		"RATE_LIMIT_PER_MINUTE":      "50",
		"SENDS_PER_MINUTE":           "7",
		"DELIVERY_MAX_RECEIVE_COUNT": "9",
	}
}

func TestLoadComplete(t *testing.T) {
	c, err := Load(env(complete()))
	if err != nil {
		t.Fatal(err)
	}
	if c.EndpointsTable != "ep" || c.DeliveriesTable != "dl" || c.KMSKeyID != "key" || c.EventsQueueURL != "http://q" || c.EventsDLQURL != "http://dlq" {
		t.Errorf("names not read: %+v", c)
	}
	if c.DeliveryTasksQueueURL != "http://tasks" || c.StackName != "stack-1" || c.MaxAttempts() != 4 {
		t.Errorf("tasks queue %q stack %q attempts %d", c.DeliveryTasksQueueURL, c.StackName, c.MaxAttempts())
	}
	if len(c.SourceIPs) != 1 || c.SourceIPs[0].String() != "203.0.113.7" {
		t.Errorf("SourceIPs = %v", c.SourceIPs)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}; len(c.RetrySchedule) != 3 || c.RetrySchedule[2] != want[2] {
		t.Errorf("RetrySchedule = %v", c.RetrySchedule)
	}
	if c.DeliveryMaxReceives != 9 {
		t.Errorf("DeliveryMaxReceives = %d", c.DeliveryMaxReceives)
	}
	if c.LogRetention != 7*24*time.Hour || !c.LocalMode || c.RateLimitPerMinute != 50 || c.SendsPerMinute != 7 {
		t.Errorf("LogRetention %v LocalMode %v", c.LogRetention, c.LocalMode)
	}
}

func TestLoadDefaults(t *testing.T) {
	m := complete()
	delete(m, "RETRY_SCHEDULE")
	delete(m, "LOG_RETENTION_DAYS")
	delete(m, "LOCAL_MODE")
	delete(m, "RATE_LIMIT_PER_MINUTE")
	delete(m, "SENDS_PER_MINUTE")
	delete(m, "DELIVERY_MAX_RECEIVE_COUNT")
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalMode {
		t.Error("local mode must be off unless set")
	}
	var total time.Duration
	for _, d := range c.RetrySchedule {
		total += d
	}
	if len(c.RetrySchedule)+1 != 8 || total < 24*time.Hour {
		t.Errorf("default schedule %v: %d attempts over %v, want 8 over at least 24h", c.RetrySchedule, len(c.RetrySchedule)+1, total)
	}
	if c.DeliveryMaxReceives != 12 {
		t.Errorf("DeliveryMaxReceives = %d, want the template's default 12", c.DeliveryMaxReceives)
	}
	if c.LogRetention != 30*24*time.Hour || c.RateLimitPerMinute != 600 || c.SendsPerMinute != 60 {
		t.Errorf("LogRetention = %v", c.LogRetention)
	}
}

func TestLoadNamesEachProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(map[string]string)
		want   []string
	}{
		{"missing table", func(m map[string]string) { delete(m, "ENDPOINTS_TABLE") }, []string{"ENDPOINTS_TABLE"}},
		{"blank key", func(m map[string]string) { m["KMS_KEY_ID"] = "  " }, []string{"KMS_KEY_ID"}},
		{"two missing", func(m map[string]string) { delete(m, "EVENTS_QUEUE_URL"); delete(m, "SOURCE_IPS") }, []string{"EVENTS_QUEUE_URL", "SOURCE_IPS"}},
		{"bad ip", func(m map[string]string) { m["SOURCE_IPS"] = "not-an-ip" }, []string{"SOURCE_IPS", "not-an-ip"}},
		{"bad schedule", func(m map[string]string) { m["RETRY_SCHEDULE"] = "1m,soon" }, []string{"RETRY_SCHEDULE", "soon"}},
		{"delay too long", func(m map[string]string) { m["RETRY_SCHEDULE"] = "13h" }, []string{"RETRY_SCHEDULE", "12h"}},
		{"bad retention", func(m map[string]string) { m["LOG_RETENTION_DAYS"] = "0" }, []string{"LOG_RETENTION_DAYS"}},
		{"bad rate limit", func(m map[string]string) { m["RATE_LIMIT_PER_MINUTE"] = "-1" }, []string{"RATE_LIMIT_PER_MINUTE"}},
		{"bad sends limit", func(m map[string]string) { m["SENDS_PER_MINUTE"] = "0" }, []string{"SENDS_PER_MINUTE"}},
		{"receive count too small", func(m map[string]string) { m["DELIVERY_MAX_RECEIVE_COUNT"] = "1" }, []string{"DELIVERY_MAX_RECEIVE_COUNT"}},
		{"receive count not a number", func(m map[string]string) { m["DELIVERY_MAX_RECEIVE_COUNT"] = "twelve" }, []string{"DELIVERY_MAX_RECEIVE_COUNT", "twelve"}},
		{"bad local mode", func(m map[string]string) { m["LOCAL_MODE"] = "yes please" }, []string{"LOCAL_MODE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := complete()
			tc.change(m)
			_, err := Load(env(m))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestRetentionOutlastsARound: a delivery's payload is written once, when
// its event fans out, so the log keeps it at least a day longer than a round
// of retries can last, jitter included, whatever LOG_RETENTION_DAYS says,
// and says so at start-up.
func TestRetentionOutlastsARound(t *testing.T) {
	for _, c := range []struct {
		schedule, days string
		raised         bool
	}{
		{"", "1", true},  // the default: 27.6 h of delays, up to 47.5 h with Retry-After and jitter
		{"", "2", true},  // 48 h < 71.5 h
		{"", "3", false}, // 72 h
		{"12h,12h,12h,12h,12h,12h,12h,12h,12h,12h", "5", true},
		{"1s,2s,5s", "1", true}, // a day and 14.4 s
		{"1s,2s,5s", "2", false},
	} {
		m := complete()
		m["RETRY_SCHEDULE"], m["LOG_RETENTION_DAYS"] = c.schedule, c.days
		cfg, err := Load(env(m))
		if err != nil {
			t.Fatal(err)
		}
		days, _ := strconv.Atoi(c.days)
		asked := time.Duration(days) * 24 * time.Hour
		var logs strings.Builder
		cfg.WarnRaisedRetention(slog.New(slog.NewTextHandler(&logs, nil)))
		switch {
		case cfg.RetentionRaised != c.raised:
			t.Errorf("%q, %s days: raised %v, want %v", c.schedule, c.days, cfg.RetentionRaised, c.raised)
		case cfg.LogRetention < cfg.RoundSpan()+24*time.Hour:
			t.Errorf("%q, %s days: retention %v does not outlast a round of %v by a day", c.schedule, c.days, cfg.LogRetention, cfg.RoundSpan())
		case !c.raised && cfg.LogRetention != asked:
			t.Errorf("%q, %s days: retention %v, want %v", c.schedule, c.days, cfg.LogRetention, asked)
		case c.raised != strings.Contains(logs.String(), "log retention raised"):
			t.Errorf("%q, %s days: start-up log %q", c.schedule, c.days, logs.String())
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want int64
	}{
		{map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}, 128 << 20 / 10 * 9},
		{map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}, 1024 << 20 / 10 * 9},
		{map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "GOMEMLIMIT": "64MiB"}, 0},
		{map[string]string{}, 0},
		{map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}, 0},
		{map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "-5"}, 0},
	} {
		if got := MemoryLimit(env(c.env)); got != c.want {
			t.Errorf("MemoryLimit(%v) = %d, want %d", c.env, got, c.want)
		}
	}
}

// TestARoundAllowsForRetryAfter: a round lasts as long as its delays, each
// as long as receivers' Retry-After can make it (the schedule's next delay;
// nothing lengthens the last), with their largest jitter.
func TestARoundAllowsForRetryAfter(t *testing.T) {
	for _, c := range []struct {
		schedule string
		want     time.Duration
	}{
		{"1m,5m,30m,2h,5h,8h,12h", (5*time.Minute + 30*time.Minute + 2*time.Hour + 5*time.Hour + 8*time.Hour + 12*time.Hour + 12*time.Hour) * 6 / 5},
		{"1s,2s,5s", (2*time.Second + 5*time.Second + 5*time.Second) * 6 / 5},
		{"10s,11s", 2 * 11 * time.Second * 6 / 5},
		{"30s,10s", (30*time.Second + 10*time.Second) * 6 / 5},
		{"1m", time.Minute * 6 / 5},
	} {
		s, err := ParseRetrySchedule(c.schedule)
		if err != nil {
			t.Fatal(err)
		}
		if got := (Config{RetrySchedule: s}).RoundSpan(); got != c.want {
			t.Errorf("%s: a round lasts up to %v, want %v", c.schedule, got, c.want)
		}
	}
}

// TestAPayloadOutlastsItsDelivery: a payload is written once, and every
// attempt keeps its delivery a retention from its own time, so the payload
// is kept a round of retries, and a day, longer.
func TestAPayloadOutlastsItsDelivery(t *testing.T) {
	cfg, err := Load(env(complete()))
	if err != nil {
		t.Fatal(err)
	}
	// 7 days, a round of 1s,2s,5s (14.4 s with Retry-After and jitter), a day.
	if got, want := cfg.PayloadRetention(), 8*24*time.Hour+14400*time.Millisecond; got != want {
		t.Errorf("payload kept %v, want %v", got, want)
	}
}

// TestARetryAfterWaitsUpToTheNextDelay: the delay before a retry is the
// schedule's, or the wait a receiver asked for when longer, up to the
// schedule's next delay; the last retry keeps its own, and a schedule that
// shortens never lets an ask shorten a delay.
func TestARetryAfterWaitsUpToTheNextDelay(t *testing.T) {
	s := DefaultRetrySchedule() // 1m,5m,30m,2h,5h,8h,12h
	for _, c := range []struct {
		schedule []time.Duration
		i        int
		asked    time.Duration
		want     time.Duration
	}{
		{s, 0, 0, time.Minute},
		{s, 0, 30 * time.Second, time.Minute},
		{s, 0, 3 * time.Minute, 3 * time.Minute},
		{s, 0, time.Hour, 5 * time.Minute},
		{s, 1, time.Hour, 30 * time.Minute},
		{s, 2, time.Hour, time.Hour},
		{s, 5, MaxRetryDelay * 2, 12 * time.Hour},
		{s, 6, 24 * time.Hour, 12 * time.Hour},
		{[]time.Duration{30 * time.Second, 10 * time.Second}, 0, time.Minute, 30 * time.Second},
		{[]time.Duration{time.Minute}, 0, time.Hour, time.Minute},
	} {
		if got := RetryDelay(c.schedule, c.i, c.asked); got != c.want {
			t.Errorf("%v, retry %d, %v asked: %v, want %v", c.schedule, c.i, c.asked, got, c.want)
		}
	}
}
