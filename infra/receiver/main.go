// Command receiver is a webhook receiver for trying the service on one
// machine: it prints every webhook it gets and, given the endpoint's secret,
// whether its signature verifies. It answers 200, or the status -status says.
//
//	go run ./infra/receiver -addr 127.0.0.1:9000 -secret <secret>
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/customerthermometer/webhooks/shared/signature"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "the endpoint's secret, to verify signatures (or WEBHOOK_SECRET)")
	status := flag.Int("status", 200, "status to answer with")
	flag.Parse()
	log.SetFlags(0)
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, "cannot read body", http.StatusBadRequest)
				return
			}
			verdict := "not checked (no -secret)"
			if *secret != "" {
				verdict = "INVALID"
				if signature.Verify(*secret, r.Header.Get("Date"), body, r.Header.Get("X-Ct-Hmac-Sha256")) {
					verdict = "valid"
				}
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%s %s  event=%s delivery=%s attempt=%s signature=%s\n", r.Method, r.URL.Path,
				r.Header.Get("X-Ct-Event"), r.Header.Get("X-Ct-Delivery-Id"), r.Header.Get("X-Ct-Attempt"), verdict)
			if u, _, ok := r.BasicAuth(); ok {
				fmt.Fprintf(&b, "  basic auth user=%s\n", u)
			}
			fmt.Fprintf(&b, "  %s\n", body)
			log.Print(b.String())
			w.WriteHeader(*status)
		}),
	}
	log.Printf("receiving webhooks on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
