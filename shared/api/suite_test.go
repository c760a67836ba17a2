package api

import (
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/customerthermometer/webhooks/shared/logcheck"
)

// The whole suite's log lines, and every secret, password, API key and
// signature the suite handled: TestMain checks that no log line holds one.
var (
	suiteLogs logcheck.Buffer
	sensitive logcheck.Secrets
	// envs counts the tests that logged through the suite's buffer; the
	// check means nothing when none ran (a -run or -fuzz selection).
	envs atomic.Int32
)

func remember(values ...string) { sensitive.Remember(values...) }

// rememberJSON remembers every secret or password field in a JSON body.
func rememberJSON(body []byte) {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && (k == "secret" || k == "secret_standard" || k == "password") {
					remember(s)
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(v)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && envs.Load() > 0 {
		if err := sensitive.Check(suiteLogs.String()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
