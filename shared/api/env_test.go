package api

import (
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
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/cursor"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/logcheck"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

// env is the handler over the real store, KMS and sender against the
// emulator's test stack, with one account and its key.
type env struct {
	t        *testing.T
	h        http.Handler
	st       *store.Store
	key      string
	account  string
	logs     *logcheck.Buffer
	deps     Deps
	sqs      *sqs.Client
	tasksURL string
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
	logs := &logcheck.Buffer{}
	sq := sqs.NewFromConfig(cfg)
	qname := "api-test-tasks-" + uniqueAccount()
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &qname})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sq.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	d := Deps{
		Keys: st, Endpoints: st, Secrets: sealer, Cursors: codec, Counter: st, RateLimitPerMinute: 10000,
		Deliveries: st, Tasks: &delivery.Enqueuer{Queue: queue.New(sq), QueueURL: *q.QueueUrl},
		Sender:    dispatch.New(dispatch.Options{LocalMode: true}),
		SourceIPs: []netip.Addr{netip.MustParseAddr("203.0.113.7")}, LocalMode: true, Retention: time.Hour,
		Logger: slog.New(slog.NewJSONHandler(io.MultiWriter(logs, &suiteLogs), nil)),
	}
	for _, c := range change {
		c(&d)
	}
	envs.Add(1)
	e := &env{t: t, st: st, account: uniqueAccount(), logs: logs, deps: d, sqs: sq, tasksURL: *q.QueueUrl}
	e.h = New(d)
	e.key = e.newKey(e.account)
	return e
}

func (e *env) newKey(account string) string {
	k := apikey.New()
	remember(k, apikey.Hash(k))
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
		rememberJSON([]byte(body))
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
	// Every credential sent counts as a secret for the log check, keys
	// the service never issued included: a log line naming a refused key
	// leaks it as much as an accepted one.
	if auth := r.Header.Get("Authorization"); auth != "" {
		_, cred, _ := strings.Cut(auth, " ")
		remember(auth, cred)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	rememberJSON(w.Body.Bytes())
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
		remember(r.Header.Get("X-Ct-Hmac-Sha256"), r.Header.Get("Webhook-Signature"), r.Header.Get("Authorization"))
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

// delivery stores a delivery of account to endpoint with its payload and
// attempts, created at created.
func (e *env) delivery(account, endpoint, status string, created time.Time, attempts int) domain.Delivery {
	e.t.Helper()
	ctx := context.Background()
	d := domain.Delivery{
		ID: ids.Derived("dlv", account, "evt_"+uniqueAccount(), endpoint), AccountID: account, EndpointID: endpoint,
		EndpointURL: "https://example.com/hook", EventID: "evt_x", Event: "comment", Trigger: "comment.red", ThermometerID: "th_42",
		Status: status, AttemptCount: attempts, RoundStart: 1, LastStatusCode: 500, LastError: "receiver answered 500",
		CreatedAt: created, UpdatedAt: created,
	}
	if _, _, err := e.st.CreateDelivery(ctx, d, time.Now().Add(time.Hour)); err != nil {
		e.t.Fatal(err)
	}
	items := []store.LogItem{{AccountID: account, DeliveryID: d.ID, Payload: []byte(`{"id":"` + d.ID + `","event":"comment"}`), Expires: time.Now().Add(time.Hour)}}
	for n := 1; n <= attempts; n++ {
		items = append(items, store.LogItem{AccountID: account, DeliveryID: d.ID, Expires: time.Now().Add(time.Hour),
			Attempt: &domain.Attempt{Number: n, At: created.Add(time.Duration(n) * time.Second), StatusCode: 500, LatencyMS: 12, Error: "receiver answered 500", ResponseBody: "oops"}})
	}
	if err := e.st.PutLogItems(ctx, items); err != nil {
		e.t.Fatal(err)
	}
	return d
}
