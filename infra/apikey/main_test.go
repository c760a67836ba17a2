package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNothingAnswering: with the local stack stopped, make api-key says what
// to do rather than print the SDK's connection error.
func TestNothingAnswering(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	outputs := filepath.Join(t.TempDir(), "outputs.json")
	if err := os.WriteFile(outputs, []byte(`{"EndpointsTableName":"endpoints"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL", "http://"+addr)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("ENDPOINTS_TABLE", "")
	t.Setenv("STACK", "")
	err = run("acc_1", outputs)
	if err == nil || !strings.Contains(err.Error(), "make local") || !strings.Contains(err.Error(), addr) {
		t.Errorf("error %v, want one that says to start the local stack", err)
	}
}
