// Command chaos is the fault battery (make chaos): it runs the local stack,
// sends events to receivers that misbehave in every way a receiver can, kills
// the delivery function's process with SIGKILL at random moments, and then
// checks that every delivery ended as its receiver deserved, none is missing
// from the log, and every duplicate a receiver saw carried the same delivery
// id. It prints the counts and exits non-zero on any violation.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/infra/localclient"
)

// kinds of receivers, and the status their deliveries must end in.
var kinds = []struct {
	name   string
	status string
}{
	{"ok", "delivered"}, {"late", "delivered"}, {"flaky", "delivered"},
	{"fail", "failed"}, {"hang", "failed"}, {"reset", "failed"}, {"redirect", "failed"}, {"gone", "failed"},
}

type seen struct {
	mu       sync.Mutex
	requests map[string][]string // delivery id -> attempt headers seen
	bad      []string
}

func main() {
	n := flag.Int("events", 2000, "events to send")
	kills := flag.Int("kills", 6, "times to kill the delivery process")
	flag.Parse()
	if err := run(*n, *kills); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run(n, kills int) error {
	log, err := os.Create(filepath.Join(os.TempDir(), "ct-chaos-local.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	// Receivers that hang hold an execution environment for 5 s per batch:
	// more environments keep the run short.
	ls, err := localclient.Start("ct-webhooks-chaos", log, "-retry-schedule", "1s,1s,1s", "-instances", "6")
	if err != nil {
		return err
	}
	defer ls.Stop()
	outputs := ls.Outputs
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		return err
	}
	client := sqs.NewFromConfig(cfg)
	// The stack outlives a run when the emulator does: start from empty queues.
	for _, k := range []string{"ResponseEventsQueueUrl", "DeliveryTasksQueueUrl", "ResponseEventsDeadLetterQueueUrl", "DeliveryTasksDeadLetterQueueUrl"} {
		u := outputs[k]
		if _, err := client.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &u}); err != nil {
			return fmt.Errorf("purge %s: %w", k, err)
		}
	}
	account := fmt.Sprintf("acc_chaos_%d", time.Now().UnixNano())
	api, err := ls.Client(account)
	if err != nil {
		return err
	}

	s := &seen{requests: map[string][]string{}}
	var testMode atomic.Bool
	testMode.Store(true)
	var flakyCount sync.Map
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		kind := strings.Trim(r.URL.Path, "/")
		if strings.HasPrefix(kind, "gone") {
			kind = "gone"
		}
		if r.Header.Get("X-Ct-Event") == "test" {
			return // test fires pass, so endpoints can be linked
		}
		var b struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &b)
		id := r.Header.Get("X-Ct-Delivery-Id")
		s.mu.Lock()
		if id == "" || b.ID != id {
			s.bad = append(s.bad, fmt.Sprintf("delivery id header %q, body id %q", id, b.ID))
		}
		s.requests[id] = append(s.requests[id], r.Header.Get("X-Ct-Attempt"))
		s.mu.Unlock()
		switch kind {
		case "ok":
		case "late":
			time.Sleep(2 * time.Second)
		case "flaky":
			c, _ := flakyCount.LoadOrStore(id, new(atomic.Int32))
			if c.(*atomic.Int32).Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		case "fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "hang":
			select {
			case <-r.Context().Done():
			case <-time.After(7 * time.Second):
			}
		case "reset":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				conn.Close()
			}
		case "redirect":
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
		case "gone":
			w.WriteHeader(http.StatusGone)
		}
	}))
	defer receiver.Close()

	// One endpoint per kind, linked to a thermometer of its own; gone gets
	// one endpoint per event (each is disabled by its first 410).
	var events []string
	expect := map[string]string{} // event id -> status
	perKind := map[string]int{}
	for i := 0; i < n; i++ {
		k := kinds[i%len(kinds)]
		th := "th_" + k.name
		if k.name == "gone" {
			th = fmt.Sprintf("th_gone_%d", i)
		}
		id := fmt.Sprintf("evt_chaos_%d", i)
		events = append(events, fmt.Sprintf(`{"version":1,"event_id":%q,"type":"rating","account_id":%q,"occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":%q,"type":"email"},"response":{"id":"rsp_%d","rating":"gold"}}`, id, account, th, i))
		expect[id] = k.status
		perKind[k.name]++
	}
	fmt.Printf("chaos: %d events over %d receiver kinds; setting up endpoints...\n", n, len(kinds))
	for _, k := range kinds {
		if k.name == "gone" {
			continue
		}
		if _, err := api.Endpoint(receiver.URL+"/"+k.name, "th_"+k.name); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		if kinds[i%len(kinds)].name == "gone" {
			if _, err := api.Endpoint(receiver.URL+fmt.Sprintf("/gone%d", i), fmt.Sprintf("th_gone_%d", i)); err != nil {
				return err
			}
		}
	}

	queueURL := outputs["ResponseEventsQueueUrl"]
	start := time.Now()
	killed := make(chan int)
	go func() { killed <- killer(ls.Pid(), kills, 30*time.Second+time.Duration(n)*20*time.Millisecond) }()
	for i := 0; i < len(events); i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j, e := range events[i:min(i+10, len(events))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(e)})
		}
		if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &queueURL, Entries: entries}); err != nil {
			return err
		}
	}
	kills = <-killed
	fmt.Printf("chaos: sent %d events in %s; killed the delivery process %d times; waiting for every delivery to end...\n", n, time.Since(start).Round(time.Second), kills)

	// Every delivery must end; killed batches come back after the queues'
	// visibility timeout (6 minutes), as on AWS.
	var final map[string]delivery
	for deadline := time.Now().Add(20 * time.Minute); ; time.Sleep(10 * time.Second) {
		final, err = deliveries(api)
		if err != nil {
			return err
		}
		done := 0
		for _, d := range final {
			if d.Status == "delivered" || d.Status == "failed" {
				done++
			}
		}
		fmt.Printf("chaos: %s: %d of %d deliveries ended\n", time.Since(start).Round(time.Second), done, n)
		if done == n || time.Now().After(deadline) {
			break
		}
	}

	counts := map[string]int{}
	var problems []string
	for id, want := range expect {
		d, ok := final[id]
		switch {
		case !ok:
			problems = append(problems, "missing from the log: "+id)
		case d.Status != want:
			problems = append(problems, fmt.Sprintf("%s ended %s, want %s", id, d.Status, want))
		}
		counts[d.Status]++
	}
	if len(final) != n {
		problems = append(problems, fmt.Sprintf("%d deliveries in the log for %d events", len(final), n))
	}
	s.mu.Lock()
	duplicates, requests := 0, 0
	for _, attempts := range s.requests {
		requests += len(attempts)
		seenAttempt := map[string]bool{}
		for _, a := range attempts {
			if seenAttempt[a] {
				duplicates++
			}
			seenAttempt[a] = true
		}
	}
	problems = append(problems, s.bad...)
	s.mu.Unlock()
	fmt.Printf("\nchaos results: %d events, %d kills, %s\n", n, kills, time.Since(start).Round(time.Second))
	fmt.Printf("  deliveries in the log   %d (delivered %d, failed %d, other %d)\n", len(final), counts["delivered"], counts["failed"], len(final)-counts["delivered"]-counts["failed"])
	fmt.Printf("  requests received       %d, of which repeated attempts (same delivery id and attempt) %d\n", requests, duplicates)
	fmt.Printf("  problems                %d\n", len(problems))
	for i, p := range problems {
		if i == 20 {
			fmt.Printf("    … %d more\n", len(problems)-20)
			break
		}
		fmt.Println("   ", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems (local stack log: %s)", len(problems), log.Name())
	}
	return nil
}

// killer SIGKILLs a running delivery bootstrap of the stack whose ctlocal
// is root at random moments within span, times times, and returns how many
// it killed.
func killer(root, times int, span time.Duration) int {
	killed := 0
	for i := 0; i < times; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(span) / int64(times))))
		pids := bootstraps(root, "DeliveryFunction")
		if len(pids) == 0 {
			continue
		}
		if syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}

// bootstraps finds the processes running a function's bootstrap among the
// descendants of root (the stack's ctlocal): never another stack's or
// another test's.
func bootstraps(root int, function string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if strings.HasSuffix(argv0, "/"+function+"/bootstrap") && descendant(pid, root) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// descendant reports whether pid is a descendant of root, following the
// parent ids in /proc/<pid>/stat.
func descendant(pid, root int) bool {
	for depth := 0; depth < 64 && pid > 1; depth++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			return false
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			return false
		}
		if pid, err = strconv.Atoi(f[1]); err != nil {
			return false
		}
		if pid == root {
			return true
		}
	}
	return false
}

type delivery struct {
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	Status  string `json:"status"`
}

// deliveries reads the whole log of the account, by event id.
func deliveries(c localclient.Client) (map[string]delivery, error) {
	out := map[string]delivery{}
	cursor := ""
	for {
		path := "/v1/deliveries?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page, err := c.Call("GET", path, "")
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(page["data"])
		var ds []delivery
		_ = json.Unmarshal(b, &ds)
		for _, d := range ds {
			out[d.EventID] = d
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}
