// Command receiver is a webhook receiver for trying the service on one
// machine: it prints every webhook it gets and, given the endpoint's secret,
// whether both its signatures verify. It answers 200, or the status -status
// says; with a secret, a webhook whose signatures do not both verify gets
// 401, as the receiving guide recommends, so the delivery log shows it.
//
//	go run ./infra/receiver -addr 127.0.0.1:9000 -secret <secret>
package main

import (
	"crypto/hmac"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/customerthermometer/webhooks/shared/signature"
)

// verified reports whether r carries both signatures of body made with
// secret (docs/receiving.md): X-Ct-Hmac-Sha256 over the Date header, and the
// Standard Webhooks webhook-signature (any of its space-separated values).
func verified(secret string, r *http.Request, body []byte) bool {
	if !signature.Verify(secret, r.Header.Get("Date"), body, r.Header.Get("X-Ct-Hmac-Sha256")) {
		return false
	}
	ts, err := strconv.ParseInt(r.Header.Get("Webhook-Timestamp"), 10, 64)
	if err != nil {
		return false
	}
	want := signature.StandardSign(secret, r.Header.Get("Webhook-Id"), ts, body)
	for _, got := range strings.Fields(r.Header.Get("Webhook-Signature")) {
		if hmac.Equal([]byte(got), []byte(want)) {
			return true
		}
	}
	return false
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "the endpoint's secret, to verify signatures (or WEBHOOK_SECRET)")
	status := flag.Int("status", 200, "status to answer with")
	flag.Parse()
	log.SetFlags(0)
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler:           receiver(*secret, *status, log.Default()),
	}
	log.Printf("receiving webhooks on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// receiver prints each webhook to out and answers status, or 401 when
// secret is set and the webhook's signatures do not both verify.
func receiver(secret string, status int, out *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		verdict, answer := "not checked (no -secret)", status
		if secret != "" {
			verdict, answer = "INVALID (answered 401; is -secret the endpoint's current secret?)", http.StatusUnauthorized
			if verified(secret, r, body) {
				verdict, answer = "valid", status
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s  event=%s delivery=%s attempt=%s signature=%s\n", r.Method, r.URL.Path,
			r.Header.Get("X-Ct-Event"), r.Header.Get("X-Ct-Delivery-Id"), r.Header.Get("X-Ct-Attempt"), verdict)
		if u, _, ok := r.BasicAuth(); ok {
			fmt.Fprintf(&b, "  basic auth user=%s\n", u)
		}
		fmt.Fprintf(&b, "  %s\n", body)
		out.Print(b.String())
		w.WriteHeader(answer)
	})
}
