package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestMatchPath(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		ok            bool
		params        map[string]string
	}{
		{"/v1/{proxy+}", "/v1/health", true, map[string]string{"proxy": "health"}},
		{"/v1/{proxy+}", "/v1/endpoints/ep_1/test", true, map[string]string{"proxy": "endpoints/ep_1/test"}},
		{"/v1/{proxy+}", "/v1", false, nil},
		{"/v1/{proxy+}", "/v1/", false, nil},
		{"/v1/{proxy+}", "/v2/health", false, nil},
		{"/v1/{proxy+}", "/", false, nil},
		{"/items/{id}", "/items/7", true, map[string]string{"id": "7"}},
		{"/items/{id}", "/items/7/more", false, nil},
		{"/health", "/health", true, map[string]string{}},
	} {
		params, ok := matchPath(tc.pattern, tc.path)
		if ok != tc.ok {
			t.Errorf("matchPath(%q, %q) ok = %v", tc.pattern, tc.path, ok)
			continue
		}
		for k, v := range tc.params {
			if params[k] != v {
				t.Errorf("matchPath(%q, %q) params = %v", tc.pattern, tc.path, params)
			}
		}
	}
}

type fakeInvoker struct {
	payload []byte
	out     []byte
	err     error
}

func (f *fakeInvoker) invoke(_ context.Context, payload []byte) ([]byte, error) {
	f.payload = payload
	return f.out, f.err
}

func newTestGateway(fn invoker) *httptest.Server {
	g := &gateway{log: &lineLog{out: io.Discard}, routes: []route{{method: "ANY", path: "/v1/{proxy+}", fn: fn}}}
	return httptest.NewServer(g)
}

func TestGatewayBuildsV2EventAndWritesResponse(t *testing.T) {
	resp, _ := json.Marshal(events.APIGatewayV2HTTPResponse{
		StatusCode: 201, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"ok":true}`,
		Cookies: []string{"a=1"},
	})
	fn := &fakeInvoker{out: resp}
	srv := newTestGateway(fn)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/endpoints?limit=5", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 201 || string(body) != `{"ok":true}` || res.Header.Get("Set-Cookie") != "a=1" {
		t.Errorf("response %d %s %v", res.StatusCode, body, res.Header)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(fn.payload, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Version != "2.0" || ev.RouteKey != "ANY /v1/{proxy+}" || ev.RawPath != "/v1/endpoints" || ev.RawQueryString != "limit=5" {
		t.Errorf("event %+v", ev)
	}
	if ev.RequestContext.HTTP.Method != "POST" || ev.RequestContext.RequestID == "" || ev.RequestContext.HTTP.SourceIP != "127.0.0.1" {
		t.Errorf("request context %+v", ev.RequestContext)
	}
	if ev.Headers["authorization"] != "Bearer k" || ev.Headers["x-multi"] != "a,b" || ev.PathParameters["proxy"] != "endpoints" {
		t.Errorf("headers %v params %v", ev.Headers, ev.PathParameters)
	}
	if ev.Body != `{"name":"x"}` || ev.IsBase64Encoded {
		t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	}
}

func TestGatewayBinaryBodyIsBase64(t *testing.T) {
	resp, _ := json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: 200})
	fn := &fakeInvoker{out: resp}
	srv := newTestGateway(fn)
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/x", "application/octet-stream", bytes.NewReader([]byte{0, 1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var ev events.APIGatewayV2HTTPRequest
	_ = json.Unmarshal(fn.payload, &ev)
	if !ev.IsBase64Encoded || ev.Body != "AAEC" {
		t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	}
}

func TestGatewayOwnAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fn     *fakeInvoker
		path   string
		body   string
		status int
	}{
		{"no route", &fakeInvoker{}, "/", "", 404},
		{"function error", &fakeInvoker{err: errors.New("boom")}, "/v1/x", "", 500},
		{"integration timeout", &fakeInvoker{err: context.DeadlineExceeded}, "/v1/x", "", 503},
		{"not a proxy response", &fakeInvoker{out: []byte(`"hello"`)}, "/v1/x", "", 500},
		{"body over 10 MB", &fakeInvoker{}, "/v1/x", strings.Repeat("x", maxGatewayBody+1), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestGateway(tc.fn)
			defer srv.Close()
			res, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || !strings.HasPrefix(string(b), `{"message":`) {
				t.Errorf("got %d %s, want %d", res.StatusCode, b, tc.status)
			}
		})
	}
}

// TestGatewayDefaultRoute: an HttpApi event without path and method is API
// Gateway's $default route, which takes what no other route matches, as the
// template's second API event does; the others still win.
func TestGatewayDefaultRoute(t *testing.T) {
	api := &fakeInvoker{out: []byte(`{"statusCode":200}`)}
	other := &fakeInvoker{out: []byte(`{"statusCode":404}`)}
	g := &gateway{log: &lineLog{out: io.Discard}, routes: []route{{method: "ANY", path: defaultRoute, fn: other}, {method: "ANY", path: "/v1/{proxy+}", fn: api}}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want int
	}{{"/v1/endpoints", 200}, {"/", 404}, {"/wp-login.php", 404}, {"/v1", 404}} { // "/v1" last: checked below
		path, want := tc.path, tc.want
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(other.payload, &ev); err != nil || ev.RouteKey != "$default" || ev.RawPath != "/v1" {
		t.Errorf("default route event: %+v (%v)", ev, err)
	}
}
