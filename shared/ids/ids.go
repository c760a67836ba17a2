// Package ids makes the service's identifiers: a type prefix and a ULID
// (48-bit millisecond time, 80 random bits, Crockford base32), so ids sort by
// creation time and never collide in practice.
package ids

import (
	"crypto/rand"
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
