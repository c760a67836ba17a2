package delivery

import (
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/domain"
)

func TestSpare(t *testing.T) {
	recorded := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	d := domain.Delivery{Carrier: "m-carrier", UpdatedAt: recorded}
	for _, c := range []struct {
		name  string
		m     Message
		d     domain.Delivery
		spare bool
	}{
		{"another message sent well before the record", Message{ID: "m-2", SentAt: recorded.Add(-time.Minute)}, d, true},
		{"the carrier itself", Message{ID: "m-carrier", SentAt: recorded.Add(-time.Minute)}, d, false},
		{"sent after the record (a hand-over's fresh message)", Message{ID: "m-2", SentAt: recorded.Add(time.Millisecond)}, d, false},
		{"sent within the clocks' margin before the record", Message{ID: "m-2", SentAt: recorded.Add(-spareMargin / 2)}, d, false},
		{"sent time unknown", Message{ID: "m-2"}, d, false},
		{"carrier unknown (recorded before carriers were)", Message{ID: "m-2", SentAt: recorded.Add(-time.Minute)}, domain.Delivery{UpdatedAt: recorded}, false},
	} {
		if got := spare(c.m, c.d); got != c.spare {
			t.Errorf("%s: spare = %v, want %v", c.name, got, c.spare)
		}
	}
}
