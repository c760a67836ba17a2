// Package awsconn is the HTTP client the service's AWS clients share: the
// SDK's default one, with connections that stay open between requests.
package awsconn

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
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

// Wrap returns a Client over next, or over the SDK's default HTTP client
// when next is nil.
func Wrap(next aws.HTTPClient) Client {
	if next == nil {
		next = awshttp.NewBuildableClient()
	}
	return Client{next: next}
}

// Use makes the clients made from cfg send through a Client over the HTTP
// client cfg has (call it after config.LoadDefaultConfig, which adds a
// custom CA bundle to the SDK's own client).
func Use(cfg *aws.Config) { cfg.HTTPClient = Wrap(cfg.HTTPClient) }

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
