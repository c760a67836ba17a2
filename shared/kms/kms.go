// Package kms seals and opens small secrets (shared secrets, Basic Auth
// passwords, the service's cursor key) with the stack's KMS key. Each
// ciphertext is bound to its owner by the encryption context, so a
// ciphertext copied onto another account's or endpoint's item does not open.
package kms

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Sealer encrypts and decrypts with one KMS key.
type Sealer struct {
	client *kms.Client
	keyID  string
}

// New returns a Sealer for keyID.
func New(client *kms.Client, keyID string) *Sealer {
	return &Sealer{client: client, keyID: keyID}
}

// Seal encrypts plaintext (at most 4 KiB) bound to encryption context ec.
func (s *Sealer) Seal(ctx context.Context, plaintext []byte, ec map[string]string) ([]byte, error) {
	out, err := s.client.Encrypt(ctx, &kms.EncryptInput{KeyId: &s.keyID, Plaintext: plaintext, EncryptionContext: ec})
	if err != nil {
		return nil, fmt.Errorf("kms encrypt: %w", err)
	}
	return out.CiphertextBlob, nil
}

// Open decrypts a ciphertext made by Seal with the same encryption context.
func (s *Sealer) Open(ctx context.Context, ciphertext []byte, ec map[string]string) ([]byte, error) {
	out, err := s.client.Decrypt(ctx, &kms.DecryptInput{KeyId: &s.keyID, CiphertextBlob: ciphertext, EncryptionContext: ec})
	if err != nil {
		return nil, fmt.Errorf("kms decrypt: %w", err)
	}
	return out.Plaintext, nil
}
