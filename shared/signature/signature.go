// Package signature computes the signatures a webhook carries (API.md section
// 3): the X-Ct-Hmac-Sha256 header and the Standard Webhooks webhook-signature.
// The key is the ASCII bytes of the endpoint's shared secret exactly as the user
// sees it (64 lowercase hex characters), never hex-decoded.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// Sign returns X-Ct-Hmac-Sha256: base64(HMAC-SHA256(secret, "Date: " + date +
// "\n" + body)), where date is the request's Date header value.
func Sign(secret, date string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("Date: "))
	m.Write([]byte(date))
	m.Write([]byte("\n"))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is Sign(secret, date, body), in constant time.
func Verify(secret, date string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, date, body)), []byte(sig))
}

// StandardSign returns the Standard Webhooks webhook-signature header value:
// "v1," + base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body)).
func StandardSign(secret, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// StandardSecret is the secret in the Standard Webhooks form, "whsec_" +
// base64(secret ASCII bytes), so receivers can use any Standard Webhooks
// library unchanged: it decodes back to the same key bytes.
func StandardSecret(secret string) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(secret))
}
