// Package localclient starts the local stack (ctlocal) as a process and
// talks to its API, for the tools that measure and batter it (bench, chaos).
package localclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stack is a running local stack.
type Stack struct {
	Outputs map[string]string
	state   string
	cmd     *exec.Cmd
}

// Start runs .local/bin/ctlocal for stack with extra flags, its output going
// to log, and waits until it has written its outputs.
func Start(stack string, log io.Writer, extra ...string) (*Stack, error) {
	state, err := os.MkdirTemp("", "ct-"+stack)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-stack", stack, "-addr", "127.0.0.1:0", "-state", state}, extra...)
	cmd := exec.Command(".local/bin/ctlocal", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(state)
		return nil, fmt.Errorf("start ctlocal (make build-local first): %w", err)
	}
	s := &Stack{state: state, cmd: cmd}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(state, "outputs.json")); err == nil && json.Unmarshal(b, &s.Outputs) == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("local stack not ready within 3 minutes")
		}
	}
}

// Pid is the ctlocal process's id: the function instances it runs are its
// descendants.
func (s *Stack) Pid() int { return s.cmd.Process.Pid }

// Stop interrupts ctlocal (which stops what it started) and waits for it.
func (s *Stack) Stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
	_ = s.cmd.Wait()
	os.RemoveAll(s.state)
}

// Client returns an API client with a new key for account, made by the tool
// behind `make api-key`.
func (s *Stack) Client(account string) (Client, error) {
	key, err := exec.Command(".local/bin/apikey", "-account", account, "-outputs", filepath.Join(s.state, "outputs.json")).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return Client{}, fmt.Errorf("apikey: %w: %s", err, bytes.TrimSpace(exit.Stderr))
		}
		return Client{}, fmt.Errorf("apikey: %w", err)
	}
	return Client{URL: s.Outputs["ApiUrl"], Key: strings.TrimSpace(string(key))}, nil
}

// Client calls the management API with one key.
type Client struct{ URL, Key string }

// Call sends a request and decodes the JSON answer; a status of 300 or more
// is an error. A 429 (the account's request rate) is retried after the
// delay the API names, a few times.
func (c Client) Call(method, path, body string) (map[string]any, error) {
	for try := 1; ; try++ {
		m, retry, err := c.call(method, path, body)
		if retry == 0 || try == 10 {
			return m, err
		}
		time.Sleep(retry)
	}
}

// call makes one request; retry is how long to wait before trying again
// when the API refused it for the request rate.
func (c Client) call(method, path, body string) (m map[string]any, retry time.Duration, err error) {
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(&m)
	if res.StatusCode >= 300 {
		err = fmt.Errorf("%s %s: %d %v", method, path, res.StatusCode, m)
		if res.StatusCode == http.StatusTooManyRequests {
			secs, _ := strconv.Atoi(res.Header.Get("Retry-After"))
			retry = time.Duration(max(secs, 1)) * time.Second
		}
		return nil, retry, err
	}
	return m, 0, nil
}

// Endpoint registers an endpoint for url with every trigger, test-fires it
// and links it to thermometer; it returns the endpoint's id and secret.
func (c Client) Endpoint(url, thermometer string) (id, secret string, err error) {
	ep, err := c.Call("POST", "/v1/endpoints", fmt.Sprintf(`{"name":"local","url":%q,"triggers":["*"]}`, url))
	if err != nil {
		return "", "", err
	}
	id, _ = ep["id"].(string)
	secret, _ = ep["secret"].(string)
	if _, err := c.Call("POST", "/v1/endpoints/"+id+"/test", ""); err != nil {
		return "", "", err
	}
	_, err = c.Call("PUT", "/v1/endpoints/"+id+"/thermometers", fmt.Sprintf(`{"thermometers":[{"id":%q,"name":"Local","type":"email"}]}`, thermometer))
	return id, secret, err
}
