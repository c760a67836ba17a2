package delivery_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Every log line of the suite, and every secret, password and signature it
// handled: TestMain checks that no log line holds one.
var (
	suiteLogs syncBuf
	sensitive sync.Map
	// harnesses counts the tests that logged through the suite's buffer; the
	// check means nothing when none ran (a -run or -fuzz selection).
	harnesses atomic.Int32
)

func remember(values ...string) {
	for _, v := range values {
		if len(v) >= 8 {
			sensitive.Store(v, true)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	logs := suiteLogs.String()
	leaks, n := 0, 0
	sensitive.Range(func(k, _ any) bool {
		n++
		if strings.Contains(logs, k.(string)) {
			leaks++
			fmt.Fprintf(os.Stderr, "a log line holds a secret value (%.6s…)\n", k.(string))
		}
		return true
	})
	if code == 0 && harnesses.Load() > 0 && (leaks > 0 || n == 0 || logs == "") {
		fmt.Fprintf(os.Stderr, "log check: %d leaks among %d secret values in %d bytes of logs\n", leaks, n, len(logs))
		code = 1
	}
	os.Exit(code)
}
