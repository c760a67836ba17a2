package dispatch

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/signature"
	"github.com/customerthermometer/webhooks/shared/target"
)

const secret = "02ee43a0c82e42c3f79701cc7db8389f3fcd4ac1dace9ec92592220964e75d59"

func hook(url string) Webhook {
	return Webhook{URL: url, Secret: secret, EndpointID: "ep_1", DeliveryID: "dlv_1", Event: "comment", Attempt: 2, Body: []byte(`{"id":"dlv_1"}`)}
}

func TestSendSignsAndDelivers(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 55, 3, 0, time.UTC)
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.WriteHeader(204)
	}))
	defer srv.Close()
	c := New(Options{LocalMode: true, Now: func() time.Time { return now }})
	w := hook(srv.URL + "/hook")
	w.BasicAuth = &BasicAuth{Username: "ct", Password: "s3cr3t"}
	res := c.Send(context.Background(), w)
	if !res.Delivered() || res.StatusCode != 204 {
		t.Fatalf("result %+v", res)
	}
	h := got.Header
	if got.Method != "POST" || string(body) != `{"id":"dlv_1"}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %q %v", got.Method, body, h)
	}
	if h.Get("Date") != "Fri, 27 Nov 2026 10:55:03 GMT" {
		t.Errorf("Date = %q", h.Get("Date"))
	}
	if !signature.Verify(secret, h.Get("Date"), body, h.Get("X-Ct-Hmac-Sha256")) {
		t.Error("X-Ct-Hmac-Sha256 does not verify")
	}
	if h.Get("Webhook-Signature") != signature.StandardSign(secret, "dlv_1", now.Unix(), body) || h.Get("Webhook-Timestamp") != "1795776903" || h.Get("Webhook-Id") != "dlv_1" {
		t.Errorf("standard webhooks headers %v", h)
	}
	if h.Get("X-Ct-Event") != "comment" || h.Get("X-Ct-Webhook-Id") != "ep_1" || h.Get("X-Ct-Delivery-Id") != "dlv_1" || h.Get("X-Ct-Attempt") != "2" || h.Get("User-Agent") != UserAgent {
		t.Errorf("ct headers %v", h)
	}
	user, pass, ok := got.BasicAuth()
	if !ok || user != "ct" || pass != "s3cr3t" {
		t.Errorf("basic auth %q %q %v", user, pass, ok)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestSendFailures(t *testing.T) {
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write([]byte(strings.Repeat("e", 5000)))
	})
	mux.HandleFunc("/410", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/landing", http.StatusFound) })
	mux.HandleFunc("/landing", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		_ = conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := New(Options{LocalMode: true})
	for _, tc := range []struct {
		path   string
		status int
		err    string
	}{
		{"/500", 500, "receiver answered 500"},
		{"/410", 410, "receiver answered 410"},
		{"/redirect", 302, "redirects are not followed"},
		{"/reset", 0, "connection"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := c.Send(context.Background(), hook(srv.URL+tc.path))
			if res.Delivered() || res.StatusCode != tc.status || res.Err == nil || !strings.Contains(res.Err.Error(), tc.err) {
				t.Fatalf("result %+v, err %v", res, res.Err)
			}
			if len(res.ResponseBody) > MaxResponseBody {
				t.Errorf("kept %d bytes of the response", len(res.ResponseBody))
			}
			if strings.Contains(res.Err.Error(), srv.URL) {
				t.Errorf("error holds the URL: %v", res.Err)
			}
		})
	}
	if hits.Load() != 0 {
		t.Error("a redirect was followed")
	}
	if res := c.Send(context.Background(), hook(srv.URL+"/410")); !res.Gone() {
		t.Error("410 is not Gone")
	}
}

func TestSendGivesUpAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	res := New(Options{LocalMode: true}).Send(context.Background(), hook(srv.URL))
	if res.Delivered() || !strings.Contains(res.Err.Error(), "no response within 5s") {
		t.Fatalf("result %+v", res)
	}
	if res.Latency < Timeout-100*time.Millisecond || res.Latency > Timeout+2*time.Second {
		t.Errorf("latency %v, want about %v", res.Latency, Timeout)
	}
}

// TestGuardOutsideLocalMode: loopback and private targets are refused before
// any byte is sent, at URL check and at dial time (the address a name
// resolves to).
func TestGuardOutsideLocalMode(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := New(Options{})
	res := c.Send(context.Background(), hook(srv.URL))
	if !res.Refused() || res.Delivered() {
		t.Fatalf("loopback target not refused: %+v", res)
	}
	dial := c.tr.DialContext
	for _, addr := range []string{"127.0.0.1:80", "localhost:443", "[::1]:443", "169.254.169.254:80", "10.0.0.1:443", "93.184.216.34:8080"} {
		conn, err := dial(context.Background(), "tcp", addr)
		if conn != nil {
			conn.Close()
		}
		var te *target.Error
		if !errors.As(err, &te) {
			t.Errorf("dial %s: %v, want a target refusal", addr, err)
		}
	}
	if hits.Load() != 0 {
		t.Error("a refused target received a request")
	}
}

func TestBasicAuthHeaderFormat(t *testing.T) {
	h := http.Header{}
	SetHeaders(h, Webhook{Secret: secret, BasicAuth: &BasicAuth{Username: "ct", Password: "s3cr3t"}}, time.Unix(0, 0))
	if h.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("ct:s3cr3t")) {
		t.Errorf("Authorization = %q", h.Get("Authorization"))
	}
}
