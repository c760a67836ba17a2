package awsconn_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/awsconn"
)

// TestLargeRequestsKeepTheirConnection: requests whose bodies are too large
// for net/http's write buffer, answered at once, go over one connection.
// With the SDK's own client, 19 to 60 of 500 opened a new connection here,
// the previous one closed after a "failed" write. net/http may still open
// another when its writer is slow to finish (it waits 50 ms), which a busy
// machine can cause: up to three pass.
func TestLargeRequestsKeepTheirConnection(t *testing.T) {
	var conns, requests atomic.Int64
	var smallest atomic.Int64
	smallest.Store(1 << 30)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		requests.Add(1)
		if n < smallest.Load() {
			smallest.Store(n)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amz-Crc32", fmt.Sprint(crc32.ChecksumIEEE([]byte(`{}`))))
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), HTTPClient: awsconn.Wrap(nil),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	var writes []types.WriteRequest
	for i := range 10 {
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"pk":   &types.AttributeValueMemberS{Value: fmt.Sprint("DELIVERY#acc_1#dlv_", i)},
			"body": &types.AttributeValueMemberS{Value: strings.Repeat("x", 500)},
		}}})
	}
	const calls = 500
	for range calls {
		if _, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{"deliveries": writes},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if requests.Load() != calls || smallest.Load() < 5000 {
		t.Fatalf("%d requests of at least %d bytes, want %d of more than 5,000", requests.Load(), smallest.Load(), calls)
	}
	if n := conns.Load(); n > 3 {
		t.Errorf("%d requests opened %d connections, want one (at most three)", calls, n)
	}
}

// TestRequestWithoutBody: a request with no body goes through unchanged.
func TestRequestWithoutBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			t.Errorf("content length %d", r.ContentLength)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := awsconn.Wrap(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status %d", resp.StatusCode)
	}
}

type recording struct{ bodies []any }

func (r *recording) Do(req *http.Request) (*http.Response, error) {
	r.bodies = append(r.bodies, req.Body)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// TestUseKeepsTheConfiguredClient: Use wraps the client the configuration
// already has (one LoadDefaultConfig set up with a custom CA bundle, say)
// rather than replacing it, and hides only the body's WriteTo.
func TestUseKeepsTheConfiguredClient(t *testing.T) {
	rec := &recording{}
	cfg := aws.Config{HTTPClient: rec}
	awsconn.Use(&cfg)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", strings.NewReader("{}"))
	req.Body = io.NopCloser(strings.NewReader("{}")) // has WriteTo
	if _, err := cfg.HTTPClient.Do(req); err != nil {
		t.Fatal(err)
	}
	if len(rec.bodies) != 1 {
		t.Fatalf("configured client got %d requests, want 1", len(rec.bodies))
	}
	if _, ok := rec.bodies[0].(io.WriterTo); ok {
		t.Error("the body still offers WriteTo")
	}
	if b, _ := io.ReadAll(rec.bodies[0].(io.Reader)); string(b) != "{}" {
		t.Errorf("body %q", b)
	}
}

// TestRetriesOutlastAnOutage: after AWS has failed every request for a
// while, a client of the service still retries the next failure (the SDK's
// default retry quota, spent by the outage, made it give up at once).
func TestRetriesOutlastAnOutage(t *testing.T) {
	var outage atomic.Bool
	outage.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if outage.Load() || strings.HasPrefix(r.Header.Get("Amz-Sdk-Request"), "attempt=1;") {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ServiceUnavailable","message":"try again"}`))
			return
		}
		w.Header().Set("X-Amz-Crc32", fmt.Sprint(crc32.ChecksumIEEE([]byte(`{}`))))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	awsconn.Use(&cfg)
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	get := func() error {
		_, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("t"),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}})
		return err
	}
	// The outage: every attempt of 25 requests fails.
	var wg sync.WaitGroup
	for range 25 {
		wg.Go(func() { _ = get() })
	}
	wg.Wait()
	// Over: each request now fails once and succeeds when retried.
	outage.Store(false)
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { errs[i] = get() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("a request after the outage: %v", err)
		}
	}
}

// TestRetriesAsDynamoDBDoes: a client of the service makes DynamoDB's four
// attempts at a request AWS keeps failing, as the DynamoDB client does on
// its own, not the SDK's generic three.
func TestRetriesAsDynamoDBDoes(t *testing.T) {
	var attempts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"down"}`))
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	awsconn.Use(&cfg)
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	_, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("t"),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}})
	if err == nil || attempts.Load() != 4 {
		t.Errorf("%d attempts (%v), want 4 and an error", attempts.Load(), err)
	}
}

// TestAStalledAnswerIsRetried: a request AWS does not begin to answer is
// cut off and retried, instead of waiting as long as its context allows.
func TestAStalledAnswerIsRetried(t *testing.T) {
	defer awsconn.SetAnswerTimeout(300 * time.Millisecond)()
	var requests atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-release // the first connection stalls
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amz-Crc32", fmt.Sprint(crc32.ChecksumIEEE([]byte(`{}`))))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the stalled handler
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	awsconn.Use(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}})
	if err != nil || requests.Load() != 2 {
		t.Errorf("after a stalled answer: %v, %d requests", err, requests.Load())
	}
}
