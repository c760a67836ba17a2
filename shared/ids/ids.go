// Package ids makes the service's identifiers: a type prefix and a ULID
// (48-bit millisecond time, 80 random bits, Crockford base32), so ids sort by
// creation time and never collide in practice.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"regexp"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// New returns prefix + "_" + a ULID for time t.
func New(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // never fails on supported platforms (crypto/rand docs)
	return prefix + "_" + encode(b)
}

func encode(b [16]byte) string {
	// 128 bits as 26 base32 characters, the first carrying the top 3 bits.
	var out [26]byte
	var acc uint64
	bits := 2 // 26*5 = 130 = 128 + 2 leading zero bits
	j := 0
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[j] = crockford[(acc>>uint(bits))&31]
			j++
		}
	}
	return string(out[:])
}

var endpointID = regexp.MustCompile(`^ep_[0-9A-HJKMNP-TV-Z]{26}$`)

// ValidEndpointID reports whether id has the form New("ep", …) makes.
func ValidEndpointID(id string) bool { return endpointID.MatchString(id) }

// Derived returns prefix + "_" + 26 Crockford base32 characters of a hash of
// parts: the same parts always give the same id. Delivery ids are derived
// from (account, event, endpoint), so a resent event or a redelivered message
// never makes a second delivery.
func Derived(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	return prefix + "_" + encode(b)
}

var deliveryID = regexp.MustCompile(`^dlv_[0-9A-HJKMNP-TV-Z]{26}$`)

// ValidDeliveryID reports whether id has the form of a delivery id.
func ValidDeliveryID(id string) bool { return deliveryID.MatchString(id) }
