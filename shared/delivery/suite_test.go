package delivery_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/customerthermometer/webhooks/shared/logcheck"
)

// Every log line of the suite, and every secret, password and signature it
// handled: TestMain checks that no log line holds one.
var (
	suiteLogs logcheck.Buffer
	sensitive logcheck.Secrets
	// harnesses counts the tests that logged through the suite's buffer; the
	// check means nothing when none ran (a -run selection of none).
	harnesses atomic.Int32
)

func remember(values ...string) { sensitive.Remember(values...) }

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && harnesses.Load() > 0 {
		if err := sensitive.Check(suiteLogs.String()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
