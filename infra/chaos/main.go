// Command chaos is the fault battery (make chaos): it runs the local stack,
// sends events to receivers that misbehave in every way a receiver can, kills
// the delivery function's process with SIGKILL at random moments, fails some
// of the functions' AWS requests as AWS can (refused, throttled, carried out
// but answered with a 500, and every request for a few seconds now and
// then), and then checks that every delivery ended as its receiver
// deserved, none is missing from the log, every duplicate a receiver saw
// carried the same delivery id, and every endpoint ended in the state its
// receiver earned it (a 410 disables it). It prints the counts and exits
// non-zero on any violation.
//
// make chaos runs it at 2,000 events with the queues' visibility timeout as
// on AWS; make test runs a short form with -visibility-timeout 30s, so that
// the batches of a killed process come back within seconds, not minutes.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
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
	"github.com/customerthermometer/webhooks/shared/logcheck"
	"github.com/customerthermometer/webhooks/shared/payload"
)

// kinds of receivers, and the status their deliveries must end in.
var kinds = []struct {
	name   string
	status string
}{
	{"ok", "delivered"}, {"late", "delivered"}, {"flaky", "delivered"},
	{"fail", "failed"}, {"hang", "failed"}, {"reset", "failed"}, {"redirect", "failed"}, {"gone", "failed"},
}

// outage is how long every AWS request of the functions fails, each time.
const outage = 4 * time.Second

// retrySchedule gives each delivery attemptsPerRound attempts.
const (
	retrySchedule    = "1s,1s,1s"
	attemptsPerRound = 4
)

type seen struct {
	mu       sync.Mutex
	requests map[string][]string        // delivery id -> attempt headers seen
	events   map[string]map[string]bool // event id -> delivery ids seen
	answered map[string]bool            // delivery id -> a 2xx was answered to it
	inFlight map[string]int             // sender's address -> requests being answered
	bad      []string
	secrets  logcheck.Secrets // the key, the endpoints' secrets, every signature seen
}

type config struct {
	events, kills, instances int
	visibility               time.Duration
	stack                    string
	awsFaults                float64
	outages                  int
}

func main() {
	var c config
	flag.IntVar(&c.events, "events", 2000, "events to send")
	flag.IntVar(&c.kills, "kills", 6, "times to kill the delivery process")
	flag.IntVar(&c.instances, "instances", 6, "execution environments per function")
	flag.DurationVar(&c.visibility, "visibility-timeout", 0,
		"visibility timeout of the stack's queues (ctlocal -visibility-timeout); 0 keeps the template's, as on AWS")
	flag.StringVar(&c.stack, "stack", "ct-webhooks-chaos", "stack name in the emulator")
	flag.Float64Var(&c.awsFaults, "aws-faults", 0.03, "share of the functions' AWS requests that fail (refused, throttled, or carried out and answered 500)")
	flag.IntVar(&c.outages, "aws-outages", 3, "times every AWS request of the functions fails for "+outage.String())
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	n, kills := c.events, c.kills
	log, err := os.CreateTemp("", "ct-chaos-*.log")
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Printf("chaos: local stack log in %s\n", log.Name())
	// Receivers that hang hold an execution environment for 5 s per batch:
	// more environments keep the run short.
	// The battery test-fires every endpoint it sets up, hundreds of them in
	// one account: more than the budget of test fires a minute allows.
	args := []string{"-retry-schedule", retrySchedule, "-instances", fmt.Sprint(c.instances), "-sends-per-minute", "100000"}
	if c.visibility > 0 {
		args = append(args, "-visibility-timeout", c.visibility.String())
	}
	// The functions reach the emulator through a proxy that fails some of
	// their requests; the battery's own requests go to it directly.
	faults, err := newAWSFaults(cmp.Or(os.Getenv("AWS_ENDPOINT_URL"), "http://127.0.0.1:4566"), c.awsFaults)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	proxy := &http.Server{Handler: faults, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = proxy.Serve(ln) }()
	defer proxy.Close()
	args = append(args, "-functions-aws-endpoint", "http://"+ln.Addr().String())
	ls, err := localclient.Start(c.stack, log, args...)
	if err != nil {
		return fmt.Errorf("%w (local stack log: %s)", err, log.Name())
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
	visibility, err := queueVisibility(ctx, client, outputs["DeliveryTasksQueueUrl"])
	if err != nil {
		return err
	}
	account := fmt.Sprintf("acc_chaos_%d", time.Now().UnixNano())
	api, err := ls.Client(account)
	if err != nil {
		return err
	}

	s := &seen{requests: map[string][]string{}, events: map[string]map[string]bool{}, answered: map[string]bool{}, inFlight: map[string]int{}}
	s.secrets.Remember(api.Key)
	var testMode atomic.Bool
	testMode.Store(true)
	var flakyCount sync.Map
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		kind := strings.Trim(r.URL.Path, "/")
		if strings.HasPrefix(kind, "gone") {
			kind = "gone"
		}
		s.secrets.Remember(r.Header.Get("X-Ct-Hmac-Sha256"), strings.TrimPrefix(r.Header.Get("Webhook-Signature"), "v1,"))
		if r.Header.Get("X-Ct-Event") == payload.TestEvent {
			return // test fires pass, so endpoints can be linked
		}
		var b struct {
			ID      string `json:"id"`
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(body, &b)
		id := r.Header.Get("X-Ct-Delivery-Id")
		s.mu.Lock()
		if id == "" || b.ID != id {
			s.bad = append(s.bad, fmt.Sprintf("delivery id header %q, body id %q", id, b.ID))
		}
		s.requests[id] = append(s.requests[id], r.Header.Get("X-Ct-Attempt"))
		if s.events[b.EventID] == nil {
			s.events[b.EventID] = map[string]bool{}
		}
		s.events[b.EventID][id] = true
		s.inFlight[r.RemoteAddr]++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.inFlight[r.RemoteAddr]--; s.inFlight[r.RemoteAddr] == 0 {
				delete(s.inFlight, r.RemoteAddr)
			}
			s.mu.Unlock()
		}()
		answered := func() {
			s.mu.Lock()
			s.answered[id] = true
			s.mu.Unlock()
		}
		switch kind {
		case "ok":
			answered()
		case "late":
			time.Sleep(2 * time.Second)
			answered()
		case "flaky":
			c, _ := flakyCount.LoadOrStore(id, new(atomic.Int32))
			if c.(*atomic.Int32).Add(1) == 1 {
				// Asks for more than the schedule's next delay, which
				// bounds the wait.
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusServiceUnavailable)
			} else {
				answered()
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
	expect := map[string]string{}    // event id -> status
	eventKind := map[string]string{} // event id -> receiver kind
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
		eventKind[id] = k.name
		perKind[k.name]++
	}
	fmt.Printf("chaos: %d events over %d receiver kinds; setting up endpoints...\n", n, len(kinds))
	endpointKind := map[string]string{} // endpoint id -> kind
	for _, k := range kinds {
		if k.name == "gone" {
			continue
		}
		id, secret, err := api.Endpoint(receiver.URL+"/"+k.name, "th_"+k.name)
		if err != nil {
			return err
		}
		s.secrets.Remember(secret)
		endpointKind[id] = k.name
	}
	for i := 0; i < n; i++ {
		if kinds[i%len(kinds)].name == "gone" {
			id, secret, err := api.Endpoint(receiver.URL+fmt.Sprintf("/gone%d", i), fmt.Sprintf("th_gone_%d", i))
			if err != nil {
				return err
			}
			s.secrets.Remember(secret)
			endpointKind[id] = "gone"
		}
	}

	queueURL := outputs["ResponseEventsQueueUrl"]
	start := time.Now()
	k := &killer{root: ls.Pid(), function: "DeliveryFunction", receiverPort: port(receiver.Listener.Addr().String()), seen: s}
	killed := make(chan struct{})
	span := 30*time.Second + time.Duration(n)*20*time.Millisecond
	faults.armed.Store(true)
	outagesMade := make(chan struct{})
	go func() { faults.outages(c.outages, span, outage); close(outagesMade) }()
	// After an outage every message may wait out its visibility timeout
	// with nothing being sent; the killer waits that long for a sender.
	senderWait := 6*time.Minute + 10*time.Second
	if c.visibility > 0 {
		senderWait = c.visibility + 10*time.Second
	}
	go func() { k.run(kills, span, senderWait); close(killed) }()
	for i := 0; i < len(events); i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j, e := range events[i:min(i+10, len(events))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(e)})
		}
		if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &queueURL, Entries: entries}); err != nil {
			return err
		}
	}
	<-killed
	fmt.Printf("chaos: %s: sent %d events; killed the delivery process %d times (%d while it was sending a webhook); waiting for every delivery to end...\n",
		time.Since(start).Round(time.Second), n, k.killed, k.midSend)

	// Every delivery must end, and the queues must drain: an event not yet
	// fanned out, a task not yet finished (a killed batch's comes back
	// after the visibility timeout) or one waiting for its retry is a
	// message on them, visible, in flight or delayed. Only then is the log
	// read: listing it through the emulator costs more than the deliveries
	// themselves. Waiting stops early when the count has not reached a new
	// low for the visibility timeout and a margin.
	queues := []string{outputs["ResponseEventsQueueUrl"], outputs["DeliveryTasksQueueUrl"]}
	stall := visibility + 3*time.Minute
	low, progress, reported := -1, time.Now(), time.Time{}
	left := 0
	for ; ; time.Sleep(2 * time.Second) {
		if left, err = onQueues(ctx, client, queues); err != nil {
			return err
		}
		if left < low || low < 0 {
			low, progress = left, time.Now()
		}
		if time.Since(reported) >= 30*time.Second {
			fmt.Printf("chaos: %s: %d messages on the queues\n", time.Since(start).Round(time.Second), left)
			reported = time.Now()
		}
		if left == 0 || time.Since(progress) > stall {
			break
		}
	}
	faults.armed.Store(false)
	<-outagesMade
	outages := faults.windows()
	final, logged, err := deliveries(api)
	if err != nil {
		return err
	}
	states, err := endpointStates(api)
	if err != nil {
		return err
	}

	counts := map[string]int{}
	var problems []string
	var deadLettered map[string]string // delivery id -> receive count, read when needed
	for id, want := range expect {
		d, ok := final[id]
		switch {
		case !ok:
			problems = append(problems, "missing from the log: "+id)
		case d.Status != want:
			p := fmt.Sprintf("%s ended %s, want %s", id, d.Status, want)
			if d.Status != "delivered" && d.Status != "failed" {
				// Where its task went: SQS moves a message to the
				// dead-letter queue once it was received maxReceiveCount
				// times, whatever the delivery's state.
				if deadLettered == nil {
					if deadLettered, err = deadLetters(ctx, client, outputs["DeliveryTasksDeadLetterQueueUrl"]); err != nil {
						return err
					}
				}
				if c, ok := deadLettered[d.ID]; ok {
					p += fmt.Sprintf(" (its task is in the dead-letter queue, receive count %s)", c)
				}
			}
			problems = append(problems, p)
		}
		counts[d.Status]++
	}
	// One delivery per event, counted before the map above merged any two.
	if logged != n {
		problems = append(problems, fmt.Sprintf("%d deliveries in the log for %d events", logged, n))
	}
	// What the log says happened, the receivers saw: a delivered delivery
	// was answered 2xx, and every delivery's attempts, 1 to its count, each
	// reached its receiver (a repeat after a kill is the same number); one
	// whose receiver always fails used every attempt of its round.
	s.mu.Lock()
	for id, d := range final {
		if _, ok := expect[id]; !ok {
			problems = append(problems, fmt.Sprintf("the log has a delivery of an event never sent: %s", id))
			continue
		}
		kind := eventKind[id]
		got, want := map[int]bool{}, map[int]bool{}
		for _, a := range s.requests[d.ID] {
			n, _ := strconv.Atoi(a)
			got[n] = true
		}
		for a := 1; a <= d.AttemptCount; a++ {
			want[a] = true
		}
		switch {
		case d.Status == "delivered" && !s.answered[d.ID]:
			problems = append(problems, fmt.Sprintf("%s (%s) is delivered in the log, but its receiver never answered it 2xx", id, kind))
		case endpointStatus(kind) == "failing" && d.AttemptCount != attemptsPerRound:
			problems = append(problems, fmt.Sprintf("%s (%s) failed after %d attempts, want %d", id, kind, d.AttemptCount, attemptsPerRound))
		case !maps.Equal(got, want):
			problems = append(problems, fmt.Sprintf("%s (%s): the log counts %d attempts, its receiver saw attempts %v", id, kind, d.AttemptCount, s.requests[d.ID]))
		}
	}
	s.mu.Unlock()
	if left > 0 {
		problems = append(problems, fmt.Sprintf("%d messages still on the queues after %s without progress", left, stall))
	}
	// The SDK retries what AWS fails now and then; a process that had
	// spent the SDK's client-side retry quota would give up at once.
	stackLog, err := os.ReadFile(log.Name())
	if err != nil {
		return err
	}
	if n := strings.Count(string(stackLog), "retry quota exceeded"); n > 0 {
		problems = append(problems, fmt.Sprintf("%d AWS requests gave up at their first error: the SDK's retry quota was spent", n))
	}
	// No line the stack wrote (both functions, the runtime emulator, the
	// gateway) holds the API key, an endpoint's secret or a signature.
	if err := s.secrets.Check(string(stackLog)); err != nil {
		problems = append(problems, err.Error())
	}
	// The faults the battery claims were made.
	switch injected, faulted := faults.made(); {
	case injected == 0:
		problems = append(problems, "no AWS request of the functions went through the fault proxy")
	case c.awsFaults > 0 && faulted == 0:
		problems = append(problems, "no AWS request was failed on purpose")
	}
	if got := len(outages); got < c.outages {
		problems = append(problems, fmt.Sprintf("%d AWS outages of %d", got, c.outages))
	}
	if k.killed < kills {
		problems = append(problems, fmt.Sprintf("the delivery process was killed %d times of %d", k.killed, kills))
	}
	if kills > 0 && k.midSend == 0 {
		problems = append(problems, "no kill landed while a webhook was being sent")
	}

	// Every endpoint ends in the state its receiver earned it: a 410
	// disables it; one whose deliveries all fail is failing; the others
	// stay active. The failing flag is set on a best-effort basis (the
	// endpoint's next delivery sets it again): an endpoint left active
	// after the function logged that it could not update it, while every
	// AWS request failed (an outage: with 3 % of requests failing, the
	// SDK's and the update's own retries get through), is counted, not a
	// problem.
	notUpdated := map[string]bool{}
	for _, line := range strings.Split(string(stackLog), "\n") {
		var l struct {
			Time       time.Time `json:"time"`
			EndpointID string    `json:"endpoint_id"`
		}
		if !strings.Contains(line, `"msg":"endpoint state not updated"`) {
			continue
		}
		if i := strings.IndexByte(line, '{'); i < 0 || json.Unmarshal([]byte(line[i:]), &l) != nil {
			continue
		}
		for _, w := range outages {
			if !l.Time.Before(w[0]) && !l.Time.After(w[1].Add(2*time.Second)) {
				notUpdated[l.EndpointID] = true
			}
		}
	}
	flagMissed := 0
	for id, kind := range endpointKind {
		got, want := states[id], endpointStatus(kind)
		switch {
		case got == want:
		case want == "failing" && got == "active" && notUpdated[id]:
			flagMissed++
		default:
			problems = append(problems, fmt.Sprintf("endpoint %s (%s) is %q, want %q", id, kind, got, want))
		}
	}
	s.mu.Lock()
	// Every request for an event carried one delivery id, the log's.
	for ev, ids := range s.events {
		d, ok := final[ev]
		for id := range ids {
			if len(ids) > 1 || !ok || id != d.ID {
				problems = append(problems, fmt.Sprintf("event %s reached its receiver as delivery %s; the log has %q", ev, id, d.ID))
			}
		}
	}
	duplicates, requests, laterRounds := 0, 0, 0
	for _, attempts := range s.requests {
		requests += len(attempts)
		seenAttempt := map[string]bool{}
		for _, a := range attempts {
			if seenAttempt[a] {
				duplicates++
			}
			seenAttempt[a] = true
			if n, _ := strconv.Atoi(a); n > attemptsPerRound {
				laterRounds++
			}
		}
	}
	problems = append(problems, s.bad...)
	if laterRounds > 0 {
		// Nothing here redrives a delivery, so no delivery gets a second round.
		problems = append(problems, fmt.Sprintf("%d attempts past the %dth: a failed delivery was started again without a redrive", laterRounds, attemptsPerRound))
	}
	s.mu.Unlock()
	fmt.Printf("\nchaos results: %d events, %d kills (%d while sending), visibility timeout %s, %s\n",
		n, k.killed, k.midSend, visibility, time.Since(start).Round(time.Second))
	fmt.Printf("  deliveries in the log   %d (delivered %d, failed %d, other %d)\n", len(final), counts["delivered"], counts["failed"], len(final)-counts["delivered"]-counts["failed"])
	fmt.Printf("  requests received       %d, of which repeated attempts (same delivery id and attempt) %d\n", requests, duplicates)
	fmt.Printf("  attempts past the %dth   %d (want 0: a delivery started again after it had failed)\n", attemptsPerRound, laterRounds)
	faults.report(os.Stdout)
	fmt.Printf("  failing flags not set   %d (the update failed and was logged; the endpoint's next delivery sets it)\n", flagMissed)
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

// killer SIGKILLs the stack's delivery bootstraps at random moments.
type killer struct {
	root         int // ctlocal's pid: only its descendants are killed
	function     string
	receiverPort string
	seen         *seen

	killed, midSend int
}

// run kills times times within span. At each moment it picks a process
// that is sending a webhook, waiting up to senderWait for one (killed
// between the POST and its bookkeeping), any of the function's processes
// otherwise.
func (k *killer) run(times int, span, senderWait time.Duration) {
	for i := 0; i < times; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(span) / int64(times))))
		var pids, victims []int
		for wait := time.Now().Add(senderWait); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			pids = bootstraps(k.root, k.function)
			if victims = k.sending(pids); len(victims) > 0 {
				break // at once: a fast receiver answers within milliseconds
			}
		}
		if len(pids) == 0 {
			continue
		}
		busy := len(victims) > 0
		if !busy {
			victims = pids
		}
		if syscall.Kill(victims[rand.IntN(len(victims))], syscall.SIGKILL) == nil {
			k.killed++
			if busy {
				k.midSend++
			}
		}
	}
}

// sending returns those of pids that hold the client end of a request the
// receiver is answering.
func (k *killer) sending(pids []int) []int {
	k.seen.mu.Lock()
	ports := map[string]bool{}
	for addr := range k.seen.inFlight {
		ports[port(addr)] = true
	}
	k.seen.mu.Unlock()
	if len(ports) == 0 {
		return nil
	}
	// Sockets whose local port is a sender's and remote port the receiver's.
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			local, remote := hexPort(f[1]), hexPort(f[2])
			if remote == k.receiverPort && ports[local] {
				inodes[f[9]] = true
			}
		}
	}
	var out []int
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(link[len("socket:["):], "]")] {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// port returns the port of host:port.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// hexPort returns the decimal port of a /proc/net/tcp address (ADDR:PORT in hex).
func hexPort(a string) string {
	_, h, ok := strings.Cut(a, ":")
	if !ok {
		return ""
	}
	p, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return ""
	}
	return strconv.FormatUint(p, 10)
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

// queueVisibility reads a queue's visibility timeout.
func queueVisibility(ctx context.Context, client *sqs.Client, url string) (time.Duration, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout}})
	if err != nil {
		return 0, err
	}
	secs, err := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)])
	return time.Duration(secs) * time.Second, err
}

// deadLetters reads the delivery tasks on the dead-letter queue and returns
// the receive count of each delivery's.
func deadLetters(ctx context.Context, client *sqs.Client, url string) (map[string]string, error) {
	out := map[string]string{}
	for {
		res, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 300,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
		if err != nil {
			return nil, err
		}
		if len(res.Messages) == 0 {
			return out, nil
		}
		for _, m := range res.Messages {
			var task struct {
				DeliveryID string `json:"delivery_id"`
			}
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &task)
			out[task.DeliveryID] = m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]
		}
	}
}

// onQueues counts the messages on the queues: visible, in flight or delayed.
func onQueues(ctx context.Context, client *sqs.Client, urls []string) (int, error) {
	n := 0
	for _, u := range urls {
		out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &u, AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
		if err != nil {
			return 0, err
		}
		for _, v := range out.Attributes {
			c, _ := strconv.Atoi(v)
			n += c
		}
	}
	return n, nil
}

type delivery struct {
	ID           string `json:"id"`
	EventID      string `json:"event_id"`
	Event        string `json:"event"`
	Status       string `json:"status"`
	AttemptCount int    `json:"attempt_count"`
}

// deliveries reads the whole log of the account, by event id, leaving out
// the endpoints' test fires, and how many deliveries it listed (more than
// the map holds when an event has two).
func deliveries(c localclient.Client) (map[string]delivery, int, error) {
	ds, err := listAll[delivery](c, "/v1/deliveries")
	out := map[string]delivery{}
	n := 0
	for _, d := range ds {
		if d.Event != payload.TestEvent {
			out[d.EventID] = d
			n++
		}
	}
	return out, n, err
}

// listAll reads every page of one of the account's listings.
func listAll[T any](c localclient.Client, path string) ([]T, error) {
	var all []T
	cursor := ""
	for {
		p := path + "?limit=100"
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		page, err := c.Call("GET", p, "")
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(page["data"])
		var items []T
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, fmt.Errorf("GET %s: %w", p, err)
		}
		all = append(all, items...)
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

// endpointStatus is the status an endpoint of a receiver kind must end in.
func endpointStatus(kind string) string {
	switch kind {
	case "gone":
		return "disabled"
	case "fail", "hang", "reset", "redirect":
		return "failing"
	}
	return "active"
}

// endpointStates reads the status of every endpoint of the account.
func endpointStates(c localclient.Client) (map[string]string, error) {
	eps, err := listAll[struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}](c, "/v1/endpoints")
	out := map[string]string{}
	for _, e := range eps {
		out[e.ID] = e.Status
	}
	return out, err
}
