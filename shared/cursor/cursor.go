// Package cursor makes pagination cursors that are opaque to clients and bound
// to the account and list that issued them: the position is sealed with
// AES-256-GCM, and the scope (account and list) is authenticated as
// additional data. A cursor that was altered, made up, or taken from another
// account's or another list's page does not open.
package cursor

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// ErrInvalid is returned for every cursor that does not open.
var ErrInvalid = errors.New("invalid cursor")

// maxLen bounds what is even tried: real cursors are far shorter.
const maxLen = 2048

// Codec seals and opens cursors with one 32-byte key.
type Codec struct{ aead cipher.AEAD }

// New returns a Codec; key must be 32 bytes.
func New(key []byte) (*Codec, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("cursor key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Codec{aead: aead}, nil
}

// Seal returns a cursor for position, valid only for scope.
func (c *Codec) Seal(scope string, position []byte) string {
	nonce := make([]byte, c.aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails on supported platforms (crypto/rand docs)
	out := c.aead.Seal(nonce, nonce, position, []byte(scope))
	return base64.RawURLEncoding.EncodeToString(out)
}

// Open returns the position sealed in token, or ErrInvalid.
func (c *Codec) Open(scope, token string) ([]byte, error) {
	if len(token) > maxLen {
		return nil, ErrInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < c.aead.NonceSize()+c.aead.Overhead() {
		return nil, ErrInvalid
	}
	n := c.aead.NonceSize()
	pos, err := c.aead.Open(nil, raw[:n], raw[n:], []byte(scope))
	if err != nil {
		return nil, ErrInvalid
	}
	return pos, nil
}
