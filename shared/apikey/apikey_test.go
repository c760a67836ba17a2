package apikey

import "testing"

func TestNewKeysAreWellFormedAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k := New()
		if !WellFormed(k) {
			t.Fatalf("New() = %q is not well formed", k)
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
	}
}

func TestHash(t *testing.T) {
	// sha256("abc"), from FIPS 180-2.
	if got := Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Hash(abc) = %s", got)
	}
}

func TestWellFormedRejects(t *testing.T) {
	for _, k := range []string{"", "ctwh_", "ctwh_short", "sk_" + New()[5:], New() + "x", "ctwh_" + "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"} {
		if WellFormed(k) {
			t.Errorf("WellFormed(%q) = true", k)
		}
	}
}
