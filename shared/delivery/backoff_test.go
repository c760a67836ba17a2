package delivery

import (
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/config"
)

// TestInfraDelayDoubles: after an infrastructure error a message comes back
// in 30 s at its first receive, twice as late at each later one, never later
// than 15 minutes; with the template's maxReceiveCount of 12, its receives
// last through about 105 minutes of trouble, not 5.5. A schedule of shorter
// delays caps the wait at its longest, but not below 30 s.
func TestInfraDelayDoubles(t *testing.T) {
	h := &Handler{Schedule: config.DefaultRetrySchedule()}
	for n, want := range map[int]time.Duration{
		0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 5: 8 * time.Minute,
		6: 15 * time.Minute, 11: 15 * time.Minute, 1000: 15 * time.Minute,
	} {
		if got := h.infraDelay(Message{ReceiveCount: n}); got != want {
			t.Errorf("receive %d: %v, want %v", n, got, want)
		}
	}
	var total time.Duration
	for n := 1; n < 12; n++ {
		total += h.infraDelay(Message{ReceiveCount: n})
	}
	if total != 105*time.Minute+30*time.Second {
		t.Errorf("11 receives wait %v in all", total)
	}
	for _, c := range []struct {
		schedule []time.Duration
		n        int
		want     time.Duration
	}{
		{[]time.Duration{time.Second, time.Second}, 5, 30 * time.Second},
		{[]time.Duration{time.Second, 35 * time.Second, 20 * time.Second}, 5, 35 * time.Second},
		{[]time.Duration{time.Second, 35 * time.Second}, 1, 30 * time.Second},
		{[]time.Duration{3 * time.Minute}, 4, 3 * time.Minute},
		{nil, 10, 15 * time.Minute},
	} {
		if got := (&Handler{Schedule: c.schedule}).infraDelay(Message{ReceiveCount: c.n}); got != c.want {
			t.Errorf("schedule %v, receive %d: %v, want %v", c.schedule, c.n, got, c.want)
		}
	}
}
