package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/store"
)

func TestDeliveriesLog(t *testing.T) {
	e := newEnv(t)
	base := time.Now().UTC().Add(-time.Hour)
	epA, epB := "ep_01M8EA9XTR0000000000000000", "ep_01M8EA9XTR0000000000000001"
	d1 := e.delivery(e.account, epA, "delivered", base, 1)
	d2 := e.delivery(e.account, epB, "failed", base.Add(time.Minute), 8)
	d3 := e.delivery(e.account, epA, "retrying", base.Add(2*time.Minute), 2)
	d4 := e.delivery(e.account, epA, "failed", base.Add(3*time.Minute), 8)
	other := e.delivery(uniqueAccount(), epA, "failed", base.Add(4*time.Minute), 1)

	ids := func(path string) []string {
		t.Helper()
		r := e.do("GET", path, e.key, "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var out []string
		for _, item := range r.json(t)["data"].([]any) {
			m := item.(map[string]any)
			if m["payload"] != nil || m["attempts"] != nil {
				t.Errorf("list items carry payload or attempts: %v", m)
			}
			out = append(out, m["id"].(string))
		}
		return out
	}
	for path, want := range map[string][]string{
		"/v1/deliveries":                                       {d4.ID, d3.ID, d2.ID, d1.ID},
		"/v1/deliveries?status=failed":                         {d4.ID, d2.ID},
		"/v1/deliveries?endpoint_id=" + epA:                    {d4.ID, d3.ID, d1.ID},
		"/v1/deliveries?endpoint_id=" + epA + "&status=failed": {d4.ID},
		"/v1/deliveries?status=pending":                        nil,
	} {
		if got := ids(path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}

	// Page by page, each filter gives the same deliveries, and next_cursor is
	// null on the last page only.
	for _, filter := range []string{"", "status=failed&", "endpoint_id=" + epA + "&", "endpoint_id=" + epA + "&status=failed&"} {
		want := ids("/v1/deliveries?" + filter + "limit=100")
		var got []string
		cursor := ""
		for pages := 1; ; pages++ {
			path := "/v1/deliveries?" + filter + "limit=1"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := e.do("GET", path, e.key, "")
			page := r.json(t)
			data, _ := page["data"].([]any)
			if r.status != 200 || len(data) != 1 || pages > len(want) {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			got = append(got, data[0].(map[string]any)["id"].(string))
			next, isString := page["next_cursor"].(string)
			if page["next_cursor"] != nil && !isString {
				t.Fatalf("%s: next_cursor %v", path, page["next_cursor"])
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s one by one = %v, want %v", filter, got, want)
		}
	}

	// Pages, newest first; the cursor is bound to the account and filters.
	r := e.do("GET", "/v1/deliveries?limit=2", e.key, "")
	page := r.json(t)
	cursor, _ := page["next_cursor"].(string)
	if len(page["data"].([]any)) != 2 || cursor == "" {
		t.Fatalf("first page %s", r.body)
	}
	if got := ids("/v1/deliveries?limit=2&cursor=" + cursor); fmt.Sprint(got) != fmt.Sprint([]string{d2.ID, d1.ID}) {
		t.Errorf("second page %v", got)
	}
	if r := e.do("GET", "/v1/deliveries?status=failed&cursor="+cursor, e.key, ""); r.code() != "invalid_cursor" {
		t.Errorf("cursor reused with other filters: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/endpoints?cursor="+cursor, e.key, ""); r.code() != "invalid_cursor" {
		t.Errorf("deliveries cursor accepted by endpoints: %d", r.status)
	}
	if r := e.do("GET", "/v1/deliveries?limit=2&cursor="+cursor, e.newKey(uniqueAccount()), ""); r.code() != "invalid_cursor" {
		t.Errorf("cursor of another account: %d", r.status)
	}
	for _, bad := range []string{"status=lost", "endpoint_id=nope", "limit=0", "sort=asc"} {
		if r := e.do("GET", "/v1/deliveries?"+bad, e.key, ""); r.status != 422 {
			t.Errorf("%s: %d", bad, r.status)
		}
	}

	// One delivery, with its payload and attempts.
	r = e.do("GET", "/v1/deliveries/"+d2.ID, e.key, "")
	v := r.json(t)
	if r.status != 200 || v["status"] != "failed" || v["attempt_count"] != float64(8) || v["last_status_code"] != float64(500) {
		t.Fatalf("detail %d %s", r.status, r.body)
	}
	if p := v["payload"].(map[string]any); p["id"] != d2.ID {
		t.Errorf("payload %v", p)
	}
	attempts := v["attempts"].([]any)
	if len(attempts) != 8 || attempts[0].(map[string]any)["number"] != float64(1) || attempts[7].(map[string]any)["response_body"] != "oops" {
		t.Errorf("attempts %v", attempts)
	}
	for _, path := range []string{"/v1/deliveries/" + other.ID, "/v1/deliveries/dlv_00000000000000000000000000", "/v1/deliveries/nope"} {
		if r := e.do("GET", path, e.key, ""); r.status != 404 || r.code() != "not_found" {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	if r := e.do("POST", "/v1/deliveries/"+other.ID+"/redeliver", e.key, ""); r.status != 404 {
		t.Errorf("redeliver another account's delivery: %d", r.status)
	}
}

func TestRedeliverQueuesANewRound(t *testing.T) {
	e := newEnv(t)
	d := e.delivery(e.account, e.endpoint(), "failed", time.Now().UTC(), 8)
	r := e.do("POST", "/v1/deliveries/"+d.ID+"/redeliver", e.key, "")
	v := r.json(t)
	if r.status != 202 || v["status"] != "pending" || v["id"] != d.ID || v["attempt_count"] != float64(8) {
		t.Fatalf("redeliver %d %s", r.status, r.body)
	}
	tasks := e.queuedTasks(t)
	if len(tasks) != 1 {
		t.Fatalf("tasks queued: %v", tasks)
	}
	if task := tasks[0]; task["delivery_id"] != d.ID || task["round_start"] != float64(9) || task["kind"] != "delivery" {
		t.Errorf("task %v", task)
	}
	if got := e.do("GET", "/v1/deliveries/"+d.ID, e.key, "").json(t); got["status"] != "pending" {
		t.Errorf("after redeliver %v", got["status"])
	}
	if r := e.do("POST", "/v1/deliveries/"+d.ID+"/redeliver", e.key, `{"now":true}`); r.status != 422 || !strings.Contains(string(r.body), "now") {
		t.Errorf("redeliver with a body: %d %s", r.status, r.body)
	}
}

// queuedTasks receives the task messages on the tasks queue (up to ten,
// waiting a second for the first) and decodes them.
func (e *env) queuedTasks(t *testing.T) []map[string]any {
	t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.tasksURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	tasks := make([]map[string]any, len(out.Messages))
	for i, m := range out.Messages {
		if err := json.Unmarshal([]byte(*m.Body), &tasks[i]); err != nil {
			t.Fatalf("task %s: %v", *m.Body, err)
		}
	}
	return tasks
}

// roundRefused is the delivery log with StartRound failing: the request's
// round cannot be recorded (DynamoDB unavailable, the function timed out).
type roundRefused struct{ deliveryLog }

func (roundRefused) StartRound(context.Context, string, string, int, time.Time, time.Time, time.Time) (domain.Delivery, error) {
	return domain.Delivery{}, errors.New("dynamodb unavailable")
}

// TestRedeliverQueuesItsTaskFirst: a redelivery whose round could not be
// recorded answers 500, and its task is queued all the same, naming the
// round after the last attempt, so the delivery function starts the round
// itself and the redelivery is not lost.
func TestRedeliverQueuesItsTaskFirst(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.Deliveries = roundRefused{d.Deliveries} })
	d := e.delivery(e.account, e.endpoint(), "delivered", time.Now().UTC(), 3)
	if r := e.do("POST", "/v1/deliveries/"+d.ID+"/redeliver", e.key, ""); r.status != 500 || strings.Contains(string(r.body), "dynamodb") {
		t.Errorf("redeliver %d %s, want a 500 without internals", r.status, r.body)
	}
	tasks := e.queuedTasks(t)
	if len(tasks) != 1 {
		t.Fatalf("tasks queued: %v", tasks)
	}
	if task := tasks[0]; task["delivery_id"] != d.ID || task["round_start"] != float64(4) {
		t.Errorf("task %v, want the round after attempt 3", task)
	}
}

// workerFirst is the delivery log with the delivery function handling the
// redelivery's task just before the API records its round: it starts the
// round and records its attempt, so the API's own start finds an attempt
// count that is no longer the one it read.
type workerFirst struct{ *store.Store }

func (l workerFirst) StartRound(ctx context.Context, account, id string, attempts int, now, expires, payloadExpires time.Time) (domain.Delivery, error) {
	d, err := l.Store.StartRound(ctx, account, id, attempts, now, expires, payloadExpires)
	if err != nil {
		return domain.Delivery{}, err
	}
	d.AttemptCount, d.Status = attempts+1, domain.DeliveryDelivered
	if err := l.SaveDelivery(ctx, d, attempts, expires); err != nil {
		return domain.Delivery{}, err
	}
	return l.Store.StartRound(ctx, account, id, attempts, now, expires, payloadExpires)
}

// TestRedeliverWhoseTaskStartedTheRound: when the redelivery's task got to
// the delivery function before the API recorded the round, the redelivery
// is accepted as it is, with one task, not queued and sent again.
func TestRedeliverWhoseTaskStartedTheRound(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.Deliveries = workerFirst{d.Deliveries.(*store.Store)} })
	d := e.delivery(e.account, e.endpoint(), "failed", time.Now().UTC(), 2)
	r := e.do("POST", "/v1/deliveries/"+d.ID+"/redeliver", e.key, "")
	if v := r.json(t); r.status != 202 || v["attempt_count"] != float64(3) {
		t.Fatalf("redeliver %d %s, want 202 with the round's attempt 3 recorded", r.status, r.body)
	}
	if tasks := e.queuedTasks(t); len(tasks) != 1 {
		t.Errorf("%d tasks queued, want one", len(tasks))
	}
}

// endpoint creates an endpoint of e's account and returns its id.
func (e *env) endpoint() string {
	e.t.Helper()
	r := e.do("POST", "/v1/endpoints", e.key, createBody("https://example.com/hooks"))
	id, _ := r.json(e.t)["id"].(string)
	if r.status != 201 || id == "" {
		e.t.Fatalf("create endpoint: %d %s", r.status, r.body)
	}
	return id
}

// TestRedeliverNeedsItsEndpoint: a redelivery that would never be sent (its
// endpoint disabled or deleted, when the delivery function stops it without
// an attempt) is refused with a 409 saying why, and queues nothing; enabled
// again, the endpoint takes it.
func TestRedeliverNeedsItsEndpoint(t *testing.T) {
	doc := loadOpenAPI(t)
	op := operations(t, doc)["POST /v1/deliveries/{id}/redeliver"]
	e := newEnv(t)
	ep := e.endpoint()
	d := e.delivery(e.account, ep, "failed", time.Now().UTC(), 8)
	never := e.delivery(e.account, "ep_01M8EA9XTR0000000000000000", "failed", time.Now().UTC(), 8)
	redeliver := func(id, code string) {
		t.Helper()
		r := e.do("POST", "/v1/deliveries/"+id+"/redeliver", e.key, "")
		if want := map[bool]int{true: 202, false: 409}[code == ""]; r.status != want || r.code() != code {
			t.Fatalf("redeliver: %d %s, want %d %s", r.status, r.body, want, code)
		}
		checkDocumented(t, doc, op, r)
		if tasks := e.queuedTasks(t); (len(tasks) == 1) != (code == "") || len(tasks) > 1 {
			t.Fatalf("%d tasks queued after a %d", len(tasks), r.status)
		}
	}
	if r := e.do("PATCH", "/v1/endpoints/"+ep, e.key, `{"enabled":false}`); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	redeliver(d.ID, "endpoint_disabled")
	if got := e.do("GET", "/v1/deliveries/"+d.ID, e.key, "").json(t); got["status"] != "failed" {
		t.Errorf("refused redelivery changed the delivery to %v", got["status"])
	}
	if r := e.do("PATCH", "/v1/endpoints/"+ep, e.key, `{"enabled":true}`); r.status != 200 {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	redeliver(d.ID, "")
	if r := e.do("DELETE", "/v1/endpoints/"+ep, e.key, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	redeliver(d.ID, "endpoint_deleted")
	redeliver(never.ID, "endpoint_deleted")
}
