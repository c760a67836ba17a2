package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// MaxBody is the largest request body accepted (API.md section 4).
const MaxBody = 64 << 10

// object is a JSON object whose fields are decoded one by one, so a wrong
// type names its field and unknown fields are reported together.
type object struct {
	path   string // "" for the body, "basic_auth" for a nested object
	fields map[string]json.RawMessage
}

// readObject reads the request body as a JSON object. An empty body is an
// empty object when allowEmpty, and invalid_json otherwise.
func readObject(r *http.Request, allowEmpty bool) (object, error) {
	if r.ContentLength > MaxBody {
		return object{}, domain.Errorf(domain.CodePayloadTooLarge, "request body is larger than %d bytes", MaxBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return object{}, domain.Errorf(domain.CodeInvalidJSON, "request body could not be read")
	}
	if len(body) > MaxBody {
		return object{}, domain.Errorf(domain.CodePayloadTooLarge, "request body is larger than %d bytes", MaxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return object{fields: map[string]json.RawMessage{}}, nil
		}
		return object{}, domain.Errorf(domain.CodeInvalidJSON, "request body is empty; send a JSON object")
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return object{}, domain.Errorf(domain.CodeUnsupportedMediaType, "Content-Type must be application/json")
	}
	if !utf8.Valid(body) {
		return object{}, domain.Errorf(domain.CodeInvalidJSON, "request body is not valid UTF-8")
	}
	o, err := parseObject("", body)
	if err != nil {
		return object{}, err
	}
	if err := duplicateKey(body); err != nil {
		return object{}, err
	}
	if loneSurrogate(body) {
		return object{}, domain.Errorf(domain.CodeInvalidJSON, "request body has a \\u escape of half a UTF-16 surrogate pair; it stands for no character")
	}
	return o, nil
}

// loneSurrogate reports whether a string in body, which is known to be valid
// JSON, escapes half of a UTF-16 surrogate pair without the other half
// ("\ud800"). Decoding would quietly turn it into U+FFFD, storing something
// the client did not send.
func loneSurrogate(body []byte) bool {
	in := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			in = !in
		case c == '\\' && in:
			if body[i+1] != 'u' {
				i++ // a one-character escape
				continue
			}
			r := hex4(body[i+2 : i+6])
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return true
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
					return true
				}
				if lo := hex4(body[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
					return true
				}
				i += 6
			}
		}
	}
	return false
}

// hex4 is the value of four hexadecimal digits.
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// duplicateKey refuses a body that repeats a key in any object, at any depth.
// Decoding keeps the last of duplicate keys, while other JSON parsers keep the
// first: a body such as {"url":"https://a.example","url":"https://b.example"}
// would mean different things to a proxy that checked it and to this
// service. The error names the key's path, never a value (a value may be a
// password). body is known to be one valid JSON value.
func duplicateKey(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := tok.(string)
				field := key
				if path != "" {
					field = path + "." + key
				}
				if seen[key] {
					field = truncate(field, 200)
					return &domain.Error{Code: domain.CodeInvalidJSON, Message: field + ": duplicate key",
						Details: []domain.FieldError{{Field: field, Message: "duplicate key; give each key once"}}}
				}
				seen[key] = true
				if err := walk(field); err != nil {
					return err
				}
			}
			_, err = dec.Token() // }
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(path + "[" + strconv.Itoa(i) + "]"); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ]
			return err
		}
		return nil
	}
	err := walk("")
	var de *domain.Error
	if err != nil && !errors.As(err, &de) {
		// parseObject accepted body, so this cannot happen.
		return domain.Errorf(domain.CodeInvalidJSON, "request body is not valid JSON: %s", jsonProblem(err))
	}
	return err
}

func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

func parseObject(path string, raw []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return object{}, typeError(path, "an object")
		}
		return object{}, domain.Errorf(domain.CodeInvalidJSON, "request body is not valid JSON: %s", jsonProblem(err))
	}
	if fields == nil {
		return object{}, typeError(path, "an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return object{}, domain.Errorf(domain.CodeInvalidJSON, "request body has data after the JSON object")
	}
	return object{path: path, fields: fields}, nil
}

func jsonProblem(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return syn.Error() + " (at byte " + strconv.Itoa(int(syn.Offset)) + ")"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

func typeError(field, want string) error {
	if field == "" {
		return domain.Errorf(domain.CodeInvalidJSON, "request body must be a JSON object")
	}
	return &domain.Error{Code: domain.CodeInvalidJSON, Message: field + ": must be " + want,
		Details: []domain.FieldError{{Field: field, Message: "must be " + want}}}
}

func (o object) name(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// unknown adds a validation problem for every field not in allowed.
func (o object) unknown(v *domain.ValidationError, allowed ...string) {
	var extra []string
	for k := range o.fields {
		if !contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		v.Add(o.name(k), "unknown field")
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (o object) isNull(key string) bool {
	raw, ok := o.fields[key]
	return ok && string(bytes.TrimSpace(raw)) == "null"
}

// str decodes a string field into dst; it reports whether it was present.
func (o object) str(key string, dst *string) (bool, error) {
	raw, ok := o.fields[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil || o.isNull(key) {
		return true, typeError(o.name(key), "a string")
	}
	return true, nil
}

func (o object) boolean(key string, dst *bool) (bool, error) {
	raw, ok := o.fields[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil || o.isNull(key) {
		return true, typeError(o.name(key), "true or false")
	}
	return true, nil
}

func (o object) strings(key string, dst *[]string) (bool, error) {
	raw, ok := o.fields[key]
	if !ok {
		return false, nil
	}
	// Through pointers: decoding into []string turns a null element into
	// "", a string the client never sent.
	var elems []*string
	if err := json.Unmarshal(raw, &elems); err != nil || o.isNull(key) || slices.Contains(elems, nil) {
		return true, typeError(o.name(key), "an array of strings")
	}
	*dst = make([]string, len(elems))
	for i, e := range elems {
		(*dst)[i] = *e
	}
	return true, nil
}

// obj decodes a nested object field; null is reported as present with a nil
// result only when nullable.
func (o object) obj(key string, nullable bool) (*object, bool, error) {
	raw, ok := o.fields[key]
	if !ok {
		return nil, false, nil
	}
	if o.isNull(key) {
		if nullable {
			return nil, true, nil
		}
		return nil, true, typeError(o.name(key), "an object")
	}
	inner, err := parseObject(o.name(key), raw)
	if err != nil {
		return nil, true, err
	}
	return &inner, true, nil
}

// objects decodes an array of objects.
func (o object) objects(key string) ([]object, bool, error) {
	raw, ok := o.fields[key]
	if !ok {
		return nil, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || o.isNull(key) {
		return nil, true, typeError(o.name(key), "an array of objects")
	}
	out := make([]object, 0, len(items))
	for i, item := range items {
		inner, err := parseObject(o.name(key)+"["+strconv.Itoa(i)+"]", item)
		if err != nil {
			return nil, true, err
		}
		out = append(out, inner)
	}
	return out, true, nil
}
