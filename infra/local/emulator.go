package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ensureEmulator makes sure an AWS API emulator answers at endpoint. When one
// already does (moto, or LocalStack) it is used as it is; otherwise moto_server
// is started, and stop ends it again. stop is never nil.
func ensureEmulator(ctx context.Context, endpoint string, logTo io.Writer) (stop func(), err error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return func() {}, fmt.Errorf("AWS_ENDPOINT_URL %q is not a URL", endpoint)
	}
	if answers(u) {
		return func() {}, nil
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return func() {}, fmt.Errorf("AWS_ENDPOINT_URL %q needs an explicit port", endpoint)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return func() {}, fmt.Errorf("nothing answers at %s, and an emulator is only started on this machine (127.0.0.1)", endpoint)
	}
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return func() {}, fmt.Errorf("nothing answers at %s and moto_server is not installed: install it with `pip install \"moto[server]\"` (or start LocalStack there)", endpoint)
	}
	cmd := exec.Command(bin, "-H", host, "-p", port)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return func() {}, fmt.Errorf("start moto_server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for !answers(u) {
		select {
		case err := <-exited:
			return func() {}, fmt.Errorf("moto_server exited at start-up: %v", err)
		case <-ctx.Done():
			stop()
			return func() {}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return func() {}, errors.New("moto_server did not answer within 60 s")
		}
	}
	fmt.Fprintf(os.Stderr, "[ctlocal] started moto_server on %s\n", u.Host)
	return stop, nil
}

// answers reports whether an HTTP server answers at u.
func answers(u *url.URL) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u.String())
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
