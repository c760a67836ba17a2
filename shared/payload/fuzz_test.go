package payload

import (
	"encoding/json"
	"testing"
)

// FuzzEncodeRoundTrip: whatever text a body carries, Encode (with the
// separators it writes back as they were) makes JSON that reads back as
// that text; the seeds run with the tests, `go test -fuzz` goes further.
func FuzzEncodeRoundTrip(f *testing.F) {
	for _, s := range []string{"\u2028", `\u2028`, "\\\u2028", `\\u2029`, "a\u2029b\\", "\ufffe\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := Encode(map[string]string{"s": s})
		var back map[string]string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %q: %v", s, b, err)
		}
		want := string([]rune(s)) // invalid UTF-8 becomes U+FFFD, as encoding/json does
		if back["s"] != want {
			t.Fatalf("%q reads back as %q", s, back["s"])
		}
	})
}
