package main

import (
	"bytes"
	"context"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/dispatch"
)

// TestTheReceiverChecksBothSignatures: a webhook signed with the secret the
// receiver was given is answered with the chosen status; one signed with
// another secret (the endpoint's secret was rotated), or with a signature
// altered, gets 401, so the delivery log does not show it delivered.
func TestTheReceiverChecksBothSignatures(t *testing.T) {
	const secret = "02ee43a0c82e42c3f79701cc7db8389f3fcd4ac1dace9ec92592220964e75d59"
	var out bytes.Buffer
	srv := httptest.NewServer(receiver(secret, 202, log.New(&out, "", 0)))
	defer srv.Close()
	c := dispatch.New(dispatch.Options{LocalMode: true})
	hook := func(secret string) dispatch.Webhook {
		return dispatch.Webhook{URL: srv.URL + "/hooks/ct", Secret: secret, EndpointID: "ep_1", DeliveryID: "dlv_1",
			Event: "comment", Attempt: 1, Body: []byte(`{"id":"dlv_1"}`)}
	}
	if res := c.Send(context.Background(), hook(secret)); res.StatusCode != 202 {
		t.Errorf("a webhook signed with the secret: %d %v, want 202", res.StatusCode, res.Err)
	}
	if !strings.Contains(out.String(), "signature=valid") {
		t.Errorf("printed %q", out.String())
	}
	other := strings.Repeat("a", 64)
	if res := c.Send(context.Background(), hook(other)); res.StatusCode != 401 {
		t.Errorf("a webhook signed with another secret: %d, want 401", res.StatusCode)
	}

	// Each signature on its own: the other one right, this one altered.
	for _, header := range []string{"X-Ct-Hmac-Sha256", "Webhook-Signature"} {
		req := httptest.NewRequest("POST", "/hooks/ct", strings.NewReader(`{"id":"dlv_1"}`))
		dispatch.SetHeaders(req.Header, hook(secret), time.Now())
		req.Header.Set(header, strings.Replace(req.Header.Get(header), "A", "B", 1)+"x")
		rec := httptest.NewRecorder()
		receiver(secret, 200, log.New(&out, "", 0)).ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("%s altered: %d, want 401", header, rec.Code)
		}
	}

	// Without a secret nothing is checked.
	rec := httptest.NewRecorder()
	receiver("", 200, log.New(&out, "", 0)).ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader("{}")))
	if rec.Code != 200 {
		t.Errorf("no secret: %d, want 200", rec.Code)
	}
}
