package delivery

import (
	"testing"
	"time"
)

// TestInfraDelayDoubles: after an infrastructure error a message comes back
// in 30 s at its first receive, twice as late at each later one, never later
// than 15 minutes; with the template's maxReceiveCount of 12, its receives
// last through about 105 minutes of trouble, not 5.5.
func TestInfraDelayDoubles(t *testing.T) {
	var total time.Duration
	for n, want := range map[int]time.Duration{
		0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 5: 8 * time.Minute,
		6: 15 * time.Minute, 11: 15 * time.Minute, 1000: 15 * time.Minute,
	} {
		if got := infraDelay(Message{ReceiveCount: n}); got != want {
			t.Errorf("receive %d: %v, want %v", n, got, want)
		}
	}
	for n := 1; n < 12; n++ {
		total += infraDelay(Message{ReceiveCount: n})
	}
	if total != 105*time.Minute+30*time.Second {
		t.Errorf("11 receives wait %v in all", total)
	}
}
