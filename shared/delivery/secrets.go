package delivery

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// secretTTL is how long a decrypted secret is kept in memory: long enough
// that a burst of deliveries to one endpoint costs one KMS call, short enough
// that a rotated secret's old plaintext does not linger.
const secretTTL = 5 * time.Minute

// secretCache keeps decrypted secrets briefly, keyed by a hash of their
// ciphertext (a rotation changes the ciphertext, so it is never served
// stale). Plaintexts live only in memory and are never logged.
type secretCache struct {
	mu      sync.Mutex
	entries map[[32]byte]cachedSecret
}

type cachedSecret struct {
	plain   []byte
	expires time.Time
}

func (c *secretCache) open(ctx context.Context, o opener, ciphertext []byte, ec map[string]string) ([]byte, error) {
	h := sha256.New()
	h.Write(ciphertext)
	for _, k := range []string{"account_id", "endpoint_id", "purpose"} {
		h.Write([]byte{0})
		h.Write([]byte(ec[k]))
	}
	var key [32]byte
	copy(key[:], h.Sum(nil))
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.plain, nil
	}
	c.mu.Unlock()
	plain, err := o.Open(ctx, ciphertext, ec)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[[32]byte]cachedSecret{}
	}
	for k, e := range c.entries {
		if now.After(e.expires) {
			delete(c.entries, k)
		}
	}
	c.entries[key] = cachedSecret{plain: plain, expires: now.Add(secretTTL)}
	return plain, nil
}
