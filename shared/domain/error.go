package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies an error by what the caller should do about it. The API maps
// each code to one HTTP status (see package api); codes are part of the public
// contract.
type Code string

// The error codes of the public contract.
const (
	CodeInvalidJSON          Code = "invalid_json"
	CodeInvalidCursor        Code = "invalid_cursor"
	CodeValidationFailed     Code = "validation_failed"
	CodeUnauthorized         Code = "unauthorized"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeEndpointNotTested    Code = "endpoint_not_tested"
	CodeEndpointDisabled     Code = "endpoint_disabled"
	CodeEndpointDeleted      Code = "endpoint_deleted"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeRateLimited          Code = "rate_limited"
	CodeUnavailable          Code = "unavailable"
	CodeInternal             Code = "internal"
)

// FieldError names one broken rule of one input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error the caller may see: its message never carries internals.
type Error struct {
	Code    Code
	Message string
	Details []FieldError
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned (wrapped) by lookups that find nothing.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// ErrUnavailable is returned (wrapped) when AWS still leaves work undone
// after the service's retries: unavailable or throttling for the moment.
var ErrUnavailable = &Error{Code: CodeUnavailable, Message: "unavailable for the moment"}

// Is matches errors by code, so errors.Is(err, ErrNotFound) holds for every
// not_found *Error whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ValidationError collects every broken rule of a request before it is
// returned as one validation_failed error.
type ValidationError struct {
	details []FieldError
	fields  map[string]bool
	more    int // broken rules beyond MaxDetails
}

// MaxDetails is the most broken rules one error lists. A request body of
// 64 KiB can break tens of thousands (an array of empty objects), and an
// answer naming them all would be megabytes, past what Lambda can return.
const MaxDetails = 50

// maxMessageRules is how many of the listed rules the message repeats.
const maxMessageRules = 10

// Add records that field breaks a rule.
func (v *ValidationError) Add(field, format string, args ...any) {
	if v.fields == nil {
		v.fields = map[string]bool{}
	}
	v.fields[field] = true
	if len(v.details) == MaxDetails {
		v.more++
		return
	}
	v.details = append(v.details, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Has says whether v names a broken rule of field.
func (v *ValidationError) Has(field string) bool { return v.fields[field] }

// Err is nil when no rule was broken, and otherwise a validation_failed *Error
// whose details list every broken rule, up to MaxDetails, and whose message
// repeats the first ten and counts the rest.
func (v *ValidationError) Err() error {
	if len(v.details) == 0 {
		return nil
	}
	msgs := make([]string, 0, maxMessageRules+1)
	for _, d := range v.details[:min(len(v.details), maxMessageRules)] {
		msgs = append(msgs, d.Field+": "+d.Message)
	}
	if rest := len(v.details) + v.more - len(msgs); rest > 0 {
		msgs = append(msgs, fmt.Sprintf("and %d more", rest))
	}
	if v.more > 0 {
		msgs[len(msgs)-1] += fmt.Sprintf(" (details lists the first %d)", MaxDetails)
	}
	return &Error{Code: CodeValidationFailed, Message: strings.Join(msgs, "; "), Details: v.details}
}

// CodeOf is the code of err, or internal for errors that are not *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
