package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func loadEvent(t *testing.T, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestGatewayPassesRequestThrough(t *testing.T) {
	ev := loadEvent(t, "api-list-endpoints.json")
	ev.RawQueryString = "limit=5&cursor=abc"
	ev.Body = base64.StdEncoding.EncodeToString([]byte(`{"x":1}`))
	ev.IsBase64Encoded = true
	var seen *http.Request
	var body []byte
	h := gatewayHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	resp, err := h(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Method != "GET" || seen.URL.Path != "/v1/endpoints" || seen.URL.Query().Get("limit") != "5" {
		t.Errorf("request %s %s", seen.Method, seen.URL)
	}
	if seen.Header.Get("Authorization") != ev.Headers["authorization"] || seen.Header.Get("X-Request-Id") != ev.RequestContext.RequestID {
		t.Errorf("headers %v", seen.Header)
	}
	if string(body) != `{"x":1}` {
		t.Errorf("body %q", body)
	}
	if resp.StatusCode != 201 || resp.Body != `{"ok":true}` || resp.IsBase64Encoded || resp.Headers["Content-Type"] != "application/json" {
		t.Errorf("response %+v", resp)
	}
	if len(resp.Cookies) != 1 || resp.Cookies[0] != "a=1" {
		t.Errorf("cookies %v", resp.Cookies)
	}
}

func TestGatewayBinaryResponseIsBase64(t *testing.T) {
	h := gatewayHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte{0xff, 0xfe, 0x00})
	}))
	resp, _ := h(context.Background(), loadEvent(t, "api-list-endpoints.json"))
	if !resp.IsBase64Encoded || resp.Body != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0x00}) || resp.StatusCode != 200 {
		t.Errorf("response %+v", resp)
	}
}

func TestGatewayBadBase64IsAClientError(t *testing.T) {
	ev := loadEvent(t, "api-list-endpoints.json")
	ev.Body, ev.IsBase64Encoded = "%%%not base64", true
	h := gatewayHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler called") }))
	resp, err := h(context.Background(), ev)
	if err != nil || resp.StatusCode != 400 {
		t.Errorf("resp %+v err %v", resp, err)
	}
}
