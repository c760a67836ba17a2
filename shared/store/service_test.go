package store_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/kms"
)

func TestServiceKeyIsCreatedOnceAndShared(t *testing.T) {
	st := newStore(t)
	stack := awstest.LoadStack(t)
	sealer := kms.New(awskms.NewFromConfig(awstest.Config(t)), stack.Outputs["SecretsKeyId"])
	ctx := context.Background()
	name := "test-" + uniqueAccount()
	k1, err := st.ServiceKey(ctx, name, sealer)
	if err != nil || len(k1) != 32 {
		t.Fatalf("key %x, %v", k1, err)
	}
	k2, err := st.ServiceKey(ctx, name, sealer)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second read %x != %x (%v)", k2, k1, err)
	}
	k3, _ := st.ServiceKey(ctx, name+"-other", sealer)
	if bytes.Equal(k1, k3) {
		t.Error("two keys are equal")
	}
}

func TestCountRequest(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	w := time.Now().Truncate(time.Minute)
	for i := int64(1); i <= 3; i++ {
		n, err := st.CountRequest(ctx, account, w, time.Minute)
		if err != nil || n != i {
			t.Fatalf("count %d, %v; want %d", n, err, i)
		}
	}
	if n, _ := st.CountRequest(ctx, account, w.Add(time.Minute), time.Minute); n != 1 {
		t.Errorf("next window starts at %d", n)
	}
	if n, _ := st.CountRequest(ctx, uniqueAccount(), w, time.Minute); n != 1 {
		t.Errorf("another account starts at %d", n)
	}
}
