package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// function runs a Lambda function's bootstrap under the Runtime Interface
// Emulator: a pool of instances, each one RIE process serving one invocation
// at a time, as one Lambda execution environment does.
type function struct {
	name      string
	rie       string
	bootstrap string
	env       []string
	timeout   time.Duration
	log       *lineLog

	free chan *instance
	mu   sync.Mutex
	all  map[*instance]bool
}

type instance struct {
	n      int
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

// errFunction is an invocation that ran but failed: the handler returned an
// error, panicked, timed out, or the process died.
var errFunction = errors.New("function error")

func startFunction(name, rie, bootstrap string, env []string, timeout time.Duration, instances int, log *lineLog) (*function, error) {
	f := &function{name: name, rie: rie, bootstrap: bootstrap, env: env, timeout: timeout, log: log,
		free: make(chan *instance, instances), all: map[*instance]bool{}}
	for i := 1; i <= instances; i++ {
		in, err := f.start(i)
		if err != nil {
			f.stop()
			return nil, err
		}
		f.free <- in
	}
	return f, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (f *function) start(n int) (*instance, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	runtimeAPI, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(f.rie,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", runtimeAPI,
		"--log-level", "error",
		f.bootstrap)
	cmd.Env = f.env
	out := f.log.writer(fmt.Sprintf("%s#%d", f.name, n))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s under the runtime emulator: %w", f.name, err)
	}
	in := &instance{n: n, cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(in.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-in.exited:
			return nil, fmt.Errorf("%s: the runtime emulator exited at start-up", f.name)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			in.kill()
			return nil, fmt.Errorf("%s: the runtime emulator did not listen within 10 s", f.name)
		}
	}
	f.mu.Lock()
	f.all[in] = true
	f.mu.Unlock()
	return in, nil
}

func (in *instance) kill() {
	_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
	<-in.exited
}

// invoke runs one invocation on a free instance, waiting for one. A function
// error returns the payload and an error wrapping errFunction; the instance
// that failed is replaced by a fresh one, as Lambda replaces an execution
// environment after a crash or timeout.
func (f *function) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var in *instance
	select {
	case in = <-f.free:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	body, err := f.invokeOn(ctx, in, payload)
	if err != nil && !errors.Is(err, context.Canceled) {
		f.mu.Lock()
		delete(f.all, in)
		f.mu.Unlock()
		in.kill()
		fresh, startErr := f.start(in.n)
		if startErr != nil {
			return body, errors.Join(err, startErr)
		}
		in = fresh
	}
	f.free <- in
	return body, err
}

func (f *function) invokeOn(ctx context.Context, in *instance, payload []byte) ([]byte, error) {
	// The emulator enforces the function timeout itself; the extra second
	// only covers a runtime emulator that stops answering.
	ctx, cancel := context.WithTimeout(ctx, f.timeout+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+in.addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			return nil, context.Canceled
		}
		return nil, fmt.Errorf("%w: %s#%d: %v", errFunction, f.name, in.n, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 7<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s#%d: read response: %v", errFunction, f.name, in.n, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%w: %s#%d: runtime emulator answered %d: %s", errFunction, f.name, in.n, resp.StatusCode, truncate(body))
	}
	var fnErr struct {
		ErrorMessage *string `json:"errorMessage"`
		ErrorType    string  `json:"errorType"`
	}
	if json.Unmarshal(body, &fnErr) == nil && fnErr.ErrorMessage != nil {
		return body, fmt.Errorf("%w: %s: %s", errFunction, fnErr.ErrorType, *fnErr.ErrorMessage)
	}
	if bytes.HasPrefix(body, []byte("Task timed out")) {
		return body, fmt.Errorf("%w: %s", errFunction, body)
	}
	return body, nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func (f *function) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for in := range f.all {
		in.kill()
	}
	f.all = map[*instance]bool{}
}

// lineLog writes child processes' output to one writer, a line at a time,
// each prefixed with its source, so lines from concurrent processes never
// interleave mid-line.
type lineLog struct {
	mu  sync.Mutex
	out io.Writer
	// quiet drops the child processes' lines: set while the stack stops,
	// when a bootstrap only reports that its runtime emulator went away.
	quiet bool
}

// silence drops the child processes' lines from now on.
func (l *lineLog) silence() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.quiet = true
}

func (l *lineLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, "[ctlocal] "+format+"\n", args...)
}

func (l *lineLog) writer(prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			if !l.quiet {
				fmt.Fprintf(l.out, "[%s] %s\n", prefix, sc.Text())
			}
			l.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}
