//go:build ignore

// Command verify checks the X-Ct-Hmac-Sha256 verification function shown in
// docs/receiving.md against the signature test vectors.
//
// Usage: go run docs/examples/verify.go testdata/signature-vectors.json
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

// VerifyWebhook reports whether signature (the X-Ct-Hmac-Sha256 header) was
// made with secret over "Date: " + date + "\n" + body. body must be the raw
// request body bytes, exactly as received.
func VerifyWebhook(secret, date string, body []byte, signature string) bool {
	if secret == "" {
		return false // never verify with an empty key (e.g. a missing setting)
	}
	mac := hmac.New(sha256.New, []byte(secret)) // the secret's ASCII bytes, not hex-decoded
	mac.Write([]byte("Date: " + date + "\n"))
	mac.Write(body)
	expected := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(expected), []byte(signature)) // constant time
}

// DateIsFresh reports whether the Date header is within 5 minutes of now.
func DateIsFresh(date string, now time.Time) bool {
	sent, err := http.ParseTime(date)
	if err != nil {
		return false
	}
	skew := now.Sub(sent)
	return skew <= 5*time.Minute && skew >= -5*time.Minute
}

type vectorFile struct {
	Vectors []struct {
		Name       string `json:"name"`
		Secret     string `json:"secret"`
		Date       string `json:"date"`
		BodyBase64 string `json:"body_base64"`
		Signature  string `json:"x_ct_hmac_sha256"`
	} `json:"vectors"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run verify.go <signature-vectors.json>")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if len(vf.Vectors) == 0 {
		fmt.Fprintln(os.Stderr, "no vectors in", os.Args[1])
		os.Exit(2)
	}
	failed := 0
	for _, v := range vf.Vectors {
		body, err := base64.StdEncoding.DecodeString(v.BodyBase64)
		if err != nil {
			fmt.Printf("FAIL %s: body_base64: %v\n", v.Name, err)
			failed++
			continue
		}
		tampered := append(append([]byte{}, body...), ' ')
		sent, _ := http.ParseTime(v.Date)
		switch {
		case !VerifyWebhook(v.Secret, v.Date, body, v.Signature):
			fmt.Printf("FAIL %s: expected signature rejected\n", v.Name)
			failed++
		case VerifyWebhook(v.Secret, v.Date, tampered, v.Signature):
			fmt.Printf("FAIL %s: tampered body accepted\n", v.Name)
			failed++
		case !DateIsFresh(v.Date, sent.Add(4*time.Minute)) || DateIsFresh(v.Date, sent.Add(6*time.Minute)):
			fmt.Printf("FAIL %s: Date freshness check wrong\n", v.Name)
			failed++
		default:
			fmt.Printf("ok   %s\n", v.Name)
		}
	}
	if failed > 0 {
		fmt.Printf("go: %d of %d vectors failed\n", failed, len(vf.Vectors))
		os.Exit(1)
	}
	fmt.Printf("go: all %d vectors passed\n", len(vf.Vectors))
}
