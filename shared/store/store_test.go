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

// TestRevokedKeyResolvesToNoAccount: a revoked key is refused at once, the
// account's other keys still work, and revoking an unknown key says so.
func TestRevokedKeyResolvesToNoAccount(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	key, other := apikey.New(), apikey.New()
	for _, k := range []string{key, other} {
		if err := st.CreateAPIKey(ctx, account, apikey.Hash(k), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // a second revocation changes nothing
		if err := st.RevokeAPIKey(ctx, apikey.Hash(key), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AccountByKeyHash(ctx, apikey.Hash(key)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("revoked key: %v, want not_found", err)
	}
	if got, err := st.AccountByKeyHash(ctx, apikey.Hash(other)); err != nil || got != account {
		t.Errorf("the account's other key: %q, %v", got, err)
	}
	if err := st.RevokeAPIKey(ctx, apikey.Hash(apikey.New()), time.Now()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("revoking an unknown key: %v, want not_found", err)
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
