package domain

import (
	"strconv"
	"strings"
)

// Event types and ratings of the response-event schema (API.md sections 1-2).
var (
	EventTypes = []string{"rating", "comment", "driver"}
	Ratings    = []string{"gold", "green", "amber", "red"}
)

// knownTriggers is the 12 type.rating triggers, the three type wildcards and *.
var knownTriggers = func() map[string]bool {
	m := map[string]bool{"*": true}
	for _, t := range EventTypes {
		m[t+".*"] = true
		for _, r := range Ratings {
			m[t+"."+r] = true
		}
	}
	return m
}()

// KnownTrigger reports whether t is a trigger an endpoint may list.
func KnownTrigger(t string) bool { return knownTriggers[t] }

// Matches reports whether an event of eventType with rating reaches an
// endpoint listing triggers.
func Matches(triggers []string, eventType, rating string) bool {
	exact, typeWildcard := eventType+"."+rating, eventType+".*"
	for _, t := range triggers {
		if t == "*" || t == typeWildcard || t == exact {
			return true
		}
	}
	return false
}

// MatchesTrigger is Matches for an event's own trigger, type.rating.
func MatchesTrigger(triggers []string, trigger string) bool {
	eventType, rating, ok := strings.Cut(trigger, ".")
	return ok && Matches(triggers, eventType, rating)
}

// CheckTriggers adds to v every rule triggers breaks.
func CheckTriggers(v *ValidationError, triggers []string) {
	if len(triggers) == 0 {
		v.Add("triggers", "must list at least one trigger")
		return
	}
	if len(triggers) > len(knownTriggers) {
		// Longer lists repeat a trigger; no need to name every entry.
		v.Add("triggers", "must list each trigger once: at most %d triggers; got %d", len(knownTriggers), len(triggers))
		return
	}
	seen := map[string]bool{}
	for i, t := range triggers {
		switch {
		case !KnownTrigger(t):
			v.Add(fieldIndex("triggers", i), "unknown trigger %q; use type.rating (e.g. comment.red), type.* or *", t)
		case seen[t]:
			v.Add(fieldIndex("triggers", i), "duplicate trigger %q", t)
		}
		seen[t] = true
	}
}

func fieldIndex(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}
