// Package metrics records the delivery function's metrics and writes them as
// CloudWatch Embedded Metric Format: one JSON log line per invocation, which
// CloudWatch Logs turns into metrics without an API call. The template's
// dashboard and alarms read them from the CtWebhooks namespace.
package metrics

import (
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of the service's metrics.
const Namespace = "CtWebhooks"

// The metrics.
const (
	Deliveries       = "Deliveries"       // deliveries that reached their receiver
	DeliveryFailures = "DeliveryFailures" // deliveries that used up every attempt, or were stopped
	AttemptFailures  = "AttemptFailures"  // attempts that failed (each may be retried)
	AttemptLatency   = "AttemptLatency"   // ms from sending to the receiver's answer
	FanOut           = "FanOut"           // matching endpoints per event
	InvalidEvents    = "InvalidEvents"    // events set aside as invalid
	UnmatchedEvents  = "UnmatchedEvents"  // valid events that matched no endpoint
	// StrandedTasks counts delivery tasks that met an infrastructure failure
	// on their last receive: SQS moves them to the dead-letter queue with
	// their delivery unfinished, and only a redrive finishes it. It also
	// counts tasks whose delivery has expired from the log (redriven too
	// late), which nothing can finish.
	StrandedTasks = "StrandedTasks"
)

var units = map[string]string{
	Deliveries: "Count", DeliveryFailures: "Count", AttemptFailures: "Count", AttemptLatency: "Milliseconds",
	FanOut: "Count", InvalidEvents: "Count", UnmatchedEvents: "Count", StrandedTasks: "Count",
}

// Names lists every metric the service writes, sorted.
func Names() []string {
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Recorder gathers one invocation's metrics; safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	values map[string][]float64
}

// Add records one value of metric.
func (r *Recorder) Add(metric string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.values == nil {
		r.values = map[string][]float64{}
	}
	r.values[metric] = append(r.values[metric], v)
}

// Count adds 1 to a count metric.
func (r *Recorder) Count(metric string) { r.Add(metric, 1) }

// Flush writes the recorded metrics as one EMF line (nothing when none were
// recorded) and resets the recorder. Counts are summed; other metrics keep
// their values (EMF takes up to 100 per line, more are summarised).
func (r *Recorder) Flush(w io.Writer, stack string, now time.Time) error {
	r.mu.Lock()
	values := r.values
	r.values = nil
	r.mu.Unlock()
	if len(values) == 0 {
		return nil
	}
	line := map[string]any{"Stack": stack}
	var defs []map[string]string
	for name, vs := range values {
		defs = append(defs, map[string]string{"Name": name, "Unit": units[name]})
		if units[name] == "Count" && name != FanOut {
			sum := 0.0
			for _, v := range vs {
				sum += v
			}
			line[name] = sum
			continue
		}
		if len(vs) > 100 {
			vs = vs[:100]
		}
		line[name] = vs
	}
	line["_aws"] = map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace": Namespace, "Dimensions": [][]string{{"Stack"}}, "Metrics": defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
