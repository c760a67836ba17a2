// Package awstest connects tests to the local AWS emulator and to the test
// stack that `make test` deploys there from template.yaml. A test that needs
// the emulator fails, never skips, when it is missing: a skipped check is not a
// passing one.
package awstest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/customerthermometer/webhooks/shared/awsconn"
)

// DefaultEndpoint is where the local emulator listens.
const DefaultEndpoint = "http://127.0.0.1:4566"

// Stack is what provision.py wrote about a deployed stack.
type Stack struct {
	StackName string
	Outputs   map[string]string
	Functions map[string]struct {
		FunctionName string
		Timeout      int
		MemorySize   int
		Environment  map[string]string
	}
	EventSourceMappings []struct {
		Function                       string
		EventSourceArn                 string
		BatchSize                      int
		MaximumBatchingWindowInSeconds int
		FunctionResponseTypes          []string
		MaximumConcurrency             int
		VisibilityTimeout              int // the template's, for the mapping's queue
	}
}

// Endpoint is AWS_ENDPOINT_URL, or the local emulator's address.
func Endpoint() string {
	if e := os.Getenv("AWS_ENDPOINT_URL"); e != "" {
		return e
	}
	return DefaultEndpoint
}

// Config returns an SDK configuration for the emulator, failing t when
// nothing answers there.
func Config(t testing.TB) aws.Config {
	t.Helper()
	ep := Endpoint()
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatalf("AWS_ENDPOINT_URL %q: %v", ep, err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		t.Fatalf("no AWS emulator at %s (%v): run the tests with `make test`, which starts one", ep, err)
	}
	conn.Close()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithBaseEndpoint(ep),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	awsconn.Use(&cfg)
	return cfg
}

// LoadStack reads the test stack's description: $WEBHOOKS_TEST_STACK, or
// .local/test/stack.json at the repository root.
func LoadStack(t testing.TB) Stack {
	t.Helper()
	path := os.Getenv("WEBHOOKS_TEST_STACK")
	if path == "" {
		path = filepath.Join(RepoRoot(t), ".local", "test", "stack.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("test stack: %v: run the tests with `make test`, which deploys it", err)
	}
	var st Stack
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("test stack %s: %v", path, err)
	}
	return st
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// IsOperation reports whether r asks for operation op ("PutItem"), as AWS's
// JSON protocols (DynamoDB, SQS, KMS) name it in X-Amz-Target.
func IsOperation(r *http.Request, op string) bool {
	return strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+op)
}

// ErrorAnswer is the answer AWS's JSON protocols give r when it fails with
// status and error code, with the checksum DynamoDB's clients check: for
// an HTTP client in a test that stands in for AWS going wrong.
func ErrorAnswer(r *http.Request, status int, code, message string) *http.Response {
	body := fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":%q}`, code, message)
	return &http.Response{StatusCode: status, Request: r,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}, "X-Amz-Crc32": {fmt.Sprint(crc32.ChecksumIEEE([]byte(body)))}},
		Body:   io.NopCloser(strings.NewReader(body))}
}
