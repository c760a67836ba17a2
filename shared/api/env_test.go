package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/cursor"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/store"
)

// lockedBuffer collects log lines written from concurrent requests.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is the handler over the real store, KMS and sender against the
// emulator's test stack, with one account and its key.
type env struct {
	t       *testing.T
	h       http.Handler
	st      *store.Store
	key     string
	account string
	logs    *lockedBuffer
	deps    Deps
}

func uniqueAccount() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "acc_api_" + hex.EncodeToString(b)
}

func newEnv(t *testing.T, change ...func(*Deps)) *env {
	t.Helper()
	stack := awstest.LoadStack(t)
	cfg := awstest.Config(t)
	st := store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	sealer := kms.New(awskms.NewFromConfig(cfg), stack.Outputs["SecretsKeyId"])
	ctx := context.Background()
	ck, err := st.ServiceKey(ctx, "cursor", sealer)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := cursor.New(ck)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	d := Deps{
		Keys: st, Endpoints: st, Secrets: sealer, Cursors: codec, Counter: st, RateLimitPerMinute: 10000,
		Sender:    dispatch.New(dispatch.Options{LocalMode: true}),
		SourceIPs: []netip.Addr{netip.MustParseAddr("203.0.113.7")}, LocalMode: true,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	}
	for _, c := range change {
		c(&d)
	}
	e := &env{t: t, st: st, account: uniqueAccount(), logs: logs, deps: d}
	e.h = New(d)
	e.key = e.newKey(e.account)
	return e
}

func (e *env) newKey(account string) string {
	k := apikey.New()
	if err := e.st.CreateAPIKey(context.Background(), account, apikey.Hash(k), time.Now()); err != nil {
		e.t.Fatal(err)
	}
	return k
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %s", r.body)
	}
	return m
}

func (r resp) code() string {
	var e errorBody
	_ = json.Unmarshal(r.body, &e)
	return string(e.Error.Code)
}

// do sends a request; body "" sends none, and a JSON content type is set for
// any other body unless headers say otherwise.
func (e *env) do(method, path, key, body string, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// receiver is a webhook receiver on this machine recording what it gets.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	status   int
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{status: status}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests, rc.bodies = append(rc.requests, r), append(rc.bodies, b)
		status := rc.status
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) last() (*http.Request, []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.requests) == 0 {
		return nil, nil
	}
	return rc.requests[len(rc.requests)-1], rc.bodies[len(rc.bodies)-1]
}

// failingKeys stands in for a key store that is down.
type failingKeys struct{}

func (failingKeys) AccountByKeyHash(context.Context, string) (string, error) {
	return "", errors.New("dynamodb: connection refused to table secret-internal-name")
}
