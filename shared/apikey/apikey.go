// Package apikey makes API keys and the hashes they are stored as. A key is
// shown once, to whoever created it; only its SHA-256 hash is kept, so a leak
// of the table does not leak working keys.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Prefix starts every key, so a leaked key is recognisable by secret scanners.
const Prefix = "ctwh_"

// New returns a new key: Prefix and 43 characters of base64url (256 random bits).
func New() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on supported platforms (crypto/rand docs)
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Hash is the stored form of key: hex SHA-256 of its bytes.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether key could be a key New made; others are rejected
// without a table lookup.
func WellFormed(key string) bool {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}
