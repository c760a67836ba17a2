package cursor

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTripAndBinding(t *testing.T) {
	c, err := New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Seal("acc_1/endpoints", []byte("ep_01"))
	if bytes.Contains([]byte(tok), []byte("ep_01")) {
		t.Error("cursor is not opaque")
	}
	if pos, err := c.Open("acc_1/endpoints", tok); err != nil || string(pos) != "ep_01" {
		t.Fatalf("Open = %q, %v", pos, err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, 32))
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another account": func() ([]byte, error) { return c.Open("acc_2/endpoints", tok) },
		"another list":    func() ([]byte, error) { return c.Open("acc_1/deliveries", tok) },
		"another key":     func() ([]byte, error) { return other.Open("acc_1/endpoints", tok) },
		"tampered":        func() ([]byte, error) { return c.Open("acc_1/endpoints", string(flipped)) },
		"truncated":       func() ([]byte, error) { return c.Open("acc_1/endpoints", tok[:len(tok)-2]) },
		"not base64":      func() ([]byte, error) { return c.Open("acc_1/endpoints", "!!!") },
		"empty":           func() ([]byte, error) { return c.Open("acc_1/endpoints", "") },
		"huge":            func() ([]byte, error) { return c.Open("acc_1/endpoints", string(bytes.Repeat([]byte("A"), 5000))) },
	} {
		if _, err := open(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestNewRejectsShortKey(t *testing.T) {
	if _, err := New(make([]byte, 16)); err == nil {
		t.Error("16-byte key accepted")
	}
}
