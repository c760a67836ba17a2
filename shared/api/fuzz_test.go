package api

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/target"
)

// FuzzDecodeEndpoint: no request body crashes the decoder or passes a rule
// silently; every refusal is one of the contract's codes, and every
// acceptance satisfies the endpoint rules.
func FuzzDecodeEndpoint(f *testing.F) {
	for _, s := range []string{
		`{"name":"n","url":"https://example.com/h","triggers":["comment.red"],"basic_auth":{"username":"ct","password":"pw"}}`,
		`{"name":5}`, `{"basic_auth":null}`, `[]`, `{"thermometers":[{"id":"th_1","name":"x","type":"email"}]}`,
		`{"name":"n","url":"http://127.0.0.1:9/","triggers":["*"],"enabled":false}`, "{\"name\":\"\xff\"}", `{} {}`,
		`{"name":"\ud800"}`, `{"name":"\ud83d\ude00"}`, `{"name":"\\ud800 \udc00"}`, `{"name":"\ud83d\u0041"}`,
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	h := &handler{}
	f.Fuzz(func(t *testing.T, body string, create bool) {
		r := httptest.NewRequest("POST", "/v1/endpoints", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		in, err := h.decodeEndpoint(r, create)
		if err != nil {
			var e *domain.Error
			if !errors.As(err, &e) || statusOf[e.Code] == 0 || e.Code == domain.CodeInternal || e.Message == "" {
				t.Fatalf("refusal %v is not a contract error", err)
			}
			return
		}
		if create && (in.name == nil || in.url == nil || in.triggers == nil) {
			t.Fatalf("created without a required field: %q", body)
		}
		if in.name != nil && domain.CheckName(*in.name) != "" {
			t.Fatalf("accepted name %q", *in.name)
		}
		// Nothing is quietly replaced: a U+FFFD was sent as one.
		if in.name != nil && strings.ContainsRune(*in.name, utf8.RuneError) && !strings.ContainsRune(body, utf8.RuneError) && !strings.Contains(strings.ToLower(body), `\ufffd`) {
			t.Fatalf("name %q holds a replacement character %q did not send", *in.name, body)
		}
		if in.url != nil && len(target.CheckURL(*in.url, false)) > 0 {
			t.Fatalf("accepted url %q, which breaks %v", *in.url, target.CheckURL(*in.url, false))
		}
		if in.basicAuth != nil && (domain.CheckUsername(in.basicAuth.username) != "" || domain.CheckPassword(in.basicAuth.password) != "") {
			t.Fatalf("accepted basic auth in %q", body)
		}
		if in.triggers != nil {
			var v domain.ValidationError
			domain.CheckTriggers(&v, *in.triggers)
			if v.Err() != nil {
				t.Fatalf("accepted triggers %v", *in.triggers)
			}
		}
	})
}
