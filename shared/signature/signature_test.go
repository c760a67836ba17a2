package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type vectors struct {
	Vectors []struct {
		Name       string `json:"name"`
		Secret     string `json:"secret"`
		Date       string `json:"date"`
		BodyBase64 string `json:"body_base64"`
		Want       string `json:"x_ct_hmac_sha256"`
	} `json:"vectors"`
}

// TestVectors checks Sign against vectors computed independently of this code.
func TestVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "signature-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Vectors) < 3 {
		t.Fatalf("only %d vectors", len(v.Vectors))
	}
	for _, vec := range v.Vectors {
		t.Run(vec.Name, func(t *testing.T) {
			body, err := base64.StdEncoding.DecodeString(vec.BodyBase64)
			if err != nil {
				t.Fatal(err)
			}
			if got := Sign(vec.Secret, vec.Date, body); got != vec.Want {
				t.Errorf("Sign = %s, want %s", got, vec.Want)
			}
			if !Verify(vec.Secret, vec.Date, body, vec.Want) {
				t.Error("Verify rejects the vector")
			}
			if Verify(vec.Secret, vec.Date, append(body, ' '), vec.Want) {
				t.Error("Verify accepts a changed body")
			}
		})
	}
}

func TestStandardWebhooks(t *testing.T) {
	secret := "02ee43a0c82e42c3f79701cc7db8389f3fcd4ac1dace9ec92592220964e75d59"
	std := StandardSecret(secret)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(std, "whsec_"))
	if err != nil || string(key) != secret {
		t.Fatalf("whsec form does not decode to the secret's bytes: %q", key)
	}
	// What a Standard Webhooks verifier computes with the decoded key.
	body := []byte(`{"event":"test"}`)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("dlv_1.1795776903." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := StandardSign(secret, "dlv_1", 1795776903, body); got != want {
		t.Errorf("StandardSign = %s, want %s", got, want)
	}
}
