package api

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The whole suite's log lines, and every secret, password, API key and
// signature the suite handled: TestMain checks that no log line holds one.
var (
	suiteLogs lockedBuffer
	sensitive sync.Map
	// envs counts the tests that logged through the suite's buffer; the
	// check means nothing when none ran (a -run or -fuzz selection).
	envs atomic.Int32
)

func remember(values ...string) {
	for _, v := range values {
		if len(v) >= 8 {
			sensitive.Store(v, true)
		}
	}
}

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
	logs := suiteLogs.String()
	leaks := 0
	sensitive.Range(func(k, _ any) bool {
		if strings.Contains(logs, k.(string)) {
			leaks++
			fmt.Fprintf(os.Stderr, "a log line holds a secret value (%.6s…)\n", k.(string))
		}
		return true
	})
	n := 0
	sensitive.Range(func(_, _ any) bool { n++; return true })
	if code == 0 && envs.Load() > 0 && (leaks > 0 || n == 0 || logs == "") {
		fmt.Fprintf(os.Stderr, "log check: %d leaks among %d secret values in %d bytes of logs\n", leaks, n, len(logs))
		code = 1
	}
	os.Exit(code)
}
