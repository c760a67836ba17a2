// Package dispatch sends one webhook request (API.md section 3) and reports
// what happened. The delivery function and the API's test fire both use it,
// so every webhook is built, signed, guarded and timed the same way.
//
// Defences: the address actually dialled is checked (target.CheckAddr in the
// dialer's Control hook) so DNS rebinding cannot reach private addresses;
// redirects are never followed; no proxy from the environment is used; the
// whole exchange is limited to Timeout, a 101 answer included; at most 1 KiB
// of the response body is kept, as printable UTF-8, and at most 64 KiB read;
// an error message quotes at most 256 bytes of a receiver's answer.
package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/signature"
	"github.com/customerthermometer/webhooks/shared/target"
)

// UserAgent identifies the service to receivers.
const UserAgent = "CustomerThermometer-Webhooks/1.0"

// Timeout is the most a receiver gets to answer (API.md: 5 seconds).
const Timeout = 5 * time.Second

// MaxResponseBody is how much of a receiver's answer is kept for the log.
const MaxResponseBody = 1024

// drainLimit is how much of a response is read so its connection can be
// reused; larger bodies are abandoned with their connection.
const drainLimit = 64 << 10

// MaxRetryAfter is the longest Retry-After a Result keeps: a day, beyond
// any delay the retry schedule allows.
const MaxRetryAfter = 24 * time.Hour

// BasicAuth holds the endpoint's credentials.
type BasicAuth struct {
	Username string
	Password string
}

// Webhook is one attempt to send.
type Webhook struct {
	URL        string
	Secret     string
	BasicAuth  *BasicAuth
	EndpointID string
	DeliveryID string
	Event      string // rating, comment, driver or test
	Attempt    int
	Body       []byte
}

// Result is what one attempt came to.
type Result struct {
	StatusCode   int // 0 when no response arrived
	Latency      time.Duration
	ResponseBody []byte // at most MaxResponseBody bytes
	// RetryAfter is how long a receiver that answered 429 or 503 asked the
	// sender to wait before trying again, by its Retry-After header
	// (seconds, or a date after the attempt's), at most MaxRetryAfter; zero
	// when it did not say, or said something unreadable.
	RetryAfter time.Duration
	// Err is nil exactly when the webhook was delivered (2xx within Timeout).
	// Its message is fit to show the endpoint's owner: it never holds the
	// secret, the password or the URL.
	Err error
}

// Attempt is r as the delivery log records it: attempt number n, sent at.
func (r Result) Attempt(n int, at time.Time) domain.Attempt {
	a := domain.Attempt{Number: n, At: at, StatusCode: r.StatusCode, LatencyMS: r.Latency.Milliseconds(), ResponseBody: string(r.ResponseBody)}
	if r.Err != nil {
		a.Error = r.Err.Error()
	}
	return a
}

// Delivered reports whether the receiver accepted the webhook.
func (r Result) Delivered() bool { return r.Err == nil }

// Gone reports whether the receiver answered 410 Gone: stop retrying and
// disable the endpoint.
func (r Result) Gone() bool { return r.StatusCode == http.StatusGone }

// Refused reports whether the target was refused before anything was sent.
func (r Result) Refused() bool {
	var te *target.Error
	return errors.As(r.Err, &te)
}

// Client sends webhooks. It is safe for concurrent use and keeps connections
// alive between sends.
type Client struct {
	// tr sends each request as it is: a webhook is one request, and a
	// redirect is the receiver's answer, never followed (following one could
	// lead to a private address or leak the signed body). Going straight to
	// the transport also spares every send http.Client's redirect
	// bookkeeping (a copy of all headers per request).
	tr        *http.Transport
	localMode bool
	now       func() time.Time
}

// Options configure a Client.
type Options struct {
	// LocalMode allows loopback targets on any port (development only).
	LocalMode bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// TLSConfig replaces the default TLS settings (tests trust their own
	// certificate authority with it); nil keeps the system's.
	TLSConfig *tls.Config
	// Resolver replaces the system's DNS resolver; nil keeps it.
	Resolver *net.Resolver
}

// New returns a Client.
func New(o Options) *Client {
	if o.Now == nil {
		o.Now = time.Now
	}
	dialer := &net.Dialer{
		Resolver:  o.Resolver,
		Timeout:   Timeout,
		KeepAlive: 30 * time.Second,
		// Control runs for every address the dialer is about to connect to,
		// after name resolution: the one place a guard sees the real target.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &target.Error{Reason: "the address the host name resolved to cannot be checked"}
			}
			return target.CheckAddr(ap, o.LocalMode)
		},
	}
	tr := &http.Transport{
		Proxy:             nil, // never a proxy from the environment
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true,
		TLSClientConfig:   o.TLSConfig,
		// The whole exchange is bounded by Send's context; per-phase
		// timeouts would add timers to every request and bound nothing more.
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        60 * time.Second,
	}
	return &Client{
		tr:        tr,
		localMode: o.LocalMode,
		now:       o.Now,
	}
}

// Send makes one attempt. It never panics on a bad target or answer; every
// failure is in Result.Err.
func (c *Client) Send(ctx context.Context, w Webhook) Result {
	if problems := target.CheckURL(w.URL, c.localMode); len(problems) > 0 {
		return Result{Err: &target.Error{Reason: "target refused: url " + problems[0]}}
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, nil)
	if err != nil {
		return Result{Err: errors.New("the endpoint URL cannot be requested")}
	}
	now := c.now().UTC()
	SetHeaders(req.Header, w, now)
	req.ContentLength = int64(len(w.Body))
	body := w.Body
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Body, _ = req.GetBody()

	start := time.Now()
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return Result{Latency: time.Since(start), Err: describe(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Nothing asked for an upgrade. Its body is the bare connection,
		// which the request's context no longer watches: reading it would
		// wait for as long as the receiver kept the connection open.
		return Result{StatusCode: resp.StatusCode, Latency: time.Since(start),
			Err: errors.New("receiver answered 101 Switching Protocols to a request that asked for no upgrade")}
	}
	// Whatever the transport does with the body, closing it when the
	// context ends stops every read below: Timeout bounds the whole send.
	defer context.AfterFunc(ctx, func() { resp.Body.Close() })()
	// A slow or broken body after a 2xx status does not undo the delivery:
	// the status is the receiver's answer.
	kept, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	latency := time.Since(start)
	// Read a little more so the connection can be reused; a receiver that
	// streams forever is cut off by the context.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	res := Result{StatusCode: resp.StatusCode, Latency: latency, ResponseBody: printable(kept, MaxResponseBody)}
	switch {
	case resp.StatusCode < 100 || resp.StatusCode > 599:
		res.Err = fmt.Errorf("receiver answered an invalid status code %03d", resp.StatusCode)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Err = fmt.Errorf("receiver answered %d; redirects are not followed", resp.StatusCode)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		res.RetryAfter = retryAfter(resp.Header.Values("Retry-After"), now)
		res.Err = fmt.Errorf("receiver answered %d", resp.StatusCode)
		if res.RetryAfter > 0 {
			res.Err = fmt.Errorf("receiver answered %d with Retry-After %d s", resp.StatusCode, int64(res.RetryAfter/time.Second))
		}
	default:
		res.Err = fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return res
}

// retryAfter reads a Retry-After header (RFC 9110, section 10.2.3): a
// number of seconds, or an HTTP date taken against now, the attempt's time.
// It is zero for anything else (no header, several, a date already past,
// garbage), and at most MaxRetryAfter.
func retryAfter(values []string, now time.Time) time.Duration {
	if len(values) != 1 {
		return 0
	}
	v := strings.TrimSpace(values[0])
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		// Leading zeros are allowed (1*DIGIT); a number too long for an
		// int64 is past the cap in any case.
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0
	}
	return min(t.Sub(now).Round(time.Second), MaxRetryAfter)
}

// SetHeaders writes every header of a webhook request for an attempt made at
// now: content type, Date, both signatures, Basic Auth and the ids. The
// names are written in their canonical form directly (this runs for every
// attempt), each value in its own slot of one backing array.
func SetHeaders(h http.Header, w Webhook, now time.Time) {
	date := now.UTC().Format(http.TimeFormat)
	unix := now.Unix()
	v := make([]string, 12)
	set := func(i int, name, value string) { v[i] = value; h[name] = v[i : i+1 : i+1] }
	set(0, "Content-Type", "application/json")
	set(1, "Date", date)
	set(2, "User-Agent", UserAgent)
	set(3, "X-Ct-Hmac-Sha256", signature.Sign(w.Secret, date, w.Body))
	set(4, "X-Ct-Event", w.Event)
	set(5, "X-Ct-Webhook-Id", w.EndpointID)
	set(6, "X-Ct-Delivery-Id", w.DeliveryID)
	set(7, "X-Ct-Attempt", strconv.Itoa(w.Attempt))
	set(8, "Webhook-Id", w.DeliveryID)
	set(9, "Webhook-Timestamp", strconv.FormatInt(unix, 10))
	set(10, "Webhook-Signature", signature.StandardSign(w.Secret, w.DeliveryID, unix, w.Body))
	if w.BasicAuth != nil {
		set(11, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(w.BasicAuth.Username+":"+w.BasicAuth.Password)))
	}
}

// describe turns a transport error into a message for the endpoint's owner,
// without the URL (it may carry tokens) and without Go's wrapping.
func describe(err error) error {
	var te *target.Error
	if errors.As(err, &te) {
		return &target.Error{Reason: "target refused: " + te.Reason}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("no response within %s", Timeout)
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			// Worded as a name resolving to private addresses only is
			// (target.NoPublicAddress).
			return &target.Error{Reason: "target refused: " + target.NoPublicAddress}
		}
		return fmt.Errorf("dns: lookup of %s failed", dnsErr.Name)
	case errors.As(err, &certErr):
		return quoting("tls: certificate not trusted: ", certErr.Err)
	case errors.As(err, &recordErr):
		return errors.New("tls: the receiver did not answer with TLS")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, syscall.ECONNRESET):
		return errors.New("connection reset by the receiver")
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("connection closed by the receiver before a response")
	case errors.As(err, &opErr):
		return quoting("connection failed: ", opErr.Err)
	default:
		// Go's parse errors quote the receiver's bad line, which can be
		// tens of kilobytes of anything.
		return quoting("request failed: ", err)
	}
}

// quoting is an error saying what + err, whose text may quote the
// receiver's bytes: bounded and printable.
func quoting(what string, err error) error {
	return errors.New(string(printable([]byte(what+err.Error()), maxErrorText)))
}

// maxErrorText is the most of an error message that can hold a receiver's
// bytes (a certificate's names, a malformed status line) that is kept.
const maxErrorText = 256

// printable returns at most limit bytes of b as valid UTF-8 without control
// characters: a receiver's bytes on their way to the delivery log, the API
// and the function's log lines. Invalid bytes and control characters other
// than tab, line feed and carriage return become U+FFFD, and a character
// the limit would cut in two is left out. b is returned as it is when it
// needs none of that, which is the common case.
func printable(b []byte, limit int) []byte {
	clean := len(b) <= limit
	for i := 0; clean && i < len(b); i++ {
		c := b[i]
		clean = c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r'
	}
	if clean {
		return b
	}
	if len(b) >= limit {
		// b may be the first limit bytes of something longer: a character
		// it cuts short is left out, not shown as U+FFFD.
		start := len(b) - 1
		for start > 0 && start > len(b)-utf8.UTFMax && !utf8.RuneStart(b[start]) {
			start--
		}
		if !utf8.FullRune(b[start:]) {
			b = b[:start]
		}
	}
	out := make([]byte, 0, min(len(b), limit))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r == utf8.RuneError && size <= 1 || r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r >= 0x7f && r < 0xa0 {
			r = utf8.RuneError
		}
		if len(out)+utf8.RuneLen(r) > limit {
			break
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
