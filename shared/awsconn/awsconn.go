// Package awsconn is how the service's AWS clients connect: the SDK's
// default HTTP client, with connections that stay open between requests,
// and its retries without a client-side quota.
package awsconn

import (
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// Client is the AWS SDK's default HTTP client with request bodies handed
// to net/http as plain readers.
//
// The SDK closes a request's body as soon as the response has arrived.
// When a body is too large for net/http's write buffer (about 4 KB with
// the headers), its end reaches the server before net/http has made its
// last read of it, which checks that it holds no more than its
// Content-Length; if the response has arrived by then, the SDK's closed
// body answers that read through WriteTo with io.EOF, net/http takes that
// for a failed write and closes the connection, and the next request opens
// a new one: in AWS, a TLS handshake. Through Read, the same read of a
// closed body is a clean end.
//
// The service clients (DynamoDB, SQS, KMS) adjust only an HTTP client of
// the SDK's own type to an AWS_DEFAULTS_MODE other than the default
// "legacy"; through a Client they use the SDK's default timeouts, as they
// do in that mode.
type Client struct{ next aws.HTTPClient }

// answerTimeout is how long a request waits for AWS to begin its answer.
// The SDK's client waits as long as the request's context allows, so one
// stalled connection could hold a delivery batch until its invocation times
// out; cut off, the request is retried by the SDK like any timeout. AWS
// answers these services' requests in milliseconds.
var answerTimeout = 10 * time.Second

// Wrap returns a Client over next, or over the SDK's default HTTP client
// when next is nil. An SDK client (nil, or one LoadDefaultConfig made) waits
// at most answerTimeout for an answer to begin.
func Wrap(next aws.HTTPClient) Client {
	timeout := func(tr *http.Transport) { tr.ResponseHeaderTimeout = answerTimeout }
	switch c := next.(type) {
	case nil:
		next = awshttp.NewBuildableClient().WithTransportOptions(timeout)
	case *awshttp.BuildableClient:
		next = c.WithTransportOptions(timeout)
	}
	return Client{next: next}
}

// Use makes the clients made from cfg send through a Client over the HTTP
// client cfg has (call it after config.LoadDefaultConfig, which adds a
// custom CA bundle to the SDK's own client), and retry as Retryer does.
func Use(cfg *aws.Config) {
	cfg.HTTPClient = Wrap(cfg.HTTPClient)
	cfg.Retryer = Retryer(cfg.RetryMode)
}

// Retryer is the SDK's retryer for mode (standard unless AWS_RETRY_MODE
// says adaptive) with DynamoDB's own defaults, 4 attempts from a 25 ms base
// delay (a retryer set here replaces the one each client would make for
// itself; AWS_MAX_ATTEMPTS still applies), and without the SDK's
// client-side retry quota. That quota, 500 tokens a client with 14 spent
// per retry, runs out within seconds when AWS fails every request for a
// while, and from then on the SDK gives up at the first error, without
// backoff, until hundreds of requests have succeeded: every hiccup
// afterwards reaches the service as a failure, and a delivery task that
// fails after its webhook was sent is sent again. Each execution
// environment runs one invocation at a time, so its retries are bounded
// without the quota.
func Retryer(mode aws.RetryMode) func() aws.Retryer {
	options := func(o *retry.StandardOptions) {
		o.RateLimiter = ratelimit.None
		o.MaxAttempts = 4
		o.BaseDelay = 25 * time.Millisecond
	}
	if mode == aws.RetryModeAdaptive {
		return func() aws.Retryer {
			return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) { o.StandardOptions = append(o.StandardOptions, options) })
		}
	}
	return func() aws.Retryer { return retry.NewStandard(options) }
}

// Do sends r.
func (c Client) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.WithContext(r.Context())
		r.Body = readCloser{r.Body}
	}
	return c.next.Do(r)
}

// readCloser is a body with only Read and Close.
type readCloser struct{ io.ReadCloser }
