package domain

import (
	"fmt"
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"
)

// Endpoint statuses (API.md section 4).
const (
	StatusUntested = "untested"
	StatusActive   = "active"
	StatusFailing  = "failing"
	StatusDisabled = "disabled"
)

// Sealed is a secret encrypted with the stack's KMS key; only the secrets
// adapter opens it, and nothing ever logs or returns it.
type Sealed []byte

// BasicAuth is an endpoint's credentials; the password is write-only.
type BasicAuth struct {
	Username string
	Password Sealed
}

// Thermometer is a survey thermometer an endpoint is linked to.
type Thermometer struct {
	ID   string
	Name string
	Type string
}

// LastTest is the outcome of the latest test fire.
type LastTest struct {
	At         time.Time
	Delivered  bool
	StatusCode int // 0: no response
	LatencyMS  int64
	Error      string
}

// Endpoint is an account holder's webhook receiver.
type Endpoint struct {
	ID           string
	AccountID    string
	Name         string
	URL          string
	Triggers     []string
	BasicAuth    *BasicAuth
	Secret       Sealed
	Enabled      bool
	Tested       bool // a test fire was delivered since URL or credentials last changed
	Failing      bool // the last delivery ended failed
	Gone         bool // disabled because the receiver answered 410 Gone
	LastTest     *LastTest
	Thermometers []Thermometer
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Version increases with every write; writes are conditional on it so
	// that concurrent changes are never lost.
	Version int64
}

// Status derives the public status from the endpoint's state.
func (e Endpoint) Status() string {
	switch {
	case !e.Enabled:
		return StatusDisabled
	case !e.Tested:
		return StatusUntested
	case e.Failing:
		return StatusFailing
	default:
		return StatusActive
	}
}

// Links reports whether e is linked to thermometer.
func (e Endpoint) Links(thermometer string) bool {
	for _, th := range e.Thermometers {
		if th.ID == thermometer {
			return true
		}
	}
	return false
}

// Limits of endpoint fields.
const (
	MaxNameLength            = 100
	MaxUsernameLength        = 128
	MaxPasswordLength        = 256
	MaxThermometerNameLength = 200
	// MaxThermometers is the most thermometers one endpoint links: every
	// write of an endpoint rewrites one link item per linked thermometer.
	MaxThermometers = 100
)

// CheckName returns the rule name breaks, or "".
func CheckName(name string) string {
	if !utf8.ValidString(name) {
		return "must be valid UTF-8"
	}
	n := utf8.RuneCountInString(name)
	if n < 1 || n > MaxNameLength {
		return fmt.Sprintf("must be 1-%d characters", MaxNameLength)
	}
	if hasControl(name) {
		return "must not contain control characters"
	}
	return CheckDisplayText(name)
}

// CheckDisplayText returns the rule s, a name people read (an endpoint's,
// a thermometer's), breaks beyond its length and control characters, or "".
// A name is shown in lists and logs where it must not pass for another
// one: it must have something visible, no spaces around it, and none of
// the characters that reorder or hide text (bidirectional overrides and
// isolates, which make "invoice\u202efdp.exe" read "invoicexe.pdf"), break
// lines outside JSON's escapes (U+2028, U+2029) or are not characters at
// all (byte order marks, noncharacters).
func CheckDisplayText(s string) string {
	if msg := CheckHidden(s); msg != "" {
		return msg
	}
	visible := false
	for _, r := range s {
		if unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) && !blank(r) {
			visible = true
		}
	}
	if !visible {
		return "must contain a visible character"
	}
	if first, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(first) || blank(first) || unicode.Is(unicode.Cf, first) {
		return "must not begin with a space or an invisible character"
	}
	// A variation selector ends many an emoji ("❤️"): it may end a name.
	if last, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(last) || blank(last) && !variationSelector(last) || unicode.Is(unicode.Cf, last) {
		return "must not end with a space or an invisible character"
	}
	return ""
}

// hidden reports whether r reorders, hides or is not text: bidirectional
// embeddings, overrides and isolates, the line and paragraph separators,
// the byte order mark, and the noncharacters.
func hidden(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x2028 || r == 0x2029 || r == 0xfeff ||
		r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe
}

// blank reports whether r shows nothing though Unicode files it as a
// letter, symbol or format character: the zero-width characters, and the
// fillers that render as empty space (Hangul fillers, the braille blank,
// the Mongolian vowel separator, the combining grapheme joiner, variation
// selectors). Names made of these alone look empty.
func blank(r rune) bool {
	switch r {
	case 0x200b, 0x200c, 0x200d, 0x2060, 0x115f, 0x1160, 0x3164, 0xffa0, 0x2800, 0x180e, 0x034f, 0x17b4, 0x17b5:
		return true
	}
	return variationSelector(r)
}

func variationSelector(r rune) bool {
	return r >= 0xfe00 && r <= 0xfe0f || r >= 0xe0100 && r <= 0xe01ef
}

// CheckUsername returns the rule a Basic Auth username breaks, or "".
func CheckUsername(u string) string {
	n := utf8.RuneCountInString(u)
	switch {
	case n < 1 || n > MaxUsernameLength:
		return fmt.Sprintf("must be 1-%d characters", MaxUsernameLength)
	case containsRune(u, ':'):
		return "must not contain ':'"
	case hasControl(u):
		return "must not contain control characters"
	}
	return CheckHidden(u)
}

// CheckHidden returns the rule s breaks if it holds a character that
// reorders or hides text, or is not text (see CheckDisplayText), or "".
func CheckHidden(s string) string {
	for _, r := range s {
		if hidden(r) {
			return fmt.Sprintf("must not contain the invisible or reordering character U+%04X", r)
		}
	}
	return ""
}

// CheckPassword returns the rule a Basic Auth password breaks, or "".
func CheckPassword(p string) string {
	n := utf8.RuneCountInString(p)
	switch {
	case n < 1 || n > MaxPasswordLength:
		return fmt.Sprintf("must be 1-%d characters", MaxPasswordLength)
	case hasControl(p):
		return "must not contain control characters"
	}
	return ""
}

var thermometerID = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// CheckThermometer adds to v every rule th breaks, naming fields under path;
// a field v already names (as missing, say) gets no second rule.
func CheckThermometer(v *ValidationError, path string, th Thermometer) {
	add := func(field, format string, args ...any) {
		if !v.Has(path + field) {
			v.Add(path+field, format, args...)
		}
	}
	if !thermometerID.MatchString(th.ID) {
		add(".id", "must be 1-128 characters of A-Za-z0-9_.:-")
	}
	if n := utf8.RuneCountInString(th.Name); n < 1 || n > MaxThermometerNameLength || hasControl(th.Name) {
		add(".name", "must be 1-%d characters without control characters", MaxThermometerNameLength)
	} else if msg := CheckDisplayText(th.Name); msg != "" {
		add(".name", "%s", msg)
	}
	if th.Type != "email" && th.Type != "embedded" {
		add(".type", "must be email or embedded")
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

func containsRune(s string, c rune) bool {
	for _, r := range s {
		if r == c {
			return true
		}
	}
	return false
}

// What a sealed value is, bound into its encryption context: a shared secret
// only opens as a shared secret, a password only as a password.
const (
	PurposeSecret   = "endpoint-secret"
	PurposePassword = "basic-auth-password"
)

// SealContext is the KMS encryption context of an endpoint's sealed value:
// a ciphertext copied to another account's or endpoint's item does not open.
func SealContext(account, endpoint, purpose string) map[string]string {
	return map[string]string{"account_id": account, "endpoint_id": endpoint, "purpose": purpose}
}
