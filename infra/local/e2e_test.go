package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/signature"
)

// syncBuffer collects the local stack's output for the test to search.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// binaries returns the directory of the bootstraps (<LogicalId>/bootstrap) and
// of the tools (aws-lambda-rie, apikey): those `make` built when it runs the
// tests, otherwise freshly built here.
func binaries(t *testing.T, root string) (code, bin string) {
	t.Helper()
	code, bin = os.Getenv("WEBHOOKS_CODE"), os.Getenv("WEBHOOKS_BIN")
	if code != "" && bin != "" {
		return code, bin
	}
	dir := t.TempDir()
	code, bin = filepath.Join(dir, "build"), filepath.Join(dir, "bin")
	for out, pkg := range map[string]string{
		filepath.Join(code, "ApiFunction", "bootstrap"):      "./functions/api",
		filepath.Join(code, "DeliveryFunction", "bootstrap"): "./functions/delivery",
		filepath.Join(bin, "aws-lambda-rie"):                 "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie",
		filepath.Join(bin, "apikey"):                         "./infra/apikey",
	} {
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return code, bin
}

// localStack is a running local stack: what `make local` runs, in-process,
// with the real bootstraps under the runtime emulator.
type localStack struct {
	outputs map[string]string
	logs    *syncBuffer
	state   string
	bin     string
}

func startLocal(t *testing.T, retrySchedule string) *localStack {
	t.Helper()
	root := awstest.RepoRoot(t)
	code, bin := binaries(t, root)
	ls := &localStack{logs: &syncBuffer{}, state: t.TempDir(), bin: bin}
	ready := make(chan map[string]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{
			stack: "ct-webhooks-e2e", addr: "127.0.0.1:0", stateDir: ls.state, codeDir: code,
			rie: filepath.Join(bin, "aws-lambda-rie"), template: filepath.Join(root, "template.yaml"),
			python: "python3", provisionScript: filepath.Join(root, "infra", "local", "provision.py"),
			endpoint: awstest.Endpoint(), region: "us-east-1", instances: 2, retrySchedule: retrySchedule,
			log: ls.logs, ready: ready,
		})
	}()
	select {
	case ls.outputs = <-ready:
		// The stack outlives a test run when the emulator does; start from
		// empty queues.
		cfg := awstest.Config(t)
		client := sqs.NewFromConfig(cfg)
		for _, k := range []string{"ResponseEventsQueueUrl", "DeliveryTasksQueueUrl", "ResponseEventsDeadLetterQueueUrl", "DeliveryTasksDeadLetterQueueUrl"} {
			u := ls.outputs[k]
			if _, err := client.PurgeQueue(context.Background(), &sqs.PurgeQueueInput{QueueUrl: &u}); err != nil {
				t.Fatalf("purge %s: %v", k, err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("local stack stopped: %v\n%s", err, ls.logs)
	case <-time.After(3 * time.Minute):
		cancel()
		t.Fatalf("local stack not ready within 3 minutes\n%s", ls.logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("local stack: %v", err)
		}
		if t.Failed() {
			t.Logf("local stack output:\n%s", ls.logs)
		}
	})
	return ls
}

// apiKey runs the tool behind `make api-key`, which finds the table through
// outputs.json, and returns the one line it prints.
func (ls *localStack) apiKey(t *testing.T, account string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(ls.bin, "apikey"), "-account", account, "-outputs", filepath.Join(ls.state, "outputs.json"))
	cmd.Env = awsEnv(options{endpoint: awstest.Endpoint(), region: "us-east-1"})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apikey: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		t.Fatalf("apikey printed %d lines, want exactly one: %q", len(lines), out)
	}
	e2eSecrets.Remember(lines[0])
	return lines[0]
}

// TestLocalStackEndToEnd goes through the gateway and the poller to the real
// bootstraps.
func TestLocalStackEndToEnd(t *testing.T) {
	awsCfg := awstest.Config(t)
	ls := startLocal(t, "")
	outputs, logs, state := ls.outputs, ls.logs, ls.state

	// outputs.json is written for users and tools.
	var written map[string]string
	b, err := os.ReadFile(filepath.Join(state, "outputs.json"))
	if err != nil || json.Unmarshal(b, &written) != nil {
		t.Fatalf("outputs.json: %v %s", err, b)
	}
	for _, k := range []string{"ApiUrl", "ResponseEventsQueueUrl", "WebhookSourceIp", "EndpointsTableName", "DeliveriesTableName"} {
		if written[k] == "" {
			t.Errorf("outputs.json lacks %s: %v", k, written)
		}
	}
	api := outputs["ApiUrl"]

	get := func(path, key string) (int, string) {
		req, _ := http.NewRequest("GET", api+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(body))
	}

	t.Run("health through the gateway and the API bootstrap", func(t *testing.T) {
		if status, body := get("/v1/health", ""); status != 200 || body != `{"status":"ok"}` {
			t.Errorf("GET /v1/health = %d %s", status, body)
		}
		// Outside /v1 too, the API's own error shape (the $default route).
		if status, body := get("/", ""); status != 404 || !strings.Contains(body, `"code":"not_found"`) {
			t.Errorf("GET / = %d %s", status, body)
		}
	})

	key := ls.apiKey(t, "acc_e2e")

	t.Run("the key works on authenticated routes", func(t *testing.T) {
		if status, body := get("/v1/endpoints", key); status != 200 || body != `{"data":[],"next_cursor":null}` {
			t.Errorf("GET /v1/endpoints = %d %s", status, body)
		}
		if status, body := get("/v1/source-ips", key); status != 200 || body != `{"ips":["`+outputs["WebhookSourceIp"]+`"]}` {
			t.Errorf("GET /v1/source-ips = %d %s", status, body)
		}
		if status, _ := get("/v1/endpoints", ""); status != 401 {
			t.Errorf("GET /v1/endpoints without a key = %d", status)
		}
	})

	t.Run("a key revoked by make revoke-api-key is refused at once", func(t *testing.T) {
		doomed := ls.apiKey(t, "acc_e2e")
		if status, _ := get("/v1/endpoints", doomed); status != 200 {
			t.Fatalf("new key: %d", status)
		}
		cmd := exec.Command(filepath.Join(ls.bin, "apikey"), "-revoke", "-outputs", filepath.Join(ls.state, "outputs.json"))
		cmd.Env = awsEnv(options{endpoint: awstest.Endpoint(), region: "us-east-1"})
		cmd.Stdin = strings.NewReader(doomed + "\n")
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "revoked" {
			t.Fatalf("revoke: %v %s", err, out)
		}
		if status, _ := get("/v1/endpoints", doomed); status != 401 {
			t.Errorf("revoked key: %d, want 401", status)
		}
		if status, _ := get("/v1/endpoints", key); status != 200 {
			t.Errorf("the account's other key: %d", status)
		}
	})

	t.Run("endpoint management through the API bootstrap", func(t *testing.T) {
		var mu sync.Mutex
		var got []*http.Request
		var bodies [][]byte
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			rememberRequest(r)
			mu.Lock()
			got, bodies = append(got, r), append(bodies, b)
			mu.Unlock()
		}))
		defer rcv.Close()
		call := func(method, path, body string) (int, map[string]any) {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(method, api+path, rd)
			req.Header.Set("Authorization", "Bearer "+key)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(res.Body).Decode(&m)
			return res.StatusCode, m
		}
		status, ep := call("POST", "/v1/endpoints", `{"name":"Local receiver","url":"`+rcv.URL+`/hook","triggers":["*"],"basic_auth":{"username":"ct","password":"local-basic-pw"}}`)
		if status != 201 {
			t.Fatalf("create: %d %v", status, ep)
		}
		id, secret := ep["id"].(string), ep["secret"].(string)
		status, res := call("POST", "/v1/endpoints/"+id+"/test", "")
		if status != 200 || res["delivered"] != true {
			t.Fatalf("test fire: %d %v", status, res)
		}
		mu.Lock()
		if len(got) != 1 || !signature.Verify(secret, got[0].Header.Get("Date"), bodies[0], got[0].Header.Get("X-Ct-Hmac-Sha256")) {
			t.Errorf("receiver got %d requests; signature verifies: %v", len(got), len(got) == 1)
		}
		mu.Unlock()
		if status, res := call("PUT", "/v1/endpoints/"+id+"/thermometers", `{"thermometers":[{"id":"th_42","name":"Support tickets","type":"email"}]}`); status != 200 {
			t.Fatalf("link: %d %v", status, res)
		}
		if status, v := call("GET", "/v1/endpoints/"+id, ""); status != 200 || v["status"] != "active" || len(v["thermometers"].([]any)) != 1 {
			t.Errorf("view: %d %v", status, v)
		}
		if status, v := call("POST", "/v1/endpoints", `{"name":"x","url":"http://10.0.0.1:8080/","triggers":["*"]}`); status != 422 {
			t.Errorf("private target accepted in local mode: %d %v", status, v)
		}
		if status, _ := call("DELETE", "/v1/endpoints/"+id, ""); status != 204 {
			t.Errorf("delete: %d", status)
		}
		e2eSecrets.Remember(secret, "local-basic-pw")
		if err := e2eSecrets.Check(logs.String()); err != nil {
			t.Error(err)
		}
	})

	t.Run("a queued message is consumed by the delivery bootstrap", func(t *testing.T) {
		client := sqs.NewFromConfig(awsCfg)
		queue := outputs["ResponseEventsQueueUrl"]
		sent, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl:    &queue,
			MessageBody: aws.String(`{"version":1,"event_id":"evt_e2e_1","type":"rating","account_id":"acc_e2e"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		want := `"message_id":"` + *sent.MessageId + `"`
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the delivery function never logged message %s", *sent.MessageId)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The poller deletes what the function finished.
		for {
			attrs, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
				QueueUrl: &queue, AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if attrs.Attributes["ApproximateNumberOfMessages"] == "0" && attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message not deleted after consumption: %v", attrs.Attributes)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestBootstrapsStopAtStartUpNamingMissingConfig runs each real bootstrap
// without one required variable: it must exit at once, naming it.
func TestBootstrapsStopAtStartUpNamingMissingConfig(t *testing.T) {
	code, _ := binaries(t, awstest.RepoRoot(t))
	for _, fn := range []string{"ApiFunction", "DeliveryFunction"} {
		t.Run(fn, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(code, fn, "bootstrap"))
			cmd.Env = []string{
				"DELIVERIES_TABLE=d", "KMS_KEY_ID=k", "EVENTS_QUEUE_URL=q", "EVENTS_DLQ_URL=dlq", "DELIVERY_TASKS_QUEUE_URL=t", "SOURCE_IPS=203.0.113.7",
				// The runtime API is never reached: configuration fails first.
				"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1",
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
				t.Fatalf("want exit status 1, got %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "missing required environment variable ENDPOINTS_TABLE") {
				t.Errorf("start-up error does not name ENDPOINTS_TABLE: %s", out.String())
			}
		})
	}
}

// TestSamLocalInvokeWithTheStacksEnvironment does what `sam local invoke
// --env-vars` does with the file `make sam-env` writes: each real bootstrap,
// given only the deployed functions' environment (here the test stack's on
// the emulator), starts and answers its sample events from events/.
func TestSamLocalInvokeWithTheStacksEnvironment(t *testing.T) {
	root := awstest.RepoRoot(t)
	code, bin := binaries(t, root)
	samenv := filepath.Join(bin, "samenv")
	if _, err := os.Stat(samenv); err != nil {
		samenv = filepath.Join(t.TempDir(), "samenv")
		cmd := exec.Command("go", "build", "-o", samenv, "./infra/samenv")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build samenv: %v\n%s", err, b)
		}
	}
	stack := awstest.LoadStack(t)
	envFile := filepath.Join(t.TempDir(), "sam-env.json")
	cmd := exec.Command(samenv, "-stack", stack.StackName, "-out", envFile)
	cmd.Env = awsEnv(options{endpoint: awstest.Endpoint(), region: "us-east-1"})
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("samenv: %v\n%s", err, b)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]map[string]string
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	for fn, event := range map[string]string{"ApiFunction": "api-health.json", "DeliveryFunction": "sqs-comment.json"} {
		t.Run(fn, func(t *testing.T) {
			if env[fn]["ENDPOINTS_TABLE"] != stack.Outputs["EndpointsTableName"] || net.ParseIP(env[fn]["SOURCE_IPS"]) == nil {
				t.Fatalf("%s environment: %v", fn, env[fn])
			}
			vars := awsEnv(options{endpoint: awstest.Endpoint(), region: "us-east-1"})
			for k, v := range env[fn] {
				vars = append(vars, k+"="+v)
			}
			logs := &syncBuffer{}
			f, err := startFunction(fn, filepath.Join(bin, "aws-lambda-rie"), filepath.Join(code, fn, "bootstrap"), vars, 30*time.Second, 1, &lineLog{out: logs})
			if err != nil {
				t.Fatal(err)
			}
			defer f.stop()
			payload, err := os.ReadFile(filepath.Join(root, "events", event))
			if err != nil {
				t.Fatal(err)
			}
			out, err := f.invoke(context.Background(), payload)
			if err != nil {
				t.Fatalf("invoke with events/%s: %v\n%s", event, err, logs)
			}
			switch fn {
			case "ApiFunction":
				var res struct {
					StatusCode int
					Body       string
				}
				if json.Unmarshal(out, &res) != nil || res.StatusCode != 200 || !strings.Contains(res.Body, `"ok"`) {
					t.Errorf("health: %s\n%s", out, logs)
				}
			case "DeliveryFunction":
				var res struct {
					BatchItemFailures []any `json:"batchItemFailures"`
				}
				if json.Unmarshal(out, &res) != nil || len(res.BatchItemFailures) != 0 {
					t.Errorf("sqs event: %s\n%s", out, logs)
				}
			}
		})
	}
}
