package logcheck

import (
	"encoding/base64"
	"log/slog"
	"testing"
)

func TestCheck(t *testing.T) {
	var s Secrets
	if s.Check("some log") == nil {
		t.Error("nothing remembered passed")
	}
	s.Remember("short", "0123456789abcdef")
	if err := s.Check(`{"msg":"request","status":200}`); err != nil {
		t.Error(err)
	}
	if s.Check(`{"msg":"oops","secret":"0123456789abcdef"}`) == nil {
		t.Error("a leaked secret passed")
	}
	if s.Check("") == nil {
		t.Error("empty logs passed")
	}
	var b Buffer
	_, _ = b.Write([]byte("x"))
	if b.String() != "x" {
		t.Error(b.String())
	}
}

// TestCheckFindsEscapedAndEncodedForms: a value a JSON log line escapes, or
// that travels in base64, is found all the same.
func TestCheckFindsEscapedAndEncodedForms(t *testing.T) {
	const pw = `pa"ss\<w&rd>`
	for name, log := range map[string]func(*slog.Logger){
		"escaped": func(l *slog.Logger) { l.Info("oops", slog.String("password", pw)) },
		"base64": func(l *slog.Logger) {
			l.Info("oops", slog.String("auth", base64.StdEncoding.EncodeToString([]byte(pw))))
		},
		"text": func(l *slog.Logger) { l.Info("oops", slog.String("password", pw)) },
	} {
		var b Buffer
		h := slog.Handler(slog.NewJSONHandler(&b, nil))
		if name == "text" {
			h = slog.NewTextHandler(&b, nil)
		}
		log(slog.New(h))
		var s Secrets
		s.Remember(pw)
		if s.Check(b.String()) == nil {
			t.Errorf("%s: %s passed", name, b.String())
		}
	}
}
