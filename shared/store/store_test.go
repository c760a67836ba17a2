package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	stack := awstest.LoadStack(t)
	db := dynamodb.NewFromConfig(awstest.Config(t))
	return store.New(db, stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
}

func uniqueAccount() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "acc_test_" + hex.EncodeToString(b)
}

func TestAPIKeyRoundTrip(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	key := apikey.New()
	if err := st.CreateAPIKey(ctx, account, apikey.Hash(key), time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := st.AccountByKeyHash(ctx, apikey.Hash(key))
	if err != nil || got != account {
		t.Fatalf("AccountByKeyHash = %q, %v; want %q", got, err, account)
	}
	// A second key for the same account keeps the account and both keys work.
	key2 := apikey.New()
	if err := st.CreateAPIKey(ctx, account, apikey.Hash(key2), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, key2} {
		if got, err := st.AccountByKeyHash(ctx, apikey.Hash(k)); err != nil || got != account {
			t.Errorf("key resolves to %q, %v", got, err)
		}
	}
	// The same hash is never stored twice.
	if err := st.CreateAPIKey(ctx, uniqueAccount(), apikey.Hash(key), time.Now()); err == nil {
		t.Error("storing an existing key hash for another account succeeded")
	}
	if got, _ := st.AccountByKeyHash(ctx, apikey.Hash(key)); got != account {
		t.Errorf("key was reassigned to %q", got)
	}
}

func TestUnknownKeyIsNotFound(t *testing.T) {
	st := newStore(t)
	_, err := st.AccountByKeyHash(context.Background(), apikey.Hash(apikey.New()))
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("err = %v, want not_found", err)
	}
}

func TestCreateAPIKeyRejectsBadAccount(t *testing.T) {
	st := newStore(t)
	err := st.CreateAPIKey(context.Background(), "no spaces allowed", apikey.Hash(apikey.New()), time.Now())
	if domain.CodeOf(err) != domain.CodeValidationFailed {
		t.Fatalf("err = %v, want validation_failed", err)
	}
}

func TestListEndpointsOfNewAccountIsEmpty(t *testing.T) {
	st := newStore(t)
	eps, more, err := st.ListEndpoints(context.Background(), uniqueAccount(), 20, "")
	if err != nil || more {
		t.Fatal(err)
	}
	if eps == nil || len(eps) != 0 {
		t.Fatalf("ListEndpoints = %#v, want an empty, non-nil list", eps)
	}
}
