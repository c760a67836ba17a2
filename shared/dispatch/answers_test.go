package dispatch

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// rawReceiver answers the first request made to it with head, written as it
// is, then keeps the connection open until the test ends: the answers no
// well-behaved server library would send.
func rawReceiver(t *testing.T, head string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if r, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		_, _ = io.WriteString(c, head)
		<-done
	}()
	return "http://" + ln.Addr().String() + "/hook"
}

// sendWithin sends w and fails the test if Send has not returned well after
// Timeout: a hang is the defect these tests look for, not a slow answer.
func sendWithin(t *testing.T, ctx context.Context, w Webhook) Result {
	t.Helper()
	got := make(chan Result, 1)
	go func() { got <- New(Options{LocalMode: true}).Send(ctx, w) }()
	select {
	case res := <-got:
		return res
	case <-time.After(Timeout + 10*time.Second):
		t.Fatalf("Send still blocked %v after it began", Timeout+10*time.Second)
		return Result{}
	}
}

// TestAnUpgradeAnswerIsRefused: a 101 answer hands the bare connection over,
// which neither the timeout nor the caller's context watched, so a receiver
// that answered 101 and kept quiet held its whole batch until the function
// timed out.
func TestAnUpgradeAnswerIsRefused(t *testing.T) {
	url := rawReceiver(t, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nsome bytes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res := sendWithin(t, ctx, hook(url))
	if res.Delivered() || res.StatusCode != 101 || !strings.Contains(res.Err.Error(), "101") {
		t.Fatalf("result %+v", res)
	}
}

// TestAReceiversTextIsBoundedAndPrintable: whatever a receiver sends back,
// what reaches the log (the error and the response body) is valid UTF-8,
// free of control characters and within its limit.
func TestAReceiversTextIsBoundedAndPrintable(t *testing.T) {
	for _, tc := range []struct {
		name, head string
		status     int
		body       string // the response body that must be kept, when not ""
	}{
		{name: "a status line of 65,400 NULs", head: strings.Repeat("\x00", 65400) + "\r\n\r\n"},
		{name: "a malformed header line", head: "HTTP/1.1 200 OK\r\n" + strings.Repeat("x", 60000) + "\r\n\r\n"},
		{name: "a malformed Content-Length", head: "HTTP/1.1 200 OK\r\nContent-Length: " + strings.Repeat("9z", 20000) + "\r\n\r\n"},
		{name: "a character cut by the limit", head: "HTTP/1.1 500 x\r\nContent-Length: 1026\r\n\r\n" + strings.Repeat("a", 1023) + "€",
			status: 500, body: strings.Repeat("a", 1023)},
		{name: "a four-byte character cut by the limit", head: "HTTP/1.1 500 x\r\nContent-Length: 1026\r\n\r\n" + strings.Repeat("a", 1021) + "😀\x01",
			status: 500, body: strings.Repeat("a", 1021)},
		{name: "invalid UTF-8 and escapes", head: "HTTP/1.1 500 x\r\nContent-Length: 12\r\n\r\nok\xff\xfe\x1b[2J\x00\tz\n",
			status: 500, body: "ok\ufffd\ufffd\ufffd[2J\ufffd\tz\n"},
		{name: "invalid UTF-8 filling the limit", head: "HTTP/1.1 500 x\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("\xff", 1024),
			status: 500, body: strings.Repeat("\ufffd", 341)},
		{name: "a clean body is kept as it is", head: "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":\"é\"}",
			status: 200, body: `{"ok":"é"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := sendWithin(t, context.Background(), hook(rawReceiver(t, tc.head)))
			a := res.Attempt(1, time.Now())
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d (%v)", res.StatusCode, tc.status, res.Err)
			}
			if tc.body != "" && a.ResponseBody != tc.body {
				t.Errorf("kept %q, want %q", a.ResponseBody, tc.body)
			}
			for what, s := range map[string]string{"error": a.Error, "response body": a.ResponseBody} {
				if !utf8.ValidString(s) {
					t.Errorf("%s is not valid UTF-8: %q", what, s)
				}
				if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r >= 0x7f && r < 0xa0 }) {
					t.Errorf("%s holds a control character: %q", what, s)
				}
			}
			if len(a.Error) > maxErrorText {
				t.Errorf("error holds %d bytes: %.80q…", len(a.Error), a.Error)
			}
			if len(a.ResponseBody) > MaxResponseBody {
				t.Errorf("response body holds %d bytes", len(a.ResponseBody))
			}
		})
	}
}

// TestAnInvalidStatusCodeIsNotTakenForNoAnswer: "000" parses as status 0,
// which the log keeps for "no response"; the error says what came.
func TestAnInvalidStatusCodeIsNotTakenForNoAnswer(t *testing.T) {
	res := sendWithin(t, context.Background(), hook(rawReceiver(t, "HTTP/1.1 000 x\r\nContent-Length: 0\r\n\r\n")))
	if res.Delivered() || res.Err == nil || !strings.Contains(res.Err.Error(), "invalid status code 000") {
		t.Fatalf("result %+v", res)
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"", 10, ""},
		{"plain", 10, "plain"},
		{"plain text", 5, "plain"},
		{"héllo", 2, "h"},
		{"héllo", 3, "hé"},
		{"\x7f\u0085\u00a0", 10, "\ufffd\ufffd\u00a0"},
		{"\ufffd", 10, "\ufffd"},
		{"a\xe2\x82", 10, "a\ufffd\ufffd"},
		{"a\xe2\x82", 3, "a"},
		{strings.Repeat("x", 1021) + "\xf0\x9f\x98", 1024, strings.Repeat("x", 1021)},
		{strings.Repeat("x", 1020) + "\xf0\x9f\x98\x80", 1024, strings.Repeat("x", 1020) + "😀"},
		{strings.Repeat("\xff", 10), 10, strings.Repeat("\ufffd", 3)},
	} {
		if got := string(printable([]byte(tc.in), tc.limit)); got != tc.want {
			t.Errorf("printable(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

// TestARetryAfterIsRead: a receiver that answers 429 or 503 may say how long
// to leave it alone, in seconds or as an HTTP date (RFC 9110, section
// 10.2.3). Send keeps that wait, at most MaxRetryAfter, and names it in the
// error; anything else, on any other status, is no wait at all.
func TestARetryAfterIsRead(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		status, err := strconv.Atoi(r.URL.Query().Get("status"))
		if err != nil {
			status = http.StatusServiceUnavailable
		}
		for _, v := range r.URL.Query()["ra"] {
			w.Header().Add("Retry-After", v)
		}
		w.WriteHeader(status)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := New(Options{LocalMode: true, Now: func() time.Time { return now }})
	for _, tc := range []struct {
		query string
		want  time.Duration
		err   string
	}{
		{"ra=120", 2 * time.Minute, "receiver answered 503 with Retry-After 120 s"},
		{"status=429&ra=30", 30 * time.Second, "receiver answered 429 with Retry-After 30 s"},
		{"ra=" + url.QueryEscape(now.Add(90*time.Minute).Format(http.TimeFormat)), 90 * time.Minute, "Retry-After 5400 s"},
		{"ra=" + url.QueryEscape(now.Add(48*time.Hour).Format(time.RFC850)), MaxRetryAfter, "Retry-After 86400 s"},
		{"ra=" + url.QueryEscape(now.Add(-time.Minute).Format(http.TimeFormat)), 0, "receiver answered 503"},
		{"ra=90000", 25 * time.Hour, ""},
		{"ra=99999999999999999999999", MaxRetryAfter, "Retry-After 86400 s"},
		{"ra=0", 0, "receiver answered 503"},
		{"ra=0000030", 30 * time.Second, "Retry-After 30 s"},
		{"ra=0000000", 0, "receiver answered 503"},
		{"ra=86400", MaxRetryAfter, "Retry-After 86400 s"},
		{"ra=86401", MaxRetryAfter, "Retry-After 86400 s"},
		{"ra=" + url.QueryEscape(" 45 "), 45 * time.Second, "Retry-After 45 s"},
		{"ra=" + url.QueryEscape(now.Add(time.Hour).Format(time.ANSIC)), time.Hour, "Retry-After 3600 s"},
		{"ra=-5", 0, "receiver answered 503"},
		{"ra=1.5", 0, "receiver answered 503"},
		{"ra=soon", 0, "receiver answered 503"},
		{"ra=10&ra=20", 0, "receiver answered 503"},
		{"", 0, "receiver answered 503"},
		{"status=500&ra=60", 0, "receiver answered 500"},
		{"status=302&ra=60", 0, "redirects are not followed"},
	} {
		res := c.Send(context.Background(), hook(srv.URL+"/?"+tc.query))
		want := min(tc.want, MaxRetryAfter)
		if res.RetryAfter != want || res.Delivered() {
			t.Errorf("%s: Retry-After read as %v, want %v", tc.query, res.RetryAfter, want)
		}
		if tc.err != "" && !strings.HasSuffix(res.Err.Error(), tc.err) {
			t.Errorf("%s: error %q, want it to end %q", tc.query, res.Err, tc.err)
		}
		if want == 0 && strings.Contains(res.Err.Error(), "Retry-After") {
			t.Errorf("%s: error %q names a wait it does not keep", tc.query, res.Err)
		}
	}
}
