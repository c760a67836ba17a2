package kms_test

import (
	"context"
	"testing"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/kms"
)

func TestSealOpenBindsContext(t *testing.T) {
	stack := awstest.LoadStack(t)
	s := kms.New(awskms.NewFromConfig(awstest.Config(t)), stack.Outputs["SecretsKeyId"])
	ctx := context.Background()
	ec := map[string]string{"account_id": "acc_1", "endpoint_id": "ep_1", "purpose": "secret"}
	ct, err := s.Seal(ctx, []byte("02ee43a0"), ec)
	if err != nil {
		t.Fatal(err)
	}
	if string(ct) == "02ee43a0" {
		t.Fatal("ciphertext is the plaintext")
	}
	pt, err := s.Open(ctx, ct, ec)
	if err != nil || string(pt) != "02ee43a0" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	other := map[string]string{"account_id": "acc_2", "endpoint_id": "ep_1", "purpose": "secret"}
	if _, err := s.Open(ctx, ct, other); err == nil {
		t.Error("a ciphertext opened under another account's context")
	}
}
