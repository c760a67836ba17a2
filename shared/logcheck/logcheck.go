// Package logcheck lets a test suite prove that no log line it wrote holds a
// secret: the suite sends its logs to a Buffer, remembers every secret,
// password, API key and signature it handles, and checks them at the end.
package logcheck

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent writers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Secrets remembers sensitive values.
type Secrets struct {
	mu     sync.Mutex
	values map[string]bool
}

// Remember records values; shorter than 8 characters are ignored (they
// would match ordinary text). Each is looked for as written, as a JSON log
// line escapes it (a password with a quote, a backslash or <, & or > reads
// differently there), and in base64 (as in a Basic Authorization header).
func (s *Secrets) Remember(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]bool{}
	}
	for _, v := range values {
		if len(v) < 8 {
			continue
		}
		s.values[v] = true
		for _, html := range []bool{true, false} {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(html)
			_ = enc.Encode(v) // a string always encodes
			s.values[strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b.String()), `"`), `"`)] = true
		}
		s.values[base64.StdEncoding.EncodeToString([]byte(v))] = true
	}
}

// Check fails when logs holds a remembered value, or when there was nothing
// to check (no value remembered, or no log written): a check over nothing
// proves nothing.
func (s *Secrets) Check(logs string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.values) == 0 || logs == "" {
		return fmt.Errorf("log check: %d secret values, %d bytes of logs: nothing to check", len(s.values), len(logs))
	}
	leaks := 0
	for v := range s.values {
		if strings.Contains(logs, v) {
			leaks++
		}
	}
	if leaks > 0 {
		return fmt.Errorf("log check: %d of %d secret values appear in the logs", leaks, len(s.values))
	}
	return nil
}
