package domain

import (
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		ep   Endpoint
		want string
	}{
		{Endpoint{Enabled: true}, StatusUntested},
		{Endpoint{Enabled: true, Tested: true}, StatusActive},
		{Endpoint{Enabled: true, Tested: true, Failing: true}, StatusFailing},
		{Endpoint{Enabled: false, Tested: true}, StatusDisabled},
		{Endpoint{Enabled: false, Gone: true}, StatusDisabled},
	} {
		if got := tc.ep.Status(); got != tc.want {
			t.Errorf("%+v: status %s, want %s", tc.ep, got, tc.want)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		triggers    []string
		typ, rating string
		want        bool
	}{
		{[]string{"comment.red"}, "comment", "red", true},
		{[]string{"comment.red"}, "comment", "amber", false},
		{[]string{"comment.red"}, "rating", "red", false},
		{[]string{"rating.*"}, "rating", "gold", true},
		{[]string{"rating.*"}, "driver", "gold", false},
		{[]string{"*"}, "driver", "amber", true},
		{[]string{"rating.gold", "driver.*"}, "driver", "green", true},
	} {
		if got := Matches(tc.triggers, tc.typ, tc.rating); got != tc.want {
			t.Errorf("Matches(%v, %s, %s) = %v", tc.triggers, tc.typ, tc.rating, got)
		}
	}
}

func TestCheckTriggers(t *testing.T) {
	for _, tc := range []struct {
		triggers []string
		want     string
	}{
		{[]string{"comment.red", "rating.*", "*"}, ""},
		{nil, "at least one"},
		{[]string{"comment.purple"}, "triggers[0]: unknown trigger"},
		{[]string{"rating.gold", "rating.gold"}, "triggers[1]: duplicate"},
		{[]string{"RATING.gold"}, "unknown trigger"},
		{[]string{"test"}, "unknown trigger"},
	} {
		var v ValidationError
		CheckTriggers(&v, tc.triggers)
		err := v.Err()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckTriggers(%v) = %v, want %q", tc.triggers, err, tc.want)
		}
	}
	if n := len(knownTriggers); n != 16 {
		t.Errorf("%d known triggers, want 16", n)
	}
}

func TestFieldChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  string
		bad  bool
	}{
		{"name ok", CheckName("Red comments to helpdesk"), false},
		{"name unicode counts characters", CheckName(strings.Repeat("é", 100)), false},
		{"name empty", CheckName(""), true},
		{"name too long", CheckName(strings.Repeat("a", 101)), true},
		{"name control", CheckName("a\nb"), true},
		{"username ok", CheckUsername("ct"), false},
		{"username colon", CheckUsername("c:t"), true},
		{"username long", CheckUsername(strings.Repeat("u", 129)), true},
		{"username empty", CheckUsername(""), true},
		{"password ok", CheckPassword("s3cr3t: with colon"), false},
		{"password long", CheckPassword(strings.Repeat("p", 257)), true},
		{"password empty", CheckPassword(""), true},
	} {
		if (tc.got != "") != tc.bad {
			t.Errorf("%s: %q", tc.name, tc.got)
		}
	}
	var v ValidationError
	CheckThermometer(&v, "thermometers[0]", Thermometer{ID: "th 42", Name: "", Type: "sms"})
	err := v.Err()
	for _, f := range []string{"thermometers[0].id", "thermometers[0].name", "thermometers[0].type"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("thermometer check does not name %s: %v", f, err)
		}
	}
}
