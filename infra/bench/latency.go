package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// latency runs the local stack (ctlocal, the real bootstraps under the
// runtime emulator) and sends events at a steady rate for a while, each to
// one endpoint on this machine, and prints the time from SendMessage to the
// webhook's arrival.
func latency(rate float64, d time.Duration) error {
	state, err := os.MkdirTemp("", "ct-bench-latency")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	cmd := exec.Command(".local/bin/ctlocal", "-stack", "ct-webhooks-bench-latency", "-addr", "127.0.0.1:0", "-state", state)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ctlocal (make build-local first): %w", err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); _ = cmd.Wait() }()
	var outputs map[string]string
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if b, err := os.ReadFile(filepath.Join(state, "outputs.json")); err == nil && json.Unmarshal(b, &outputs) == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("local stack not ready")
		}
		time.Sleep(200 * time.Millisecond)
	}
	key, err := exec.Command(".local/bin/apikey", "-account", "acc_latency", "-outputs", filepath.Join(state, "outputs.json")).Output()
	if err != nil {
		return fmt.Errorf("apikey: %w", err)
	}
	api := outputs["ApiUrl"]

	var mu sync.Mutex
	var lat []time.Duration
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var body struct {
			EventID string `json:"event_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if ns, ok := strings.CutPrefix(body.EventID, "evt_lat_"); ok && r.Header.Get("X-Ct-Attempt") == "1" {
			if sent, err := strconv.ParseInt(ns, 10, 64); err == nil {
				mu.Lock()
				lat = append(lat, now.Sub(time.Unix(0, sent)))
				mu.Unlock()
			}
		}
	}))
	defer receiver.Close()
	call := func(method, path, body string) (map[string]any, error) {
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		if res.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d %v", method, path, res.StatusCode, m)
		}
		return m, nil
	}
	ep, err := call("POST", "/v1/endpoints", `{"name":"latency","url":"`+receiver.URL+`/hook","triggers":["*"]}`)
	if err != nil {
		return err
	}
	id := ep["id"].(string)
	if _, err := call("POST", "/v1/endpoints/"+id+"/test", ""); err != nil {
		return err
	}
	if _, err := call("PUT", "/v1/endpoints/"+id+"/thermometers", `{"thermometers":[{"id":"th_lat","name":"Latency","type":"email"}]}`); err != nil {
		return err
	}

	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		return err
	}
	client := sqs.NewFromConfig(cfg)
	queueURL := outputs["ResponseEventsQueueUrl"]
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	sent := 0
	for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
		body := fmt.Sprintf(`{"version":1,"event_id":"evt_lat_%d","type":"rating","account_id":"acc_latency","occurred_at":"2026-11-27T10:55:03Z","thermometer":{"id":"th_lat","type":"email"},"response":{"id":"rsp_1","rating":"gold"}}`, time.Now().UnixNano())
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: &body}); err != nil {
			return err
		}
		sent++
	}
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(200 * time.Millisecond) {
		mu.Lock()
		n := len(lat)
		mu.Unlock()
		if n >= sent {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return fmt.Errorf("no webhook arrived")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("\nend-to-end latency, SendMessage to the webhook's arrival (local stack, %.0f events/s for %s)\n", rate, d)
	fmt.Printf("  %d sent, %d arrived   p50 %s   p99 %s   max %s\n", sent, len(lat),
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}
