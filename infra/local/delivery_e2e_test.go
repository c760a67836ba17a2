package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/logcheck"
	"github.com/customerthermometer/webhooks/shared/payload"
	"github.com/customerthermometer/webhooks/shared/signature"
)

// e2eReceiver answers test fires with 200 and events as its script says
// (the last status repeats), recording each event request and whether the
// sender was still waiting when another receiver was reached.
type e2eReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	events   []*http.Request
	bodies   [][]byte
	script   []int
	hang     chan struct{} // events wait for it when set
	gaveUp   chan struct{} // closed when a hanging request's sender gave up
	giveOnce sync.Once
}

func newE2EReceiver(t *testing.T, script ...int) *e2eReceiver {
	rc := &e2eReceiver{script: script, gaveUp: make(chan struct{})}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rememberRequest(r)
		if r.Header.Get("X-Ct-Event") == payload.TestEvent {
			return
		}
		rc.mu.Lock()
		rc.events, rc.bodies = append(rc.events, r), append(rc.bodies, body)
		status := rc.script[min(len(rc.events), len(rc.script))-1]
		rc.mu.Unlock()
		if rc.hang != nil {
			select {
			case <-rc.hang:
			case <-r.Context().Done():
				rc.giveOnce.Do(func() { close(rc.gaveUp) })
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(func() {
		if rc.hang != nil {
			select {
			case <-rc.hang:
			default:
				close(rc.hang)
			}
		}
		rc.Close()
	})
	return rc
}

func (rc *e2eReceiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.events) }

func (rc *e2eReceiver) event(i int) (*http.Request, []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.events[i], rc.bodies[i]
}

type apiClient struct {
	t        *testing.T
	url, key string
}

func (c apiClient) call(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// endpoint registers, test-fires and links an endpoint; it returns its id
// and secret.
func (c apiClient) endpoint(url string, triggers string, basicAuth bool, thermometer string) (string, string) {
	c.t.Helper()
	ba := ""
	if basicAuth {
		ba = `,"basic_auth":{"username":"ct","password":"` + e2ePassword + `"}`
		e2eSecrets.Remember(e2ePassword)
	}
	status, ep := c.call("POST", "/v1/endpoints", fmt.Sprintf(`{"name":"e2e","url":%q,"triggers":%s%s}`, url, triggers, ba))
	if status != 201 {
		c.t.Fatalf("create: %d %v", status, ep)
	}
	id := ep["id"].(string)
	if status, res := c.call("POST", "/v1/endpoints/"+id+"/test", ""); status != 200 || res["delivered"] != true {
		c.t.Fatalf("test fire: %d %v", status, res)
	}
	if status, res := c.call("PUT", "/v1/endpoints/"+id+"/thermometers", fmt.Sprintf(`{"thermometers":[{"id":%q,"name":"T","type":"email"}]}`, thermometer)); status != 200 {
		c.t.Fatalf("link: %d %v", status, res)
	}
	e2eSecrets.Remember(ep["secret"].(string))
	return id, ep["secret"].(string)
}

// e2ePassword is the end-to-end endpoints' Basic Auth password.
const e2ePassword = "e2e-basic-pw"

// e2eSecrets is every secret, password, key and signature the end-to-end
// tests handle, for their log checks.
var e2eSecrets logcheck.Secrets

// rememberRequest remembers the credentials and signatures of a webhook.
func rememberRequest(r *http.Request) {
	_, basic, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	e2eSecrets.Remember(r.Header.Get("Authorization"), basic, r.Header.Get("X-Ct-Hmac-Sha256"),
		strings.TrimPrefix(r.Header.Get("Webhook-Signature"), "v1,"))
}

// events lists the deliveries of events at path, a listing of the log,
// leaving out the endpoints' test fires, which the log also records.
func (c apiClient) events(path string) []map[string]any {
	c.t.Helper()
	_, page := c.call("GET", path, "")
	data, _ := page["data"].([]any)
	var out []map[string]any
	for _, d := range data {
		if d, _ := d.(map[string]any); d != nil && d["event"] != payload.TestEvent {
			out = append(out, d)
		}
	}
	return out
}

func eventBody(id, account, typ, rating, thermometer string) string {
	return fmt.Sprintf(`{"version":1,"event_id":%q,"type":%q,"account_id":%q,"occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":%q,"name":"Support tickets","type":"email"},"response":{"id":"rsp_%s","rating":%q,"comment":"Took three days"}}`,
		id, typ, account, thermometer, id, rating)
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeliveryEndToEnd sends events with the AWS SDK into the local stack and
// follows them through the real bootstraps to receivers on this machine.
func TestDeliveryEndToEnd(t *testing.T) {
	awsCfg := awstest.Config(t)
	ls := startLocal(t, "1s,1s,1s") // four attempts a round
	account := "acc_e2e_dlv_" + fmt.Sprint(time.Now().UnixNano())
	api := apiClient{t: t, url: ls.outputs["ApiUrl"], key: ls.apiKey(t, account)}

	r1, r2, other := newE2EReceiver(t, 200), newE2EReceiver(t, 204), newE2EReceiver(t, 200)
	flaky, dead := newE2EReceiver(t, 500, 502, 200), newE2EReceiver(t, 500)
	hang, fast := newE2EReceiver(t, 200), newE2EReceiver(t, 200)
	hang.hang = make(chan struct{})

	e1, s1 := api.endpoint(r1.URL+"/one", `["comment.red"]`, true, "th_1")
	e2, s2 := api.endpoint(r2.URL+"/two", `["comment.*","rating.gold"]`, false, "th_1")
	api.endpoint(other.URL+"/trigger-mismatch", `["rating.*"]`, false, "th_1")
	api.endpoint(other.URL+"/link-mismatch", `["comment.red"]`, false, "th_2")
	eFlaky, _ := api.endpoint(flaky.URL, `["*"]`, false, "th_flaky")
	eDead, _ := api.endpoint(dead.URL, `["*"]`, false, "th_dead")
	api.endpoint(hang.URL, `["*"]`, false, "th_hang")
	api.endpoint(fast.URL, `["*"]`, false, "th_hang")

	client := sqs.NewFromConfig(awsCfg)
	queueURL := ls.outputs["ResponseEventsQueueUrl"]
	out, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &queueURL, Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String(eventBody("evt_e2e_a", account, "comment", "red", "th_1"))},
		{Id: aws.String("bad"), MessageBody: aws.String(`{"version":1,"event_id":"evt_e2e_bad","type":"rating"}`)},
		{Id: aws.String("b"), MessageBody: aws.String(eventBody("evt_e2e_b", account, "rating", "gold", "th_flaky"))},
		{Id: aws.String("c"), MessageBody: aws.String(eventBody("evt_e2e_c", account, "rating", "red", "th_dead"))},
		{Id: aws.String("d"), MessageBody: aws.String(eventBody("evt_e2e_d", account, "driver", "amber", "th_hang"))},
	}})
	if err != nil || len(out.Failed) > 0 {
		t.Fatalf("send: %v %v", err, out)
	}

	t.Run("an event reaches the matching endpoints only, signed", func(t *testing.T) {
		waitFor(t, "both matching receivers", 30*time.Second, func() bool { return r1.count() == 1 && r2.count() == 1 })
		for _, c := range []struct {
			rc     *e2eReceiver
			secret string
			ep     string
		}{{r1, s1, e1}, {r2, s2, e2}} {
			r, body := c.rc.event(0)
			if !signature.Verify(c.secret, r.Header.Get("Date"), body, r.Header.Get("X-Ct-Hmac-Sha256")) {
				t.Errorf("signature of %s does not verify", c.ep)
			}
			if r.Header.Get("X-Ct-Webhook-Id") != c.ep || r.Header.Get("X-Ct-Event") != "comment" || !strings.Contains(string(body), `"trigger":"comment.red"`) {
				t.Errorf("webhook to %s: %v %s", c.ep, r.Header, body)
			}
		}
		r, _ := r1.event(0)
		if u, p, ok := r.BasicAuth(); !ok || u != "ct" || p != e2ePassword {
			t.Errorf("basic auth %q %q", u, p)
		}
	})

	t.Run("a hanging receiver does not delay another", func(t *testing.T) {
		waitFor(t, "the fast receiver", 30*time.Second, func() bool { return fast.count() == 1 })
		select {
		case <-hang.gaveUp:
			t.Error("the fast receiver was reached only after the hanging one was given up on")
		default:
		}
		// The two tasks may reach the function in one batch or in two, so
		// the hanging receiver's request may come a little after the fast
		// one's.
		waitFor(t, "the hanging receiver", 30*time.Second, func() bool { return hang.count() >= 1 })
		if hang.count() != 1 {
			t.Errorf("hanging receiver has %d requests", hang.count())
		}
		close(hang.hang)
	})

	t.Run("failing twice then succeeding is three attempts of one delivery", func(t *testing.T) {
		waitFor(t, "three attempts", 60*time.Second, func() bool { return flaky.count() == 3 })
		var ids []string
		for i := 0; i < 3; i++ {
			r, _ := flaky.event(i)
			ids = append(ids, r.Header.Get("X-Ct-Delivery-Id"))
			if r.Header.Get("X-Ct-Attempt") != fmt.Sprint(i+1) {
				t.Errorf("attempt %d has X-Ct-Attempt %s", i+1, r.Header.Get("X-Ct-Attempt"))
			}
		}
		if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
			t.Errorf("delivery ids %v", ids)
		}
		waitFor(t, "the log to show it delivered", 30*time.Second, func() bool {
			data := api.events("/v1/deliveries?endpoint_id=" + eFlaky)
			return len(data) == 1 && data[0]["status"] == "delivered" && data[0]["attempt_count"] == float64(3)
		})
		status, d := api.call("GET", "/v1/deliveries/"+ids[0], "")
		if status != 200 || len(d["attempts"].([]any)) != 3 || d["payload"].(map[string]any)["event_id"] != "evt_e2e_b" {
			t.Errorf("detail %d %v", status, d)
		}
	})

	t.Run("a receiver that always fails ends failed after the schedule", func(t *testing.T) {
		waitFor(t, "the delivery to fail", 60*time.Second, func() bool {
			return len(api.events("/v1/deliveries?endpoint_id="+eDead+"&status=failed")) == 1
		})
		if dead.count() != 4 {
			t.Errorf("%d attempts, want 4", dead.count())
		}
		if _, ep := api.call("GET", "/v1/endpoints/"+eDead, ""); ep["status"] != "failing" {
			t.Errorf("endpoint status %v", ep["status"])
		}
		dlq := ls.outputs["DeliveryTasksDeadLetterQueueUrl"]
		waitFor(t, "the message in the dead-letter queue", 30*time.Second, func() bool {
			a, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &dlq, AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages"}})
			return err == nil && a.Attributes["ApproximateNumberOfMessages"] == "1"
		})
	})

	t.Run("an invalid message is set aside without blocking its batch", func(t *testing.T) {
		dlq := ls.outputs["ResponseEventsDeadLetterQueueUrl"]
		var found bool
		waitFor(t, "the invalid event in the dead-letter queue", 30*time.Second, func() bool {
			out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &dlq, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
			if err != nil {
				return false
			}
			for _, m := range out.Messages {
				if a, ok := m.MessageAttributes["event_id"]; ok && aws.ToString(a.StringValue) == "evt_e2e_bad" {
					found = strings.Contains(aws.ToString(m.MessageAttributes["reason"].StringValue), "required")
					return true
				}
			}
			return false
		})
		if !found {
			t.Error("the dead-lettered event has no reason")
		}
		if r1.count() != 1 || flaky.count() < 1 {
			t.Error("the rest of the batch was not delivered")
		}
	})

	if other.count() != 0 {
		t.Errorf("non-matching endpoints got %d webhooks", other.count())
	}
	// Nothing the stack wrote (both functions, the runtime emulator, the
	// gateway, metrics included) holds a secret, password, key or signature.
	if err := e2eSecrets.Check(ls.logs.String()); err != nil {
		t.Error(err)
	}
}
