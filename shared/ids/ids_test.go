package ids

import (
	"sort"
	"testing"
	"time"
)

func TestNewSortsByTimeAndIsUnique(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 55, 3, 0, time.UTC)
	var got []string
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := New("ep", base.Add(time.Duration(i)*time.Millisecond))
		if !ValidEndpointID(id) {
			t.Fatalf("%q is not a valid endpoint id", id)
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
		got = append(got, id)
	}
	if !sort.StringsAreSorted(got) {
		t.Error("ids of later times do not sort after earlier ones")
	}
	// 2026-11-27T10:55:03Z is 1795776903000 ms: 01M8EA9XTR in Crockford base32
	// (computed independently).
	if id := New("ep", base); id[:13] != "ep_01M8EA9XTR" {
		t.Errorf("time prefix of %s", id)
	}
}

func TestValidEndpointID(t *testing.T) {
	for id, want := range map[string]bool{
		"ep_01JD7Q4Z6V9X2K000000000AB":  false, // 25 characters
		"ep_01JD7Q4Z6V9X2K00000000ABCD": true,
		"ep_01JD7Q4Z6V9X2K00000000ABCU": false, // U is not Crockford
		"EP_01JD7Q4Z6V9X2K00000000ABCD": false,
		"":                              false,
	} {
		if ValidEndpointID(id) != want {
			t.Errorf("ValidEndpointID(%q) != %v", id, want)
		}
	}
}

func TestDerived(t *testing.T) {
	a := Derived("dlv", "acc_1", "evt_1", "ep_1")
	if a != Derived("dlv", "acc_1", "evt_1", "ep_1") {
		t.Error("not stable")
	}
	if !ValidDeliveryID(a) {
		t.Errorf("%q is not a valid delivery id", a)
	}
	for _, other := range []string{Derived("dlv", "acc_1", "evt_1", "ep_2"), Derived("dlv", "acc_1", "evt_2", "ep_1"), Derived("dlv", "acc_1e", "vt_1", "ep_1")} {
		if other == a {
			t.Errorf("collision %s", other)
		}
	}
}
