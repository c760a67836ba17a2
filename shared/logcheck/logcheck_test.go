package logcheck

import "testing"

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
