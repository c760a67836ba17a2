// Package event parses and validates response events, the messages the
// survey application sends (API.md section 1). Parsing is strict about what
// the contract requires and tolerant of fields it does not know, so producers
// can add fields without breaking delivery.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// Event is a valid response event.
type Event struct {
	Version     int
	ID          string
	Type        string
	AccountID   string
	OccurredAt  time.Time
	Thermometer domain.Thermometer
	ResponseID  string
	Rating      string
	// Response is the response object exactly as received; webhooks carry
	// it unchanged.
	Response json.RawMessage
}

// Trigger is the event's "<type>.<rating>".
func (e Event) Trigger() string { return e.Type + "." + e.Rating }

// Invalid is why a message is not a valid event; it names the rule broken.
type Invalid struct {
	EventID string // as far as it could be read, for the log line
	Reason  string
}

func (e *Invalid) Error() string { return "invalid event: " + e.Reason }

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// The parts of an event the service reads. They are read by exact key
// (readObject): encoding/json matches struct fields regardless of case, so
// {"rating":"red","Rating":"gold"} would be routed as gold and arrive as
// red, and {"EVENT_ID":"e"} would stand for the event_id the contract
// requires.
type wire struct {
	Version     *int
	EventID     *string
	Type        *string
	AccountID   *string
	OccurredAt  *string
	Thermometer json.RawMessage
	Response    json.RawMessage
}

type wireTherm struct {
	ID   *string
	Name *string
	Type *string
}

type wireResponse struct {
	ID           *string
	Rating       *string
	Comment      *string
	Drivers      []*string
	CustomFields map[string]*string
}

// field is where readObject puts the value of key.
type field struct {
	key string
	dst any
}

// readObject reads raw, a JSON object, into fields by exact key, in their
// order (so that an event breaking two rules is always refused for the same
// one); it names the first thing that does not fit. A key given twice is
// refused: parsers differ on which of the two they keep.
func readObject(raw json.RawMessage, fields ...field) error {
	if key := repeatedKey(raw); key != "" {
		return fmt.Errorf("key %q appears twice", shorten(key))
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return err
	}
	for _, f := range fields {
		if v, ok := values[f.key]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return fmt.Errorf("%s: %w", f.key, err)
			}
		}
	}
	return nil
}

// readResponse reads raw, a JSON object, into r by exact key; it names the
// first thing that does not fit.
func readResponse(raw json.RawMessage, r *wireResponse) error {
	var custom json.RawMessage
	if err := readObject(raw, field{"id", &r.ID}, field{"rating", &r.Rating}, field{"comment", &r.Comment},
		field{"drivers", &r.Drivers}, field{"custom_fields", &custom}); err != nil {
		return err
	}
	if len(custom) > 0 {
		if err := readObject(custom); err != nil {
			return fmt.Errorf("custom_fields: %w", err)
		}
		if err := json.Unmarshal(custom, &r.CustomFields); err != nil {
			return fmt.Errorf("custom_fields: %w", err)
		}
	}
	for i, d := range r.Drivers {
		if d == nil {
			return fmt.Errorf("drivers[%d] is null, not a string", i)
		}
	}
	for k, v := range r.CustomFields {
		if v == nil {
			return fmt.Errorf("custom_fields.%s is null, not a string", shorten(k))
		}
	}
	return nil
}

// repeatedKey is a key that raw, a JSON object, has twice at its top level,
// or "". Receivers' parsers differ on which of two they keep.
func repeatedKey(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return ""
		}
		// Decoding turns every lone surrogate escape into U+FFFD, so keys
		// holding one may differ though they read alike.
		if seen[key] && !strings.ContainsRune(key, utf8.RuneError) {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// MaxDepth is how deeply an event may nest objects and arrays. Webhooks
// carry the response as received, and receivers' parsers have limits of
// their own (Python's json gives up near 1,000 levels); a survey response
// needs a handful.
const MaxDepth = 64

// depth is how deeply body, valid UTF-8, nests objects and arrays (brackets
// inside strings do not count).
func depth(body []byte) int {
	d, most, inString, escaped := 0, 0, false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			most = max(most, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}

// MaxSize is the largest event accepted, in bytes. A survey response is a
// few kilobytes; the limit keeps an event, the webhook built from it and the
// messages that carry them within what SQS and DynamoDB take (256 KiB on
// older queues, 400 KB an item).
const MaxSize = 240 << 10

// Parse validates body as a response event.
func Parse(body []byte) (Event, error) {
	if len(body) > MaxSize {
		return Event{}, &Invalid{EventID: peekID(body), Reason: fmt.Sprintf("body is %d bytes; an event may have at most %d", len(body), MaxSize)}
	}
	if !utf8.Valid(body) {
		return Event{}, &Invalid{Reason: "body is not valid UTF-8"}
	}
	if depth(body) > MaxDepth {
		return Event{}, &Invalid{EventID: peekID(body), Reason: fmt.Sprintf("body nests objects and arrays more than %d deep", MaxDepth)}
	}
	var w wire
	if err := readObject(body, field{"version", &w.Version}, field{"event_id", &w.EventID}, field{"type", &w.Type},
		field{"account_id", &w.AccountID}, field{"occurred_at", &w.OccurredAt}, field{"thermometer", &w.Thermometer},
		field{"response", &w.Response}); err != nil {
		return Event{}, &Invalid{EventID: peekID(body), Reason: "body is not a JSON object of the event schema: " + shorten(err.Error())}
	}
	inv := func(format string, args ...any) error {
		id := ""
		if w.EventID != nil {
			id = *w.EventID
		}
		return &Invalid{EventID: shorten(id), Reason: fmt.Sprintf(format, args...)}
	}
	var e Event
	switch {
	case w.Version == nil:
		return e, inv("version is required")
	case *w.Version != 1:
		return e, inv("version %d is not supported; only 1", *w.Version)
	case w.EventID == nil:
		return e, inv("event_id is required")
	case !idPattern.MatchString(*w.EventID):
		return e, inv("event_id must be 1-128 characters of A-Za-z0-9_.:-")
	case w.Type == nil:
		return e, inv("type is required")
	case !slices.Contains(domain.EventTypes, *w.Type):
		return e, inv("type %q is not one of rating, comment, driver", shorten(*w.Type))
	case w.AccountID == nil:
		return e, inv("account_id is required")
	case !domain.ValidAccountID(*w.AccountID):
		return e, inv("account_id must be 1-128 characters of A-Za-z0-9_.:-")
	case w.OccurredAt == nil:
		return e, inv("occurred_at is required")
	}
	at, err := parseTime(*w.OccurredAt)
	if err != nil {
		return e, inv("occurred_at %q is not an RFC 3339 time", shorten(*w.OccurredAt))
	}
	if y := at.UTC().Year(); y < 0 || y > 9999 {
		// Webhooks carry the time in UTC, where it would need a fifth
		// digit or a sign that RFC 3339 does not have.
		return e, inv("occurred_at %q falls outside the years 0000-9999 in UTC", shorten(*w.OccurredAt))
	}
	if isNull(w.Thermometer) {
		return e, inv("thermometer is required")
	}
	var th wireTherm
	if err := readObject(w.Thermometer, field{"id", &th.ID}, field{"name", &th.Name}, field{"type", &th.Type}); err != nil {
		return e, inv("thermometer does not match the schema: %s", shorten(err.Error()))
	}
	switch {
	case th.ID == nil:
		return e, inv("thermometer.id is required")
	case !idPattern.MatchString(*th.ID):
		return e, inv("thermometer.id must be 1-128 characters of A-Za-z0-9_.:-")
	case th.Type == nil:
		return e, inv("thermometer.type is required")
	case *th.Type != "email" && *th.Type != "embedded":
		return e, inv("thermometer.type %q is not email or embedded", shorten(*th.Type))
	}
	if isNull(w.Response) {
		return e, inv("response is required")
	}
	var r wireResponse
	if err := readResponse(w.Response, &r); err != nil {
		return e, inv("response does not match the schema: %s", shorten(err.Error()))
	}
	switch {
	case r.ID == nil || *r.ID == "":
		return e, inv("response.id is required")
	case r.Rating == nil:
		return e, inv("response.rating is required")
	case !slices.Contains(domain.Ratings, *r.Rating):
		return e, inv("response.rating %q is not one of gold, green, amber, red", shorten(*r.Rating))
	case len(r.CustomFields) > 12:
		return e, inv("response.custom_fields has %d keys; at most 12", len(r.CustomFields))
	}
	for k := range r.CustomFields {
		if !customKey(k) {
			return e, inv("response.custom_fields key %q is not custom_1 … custom_12", shorten(k))
		}
	}
	e = Event{
		Version: 1, ID: *w.EventID, Type: *w.Type, AccountID: *w.AccountID, OccurredAt: at,
		Thermometer: domain.Thermometer{ID: *th.ID, Type: *th.Type},
		ResponseID:  *r.ID, Rating: *r.Rating, Response: compact(w.Response),
	}
	if th.Name != nil {
		e.Thermometer.Name = *th.Name
	}
	return e, nil
}

// rfc3339 is RFC 3339's date-time (section 5.6), whose "T" and "Z" may be
// lower case; time.RFC3339 refuses those and takes a comma before the
// fraction, which RFC 3339 does not.
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// parseTime reads an RFC 3339 date-time; a leap second (23:59:60), which
// time.Time cannot hold, is read as the second after 23:59:59.
func parseTime(s string) (time.Time, error) {
	if !rfc3339.MatchString(s) {
		return time.Time{}, fmt.Errorf("not an RFC 3339 date-time")
	}
	s = strings.ToUpper(s)
	if s[17:19] == "60" {
		t, err := time.Parse(time.RFC3339, s[:17]+"59"+s[19:])
		return t.Add(time.Second), err
	}
	return time.Parse(time.RFC3339, s)
}

// isNull reports whether raw, a value read by readObject, is absent or null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

func customKey(k string) bool {
	n, ok := strings.CutPrefix(k, "custom_")
	if !ok {
		return false
	}
	for i := 1; i <= 12; i++ {
		if n == fmt.Sprint(i) {
			return true
		}
	}
	return false
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// peekID finds the event id of a body that is not fully valid, for the log.
func peekID(body []byte) string {
	var values map[string]json.RawMessage
	var id string
	if json.Unmarshal(body, &values) != nil || json.Unmarshal(values["event_id"], &id) != nil {
		return ""
	}
	return shorten(id)
}

func shorten(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}
