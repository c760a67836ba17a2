package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// LocalRetrySchedule makes every attempt of a delivery within two minutes:
// its round lasts at most 92.4 s (config.RoundSpan: each delay as long as a
// receiver's Retry-After can make it, with its largest jitter), which leaves
// time for the queue's receives.
const LocalRetrySchedule = "1s,2s,4s,6s,10s,15s,20s"

type options struct {
	stack           string
	addr            string
	stateDir        string
	codeDir         string
	rie             string
	template        string
	python          string
	provisionScript string
	endpoint        string
	region          string
	instances       int
	retrySchedule   string
	// sendsPerMinute, when set, replaces the template's budget of test
	// fires and redeliveries (local testing only: a battery that sets up
	// hundreds of endpoints test-fires each).
	sendsPerMinute int
	// visibilityTimeout, when set, replaces the template's visibility
	// timeout on the queues the poller reads (local testing only).
	visibilityTimeout time.Duration
	// functionsEndpoint, when set, is the AWS endpoint the functions call
	// instead of the emulator's (local testing only: a proxy in front of
	// the emulator that injects faults).
	functionsEndpoint string
	log               io.Writer
	// ready, when set, receives the outputs once everything is up.
	ready chan<- map[string]string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "with-emulator" {
		os.Exit(withEmulator(os.Args[2:]))
	}
	var o options
	fs := flag.NewFlagSet("ctlocal", flag.ExitOnError)
	fs.StringVar(&o.stack, "stack", "ct-webhooks-local", "stack name in the emulator")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:3000", "address of the local API gateway")
	fs.StringVar(&o.stateDir, "state", ".local", "directory for outputs.json and logs")
	fs.StringVar(&o.codeDir, "code", ".local/build", "directory holding <FunctionLogicalId>/bootstrap")
	fs.StringVar(&o.rie, "rie", ".local/bin/aws-lambda-rie", "the Lambda Runtime Interface Emulator binary")
	fs.StringVar(&o.template, "template", "template.yaml", "the SAM template")
	fs.StringVar(&o.python, "python", "python3", "Python with samtranslator, cfn-lint and boto3")
	fs.StringVar(&o.provisionScript, "provision", "infra/local/provision.py", "the provisioning script")
	fs.IntVar(&o.instances, "instances", 2, "execution environments per function")
	fs.StringVar(&o.retrySchedule, "retry-schedule", LocalRetrySchedule, "retry delays of failed deliveries (RETRY_SCHEDULE)")
	fs.IntVar(&o.sendsPerMinute, "sends-per-minute", 0,
		"local testing only: test fires and redeliveries one account may ask for per minute (SENDS_PER_MINUTE) instead of the template's; 0 keeps the template's")
	fs.DurationVar(&o.visibilityTimeout, "visibility-timeout", 0,
		"local testing only: visibility timeout of the polled queues instead of the template's (6 × the function timeout, as on AWS), "+
			"so that batches of a killed process come back sooner; 0 keeps the template's")
	fs.StringVar(&o.functionsEndpoint, "functions-aws-endpoint", "",
		"local testing only: the AWS endpoint the functions call instead of the emulator's (a proxy in front of it that injects faults, say); "+
			"the poller and the provisioning still use the emulator")
	_ = fs.Parse(os.Args[1:])
	o.endpoint = envOr("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
	o.region = envOr("AWS_REGION", "us-east-1")
	o.log = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ctlocal:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// awsEnv is the environment for everything the runner starts: requests go to
// the emulator with its dummy credentials, never to a real AWS account.
func awsEnv(o options) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ENDPOINT_URL="+o.endpoint,
		"AWS_REGION="+o.region,
		"AWS_DEFAULT_REGION="+o.region,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

// withEmulator runs a command with the emulator up, and stops the emulator
// afterwards if it started it.
func withEmulator(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ctlocal with-emulator -- command [args]")
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	stopEmulator, err := ensureEmulator(ctx, envOr("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"), emulatorLog(".local"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ctlocal:", err)
		return 1
	}
	defer stopEmulator()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "ctlocal:", err)
		return 1
	}
	return 0
}

func emulatorLog(dir string) io.Writer {
	_ = os.MkdirAll(dir, 0o755)
	f, err := os.OpenFile(filepath.Join(dir, "emulator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return io.Discard
	}
	return f
}

// run starts the local stack and keeps it up until ctx ends.
func run(ctx context.Context, o options) error {
	log := &lineLog{out: o.log}
	defer func() {
		if ctx.Err() != nil {
			log.printf("stopped")
		}
	}()
	if err := checkVisibility(o.visibilityTimeout); err != nil {
		return err
	}
	if u, err := url.Parse(o.functionsEndpoint); o.functionsEndpoint != "" && (err != nil || u.Scheme == "" || u.Host == "") {
		return fmt.Errorf("-functions-aws-endpoint %q is not a URL", o.functionsEndpoint)
	}
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	stopEmulator, err := ensureEmulator(ctx, o.endpoint, emulatorLog(o.stateDir))
	if err != nil {
		return err
	}
	defer stopEmulator()

	env := awsEnv(o)
	log.printf("deploying %s to the emulator at %s as stack %s", o.template, o.endpoint, o.stack)
	st, err := provision(ctx, o, env)
	if err != nil {
		return err
	}

	functions := map[string]*function{}
	defer func() {
		// Runs after the pollers have stopped and their invocations ended
		// (their lines are shown); what the bootstraps say from here on is
		// only that their runtime emulator went away.
		log.silence()
		for _, f := range functions {
			f.stop()
		}
	}()
	for logicalID, conf := range st.Functions {
		fenv := append([]string{}, env...)
		for k, v := range conf.Environment {
			fenv = append(fenv, k+"="+v)
		}
		// Local mode: loopback receivers on any port, and a retry schedule
		// that fits in two minutes. The template keeps production values.
		fenv = append(fenv,
			"LOCAL_MODE=true",
			"RETRY_SCHEDULE="+cmp.Or(o.retrySchedule, LocalRetrySchedule),
			"AWS_LAMBDA_FUNCTION_NAME="+conf.FunctionName,
			"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(conf.Timeout),
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(conf.MemorySize),
		)
		if o.functionsEndpoint != "" {
			fenv = append(fenv, "AWS_ENDPOINT_URL="+o.functionsEndpoint) // the last of a name wins
		}
		if o.sendsPerMinute > 0 {
			fenv = append(fenv, "SENDS_PER_MINUTE="+strconv.Itoa(o.sendsPerMinute))
		}
		bootstrap, err := filepath.Abs(filepath.Join(o.codeDir, logicalID, "bootstrap"))
		if err != nil {
			return err
		}
		f, err := startFunction(logicalID, o.rie, bootstrap, fenv, time.Duration(conf.Timeout)*time.Second, o.instances, log)
		if err != nil {
			return err
		}
		functions[logicalID] = f
	}

	gw := &gateway{log: log}
	for _, r := range st.HttpApiRoutes {
		f, ok := functions[r.Function]
		if !ok {
			return fmt.Errorf("route %s %s names unknown function %s", r.Method, r.Path, r.Function)
		}
		gw.routes = append(gw.routes, route{method: strings.ToUpper(r.Method), path: r.Path, fn: f})
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("local API gateway: %w", err)
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()

	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(o.region), awsconfig.WithBaseEndpoint(o.endpoint),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		return err
	}
	sqsClient := sqs.NewFromConfig(awsCfg)
	pollCtx, stopPolling := context.WithCancel(ctx)
	polling := make(chan struct{})
	pollers := 0
	defer func() {
		stopPolling()
		for i := 0; i < pollers; i++ {
			<-polling
		}
	}()
	for _, m := range st.EventSourceMappings {
		f, ok := functions[m.Function]
		if !ok {
			return fmt.Errorf("event source mapping names unknown function %s", m.Function)
		}
		name := m.EventSourceArn[strings.LastIndex(m.EventSourceArn, ":")+1:]
		q, err := sqsClient.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
		if err != nil {
			return fmt.Errorf("queue of event source %s: %w", m.EventSourceArn, err)
		}
		declared := time.Duration(m.VisibilityTimeout) * time.Second
		vt, err := setVisibility(ctx, sqsClient, *q.QueueUrl, declared, o.visibilityTimeout)
		if err != nil {
			return err
		}
		if o.visibilityTimeout > 0 {
			log.printf("queue %s: visibility timeout %s instead of the template's %s (local testing only)", name, vt, declared)
		}
		if timeout := time.Duration(st.Functions[m.Function].Timeout) * time.Second; vt < timeout {
			log.printf("queue %s: a batch running longer than its visibility timeout %s comes back while it runs "+
				"(AWS refuses a timeout below the function's, %s)", name, vt, timeout)
		}
		p := &poller{
			sqs: sqsClient, queueURL: *q.QueueUrl, queueArn: m.EventSourceArn, region: o.region,
			batchSize: max(m.BatchSize, 1), window: time.Duration(m.MaximumBatchingWindowInSeconds) * time.Second,
			reportFailures: containsString(m.FunctionResponseTypes, "ReportBatchItemFailures"),
			concurrency:    o.instances, fn: f, log: log, wait: 2,
		}
		pollers++
		go func() { p.run(pollCtx); polling <- struct{}{} }()
	}

	outputs := map[string]string{}
	for k, v := range st.Outputs {
		outputs[k] = v
	}
	outputs["ApiUrl"] = "http://" + ln.Addr().String()
	outputs["StackName"] = st.StackName
	if err := writeJSON(filepath.Join(o.stateDir, "outputs.json"), outputs); err != nil {
		return err
	}
	log.printf("ready: API on %s, delivery function consuming %s; outputs in %s; Ctrl-C stops everything",
		outputs["ApiUrl"], outputs["ResponseEventsQueueUrl"], filepath.Join(o.stateDir, "outputs.json"))
	if o.ready != nil {
		o.ready <- outputs
	}
	<-ctx.Done()
	log.printf("stopping")
	return nil
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
