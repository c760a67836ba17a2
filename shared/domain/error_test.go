package domain

import (
	"errors"
	"fmt"
	"testing"
)

func TestNotFoundMatchesWrapped(t *testing.T) {
	err := fmt.Errorf("get endpoint ep_1: %w", Errorf(CodeNotFound, "endpoint not found"))
	if !errors.Is(err, ErrNotFound) {
		t.Error("a wrapped not_found error must match ErrNotFound")
	}
	if errors.Is(Errorf(CodeValidationFailed, "x"), ErrNotFound) {
		t.Error("validation_failed must not match ErrNotFound")
	}
	if CodeOf(err) != CodeNotFound || CodeOf(errors.New("boom")) != CodeInternal {
		t.Error("CodeOf misclassifies")
	}
}

func TestValidationCollectsEveryRule(t *testing.T) {
	var v ValidationError
	if v.Err() != nil {
		t.Fatal("no rules broken must be nil")
	}
	v.Add("name", "must be 1-100 characters")
	v.Add("url", "only port %d is allowed for https", 443)
	err := v.Err()
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeValidationFailed || len(e.Details) != 2 {
		t.Fatalf("got %#v", err)
	}
	if e.Message != "name: must be 1-100 characters; url: only port 443 is allowed for https" {
		t.Errorf("message = %q", e.Message)
	}
}

func TestValidAccountID(t *testing.T) {
	for id, want := range map[string]bool{"acc_123": true, "a": true, "": false, "acc 1": false, "acc/1": false, string(make([]byte, 129)): false} {
		if got := ValidAccountID(id); got != want {
			t.Errorf("ValidAccountID(%q) = %v", id, got)
		}
	}
}
