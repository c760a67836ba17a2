package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/infra/localclient"
)

// latency runs the local stack (ctlocal, the real bootstraps under the
// runtime emulator) and sends events at a steady rate for a while, each to
// one endpoint on this machine, and prints the time from SendMessage to the
// webhook's arrival.
func latency(rate float64, d time.Duration) error {
	ls, err := localclient.Start("ct-webhooks-bench-latency", io.Discard)
	if err != nil {
		return err
	}
	defer ls.Stop()
	api, err := ls.Client("acc_latency")
	if err != nil {
		return err
	}
	outputs := ls.Outputs

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
	if _, _, err := api.Endpoint(receiver.URL+"/hook", "th_lat"); err != nil {
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
