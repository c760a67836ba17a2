package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/store"
)

func newEndpoint(account string, i int) domain.Endpoint {
	now := time.Now().UTC().Add(time.Duration(i) * time.Millisecond)
	return domain.Endpoint{
		ID: ids.New("ep", now), AccountID: account, Name: fmt.Sprintf("endpoint %d", i),
		URL: "https://example.com/hook", Triggers: []string{"comment.red", "rating.*"},
		Secret: domain.Sealed("sealed-secret"), Enabled: true, CreatedAt: now, UpdatedAt: now,
		Thermometers: []domain.Thermometer{},
	}
}

func TestEndpointLifecycle(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	e := newEndpoint(account, 0)
	e.BasicAuth = &domain.BasicAuth{Username: "ct", Password: domain.Sealed("sealed-pw")}
	if err := st.CreateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetEndpoint(ctx, account, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != e.Name || got.URL != e.URL || len(got.Triggers) != 2 || string(got.Secret) != "sealed-secret" ||
		got.BasicAuth == nil || string(got.BasicAuth.Password) != "sealed-pw" || got.Version != 1 || !got.Enabled {
		t.Fatalf("read back %+v", got)
	}
	if _, err := st.GetEndpoint(ctx, uniqueAccount(), e.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("another account reads the endpoint: %v", err)
	}

	// Linking writes one item per thermometer, found by (account, thermometer).
	prev := got.Thermometers
	got.Thermometers = []domain.Thermometer{{ID: "th_1", Name: "One", Type: "email"}, {ID: "th_2", Name: "Two", Type: "embedded"}}
	if err := st.SaveEndpoint(ctx, got, prev); err != nil {
		t.Fatal(err)
	}
	for _, th := range []string{"th_1", "th_2"} {
		linked, err := linked(t, st, account, th)
		if err != nil || len(linked) != 1 || linked[0].ID != e.ID || linked[0].Thermometers[0].ID != th || string(linked[0].Secret) != "sealed-secret" {
			t.Fatalf("LinkedEndpoints(%s) = %+v, %v", th, linked, err)
		}
	}
	if linked, _ := linked(t, st, uniqueAccount(), "th_1"); len(linked) != 0 {
		t.Error("another account's thermometer finds the endpoint")
	}

	// A stale version is a conflict and changes nothing.
	stale := got
	stale.Name = "stale"
	if err := st.SaveEndpoint(ctx, stale, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale save: %v", err)
	}

	// Replacing the set removes dropped links and updates kept ones.
	cur, _ := st.GetEndpoint(ctx, account, e.ID)
	prev = cur.Thermometers
	cur.Thermometers = []domain.Thermometer{{ID: "th_2", Name: "Two renamed", Type: "embedded"}}
	cur.URL = "https://example.org/new"
	if err := st.SaveEndpoint(ctx, cur, prev); err != nil {
		t.Fatal(err)
	}
	if linked, _ := linked(t, st, account, "th_1"); len(linked) != 0 {
		t.Errorf("th_1 still linked: %+v", linked)
	}
	if linked, _ := linked(t, st, account, "th_2"); len(linked) != 1 || linked[0].URL != "https://example.org/new" || linked[0].Thermometers[0].Name != "Two renamed" {
		t.Errorf("th_2 link not updated: %+v", linked)
	}

	// Deleting removes the endpoint and its links.
	cur, _ = st.GetEndpoint(ctx, account, e.ID)
	if err := st.DeleteEndpoint(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetEndpoint(ctx, account, e.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("deleted endpoint still readable: %v", err)
	}
	if linked, _ := linked(t, st, account, "th_2"); len(linked) != 0 {
		t.Errorf("deleted endpoint still linked: %+v", linked)
	}
	if err := st.DeleteEndpoint(ctx, cur); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// createEndpoints stores n endpoints of account and returns their ids in
// the order created.
func createEndpoints(t *testing.T, st *store.Store, account string, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		e := newEndpoint(account, i)
		if err := st.CreateEndpoint(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func TestListEndpointsPages(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	want := createEndpoints(t, st, account, 5)
	if err := st.CreateEndpoint(ctx, newEndpoint(uniqueAccount(), 9)); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		eps, more, err := st.ListEndpoints(ctx, account, 2, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range eps {
			got = append(got, e.ID)
		}
		if !more {
			if len(eps) == 0 {
				t.Error("last page is empty")
			}
			break
		}
		after = eps[len(eps)-1].ID
		if pages > 5 {
			t.Fatal("too many pages")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
}

// TestListEndpointsReadsPastTheQuerySizeLimit: a Query returns at most
// 1 MB of items, so a page of large endpoints needs more than one; the page
// must still be full, with more reported, and the listing complete.
func TestListEndpointsReadsPastTheQuerySizeLimit(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	want := createEndpoints(t, st, account, 30)
	for _, id := range want {
		if err := st.PadEndpoint(ctx, account, id, 60_000); err != nil {
			t.Fatal(err)
		}
		// The emulator copies a whole table for every transaction on it:
		// leave it small for the tests after this one.
		t.Cleanup(func() { _ = st.PadEndpoint(ctx, account, id, 0) })
	}
	eps, more, err := st.ListEndpoints(ctx, account, 25, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 25 || !more {
		t.Fatalf("first page: %d endpoints, more %v; want 25 and more (30 endpoints of 60 KB)", len(eps), more)
	}
	rest, more, err := st.ListEndpoints(ctx, account, 25, eps[24].ID)
	if err != nil || more {
		t.Fatalf("second page: more %v, %v", more, err)
	}
	var got []string
	for _, e := range append(eps, rest...) {
		got = append(got, e.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
}

func TestManyLinksSpanTransactions(t *testing.T) {
	// A table of its own, as in TestALaterWriteKeepsItsLinks: run beside
	// other packages' suites on one emulator, a transaction of theirs that
	// was cancelled put back a copy of the table without this test's
	// writes.
	st := store.New(dynamodb.NewFromConfig(awstest.Config(t)), privateTable(t), awstest.LoadStack(t).Outputs["DeliveriesTableName"])
	ctx := context.Background()
	account := uniqueAccount()
	e := newEndpoint(account, 0)
	if err := st.CreateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	e, _ = st.GetEndpoint(ctx, account, e.ID)
	for i := 0; i < 150; i++ {
		e.Thermometers = append(e.Thermometers, domain.Thermometer{ID: fmt.Sprintf("th_%03d", i), Name: "T", Type: "email"})
	}
	if err := st.SaveEndpoint(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	for _, th := range []string{"th_000", "th_099", "th_149"} {
		if linked, err := linked(t, st, account, th); err != nil || len(linked) != 1 {
			t.Errorf("%s: %+v %v", th, linked, err)
		}
	}
}

// linked reads every page of the endpoints linked to thermometer.
func linked(t *testing.T, st *store.Store, account, thermometer string) ([]domain.Endpoint, error) {
	t.Helper()
	var all []domain.Endpoint
	after := ""
	for {
		eps, next, err := st.LinkedEndpointsPage(context.Background(), account, thermometer, after, 2)
		if err != nil {
			return nil, err
		}
		all = append(all, eps...)
		if next == "" {
			return all, nil
		}
		after = next
	}
}

// TestRepairLinkNeverUndoesANewerWrite: a repair made from an endpoint read
// before a later write leaves that write's links alone; one made from the
// endpoint as it is brings the link in line.
func TestRepairLinkNeverUndoesANewerWrite(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	e := createLinked(t, st, account, "th_1", "th_2")
	old, err := st.GetEndpoint(ctx, account, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur := old
	cur.Triggers = []string{"*"}
	if err := st.SaveEndpoint(ctx, cur, old.Thermometers); err != nil {
		t.Fatal(err)
	}
	if err := st.RepairLink(ctx, old, "th_1"); err != nil {
		t.Fatal(err)
	}
	if l, err := linked(t, st, account, "th_1"); err != nil || len(l) != 1 || l[0].Version != 2 || len(l[0].Triggers) != 1 || l[0].Triggers[0] != "*" {
		t.Errorf("a repair from an older read rewrote the link: %+v (%v)", l, err)
	}
	unlinked := old
	unlinked.Thermometers = old.Thermometers[:1]
	if err := st.RepairLink(ctx, unlinked, "th_2"); err != nil {
		t.Fatal(err)
	}
	if l, err := linked(t, st, account, "th_2"); err != nil || len(l) != 1 {
		t.Errorf("a repair from an older read deleted the link: %+v (%v)", l, err)
	}

	// From the endpoint as it is: after a state write (version 3, its links
	// still at 2), th_1's link is rewritten, and th_2's, unlinked there, is
	// deleted. A link that is not there is not put back: a later write or
	// the endpoint's deletion removed it.
	cur, _ = st.GetEndpoint(ctx, account, e.ID)
	cur.Failing = true
	if err := st.SaveEndpointState(ctx, cur); err != nil {
		t.Fatal(err)
	}
	cur, _ = st.GetEndpoint(ctx, account, e.ID)
	cur.Thermometers = cur.Thermometers[:1]
	for _, th := range []string{"th_1", "th_2"} {
		if err := st.RepairLink(ctx, cur, th); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := linked(t, st, account, "th_2"); err != nil || len(l) != 0 {
		t.Errorf("th_2's link left: %+v (%v)", l, err)
	}
	if l, err := linked(t, st, account, "th_1"); err != nil || len(l) != 1 || l[0].Version != 3 || !l[0].Failing {
		t.Errorf("th_1's link not rewritten: %+v (%v)", l, err)
	}
	if err := st.DeleteLink(ctx, account, "th_1", e.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.RepairLink(ctx, cur, "th_1"); err != nil {
		t.Fatal(err)
	}
	if l, err := linked(t, st, account, "th_1"); err != nil || len(l) != 0 {
		t.Errorf("a missing link was put back: %+v (%v)", l, err)
	}
}

// recordingReads keeps the body of every GetItem and Query request.
type recordingReads struct {
	next  aws.HTTPClient
	mu    sync.Mutex
	reads []string
}

func (c *recordingReads) Do(r *http.Request) (*http.Response, error) {
	if awstest.IsOperation(r, "GetItem") || awstest.IsOperation(r, "Query") {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		c.mu.Lock()
		c.reads = append(c.reads, string(b))
		c.mu.Unlock()
	}
	return c.next.Do(r)
}

// TestReadsThatFollowAWriteAreConsistent: the reads whose answer a write
// just before must show (an endpoint read for a change, the links an event
// fans out through, an account or key just created) are strongly
// consistent.
func TestReadsThatFollowAWriteAreConsistent(t *testing.T) {
	cfg := awstest.Config(t)
	rec := &recordingReads{next: cfg.HTTPClient}
	cfg.HTTPClient = rec
	stack := awstest.LoadStack(t)
	st := store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	ctx := context.Background()
	account := uniqueAccount()
	e := createLinked(t, st, account, "th_1")
	hash := apikey.Hash(apikey.New())
	if err := st.CreateAPIKey(ctx, account, hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	reads := []func() error{
		func() error { _, err := st.GetEndpoint(ctx, account, e.ID); return err },
		func() error { _, _, err := st.LinkedEndpointsPage(ctx, account, "th_1", "", 10); return err },
		func() error { _, err := st.AccountExists(ctx, account); return err },
		func() error { _, err := st.AccountByKeyHash(ctx, hash); return err },
	}
	for i, read := range reads {
		rec.mu.Lock()
		rec.reads = nil
		rec.mu.Unlock()
		if err := read(); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		for _, body := range rec.reads {
			if !strings.Contains(body, `"ConsistentRead":true`) {
				t.Errorf("read %d is eventually consistent: %s", i, body)
			}
		}
		if len(rec.reads) == 0 {
			t.Errorf("read %d made no request", i)
		}
		rec.mu.Unlock()
	}
}

// TestALaterWriteKeepsItsLinks: moving an endpoint from 100 thermometers to
// 100 others takes three transactions (the endpoint and 99 new links; the
// 100th new link and 99 old ones to delete; the last old one). A later
// write may start once the first is done; a link it has set already is
// not set back by the earlier write, whose other links, the deletions
// among them, are still written.
func TestALaterWriteKeepsItsLinks(t *testing.T) {
	// A table of its own: the emulator copies a whole table for every
	// transaction, and puts the copy back when one is cancelled, undoing
	// what other tests wrote meanwhile.
	table := privateTable(t)
	db := dynamodb.NewFromConfig(awstest.Config(t))
	st := store.New(db, table, awstest.LoadStack(t).Outputs["DeliveriesTableName"])
	ctx := context.Background()
	account := uniqueAccount()
	thermometers := func(prefix string) []domain.Thermometer {
		var ths []domain.Thermometer
		for i := 1; i <= domain.MaxThermometers; i++ {
			ths = append(ths, domain.Thermometer{ID: fmt.Sprintf("%s_%d", prefix, i), Name: "T", Type: "email"})
		}
		return ths
	}
	e := newEndpoint(account, 0)
	e.Thermometers = thermometers("old")
	if err := st.CreateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	// The 100th new link, in the second transaction, as a write of
	// version 3 left it.
	last := fmt.Sprintf("new_%d", domain.MaxThermometers)
	cur, err := st.GetEndpoint(ctx, account, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	later := cur
	later.Version, later.Triggers, later.Thermometers = 2, []string{"*"}, thermometers("new")[domain.MaxThermometers-1:]
	if err := st.RepairLink(ctx, later, last); err != nil { // not there: not written
		t.Fatal(err)
	}
	if l, _ := linked(t, st, account, last); len(l) != 0 {
		t.Fatalf("a repair wrote a link that was not there: %+v", l)
	}
	item := map[string]dbtypes.AttributeValue{
		"pk": &dbtypes.AttributeValueMemberS{Value: "ACCOUNT#" + account + "#THERMOMETER#" + last}, "sk": &dbtypes.AttributeValueMemberS{Value: "ENDPOINT#" + e.ID},
		"id": &dbtypes.AttributeValueMemberS{Value: e.ID}, "account_id": &dbtypes.AttributeValueMemberS{Value: account},
		"version": &dbtypes.AttributeValueMemberN{Value: "3"}, "enabled": &dbtypes.AttributeValueMemberBOOL{Value: true},
		"triggers": &dbtypes.AttributeValueMemberL{Value: []dbtypes.AttributeValue{&dbtypes.AttributeValueMemberS{Value: "*"}}},
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
		t.Fatal(err)
	}

	moved := cur
	moved.Triggers, moved.Thermometers = []string{"rating.red"}, thermometers("new")
	if err := st.SaveEndpoint(ctx, moved, cur.Thermometers); err != nil {
		t.Fatalf("the earlier write: %v", err)
	}
	if l, err := linked(t, st, account, "new_1"); err != nil || len(l) != 1 || l[0].Version != 2 || l[0].Triggers[0] != "rating.red" {
		t.Errorf("a link of the first transaction: %+v (%v)", l, err)
	}
	if l, err := linked(t, st, account, last); err != nil || len(l) != 1 || l[0].Version != 3 || l[0].Triggers[0] != "*" {
		t.Errorf("the later write's link was set back: %+v (%v)", l, err)
	}
	for _, th := range []string{"old_1", "old_99", "old_100"} {
		if l, err := linked(t, st, account, th); err != nil || len(l) != 0 {
			t.Errorf("old link %s left behind: %+v (%v)", th, l, err)
		}
	}
}

// TestSaveEndpointStateLeavesTheLinks: the failing flag is the endpoint's
// own; writing it leaves the links (and their version) as they are.
func TestSaveEndpointStateLeavesTheLinks(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	e := createLinked(t, st, account, "th_1")
	cur, _ := st.GetEndpoint(ctx, account, e.ID)
	cur.Failing = true
	if err := st.SaveEndpointState(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetEndpoint(ctx, account, e.ID); err != nil || !got.Failing || got.Version != 2 {
		t.Errorf("endpoint %+v (%v), want failing at version 2", got, err)
	}
	if l, err := linked(t, st, account, "th_1"); err != nil || len(l) != 1 || l[0].Version != 1 || l[0].Failing {
		t.Errorf("link %+v (%v), want it as written at version 1", l, err)
	}
	stale := cur
	stale.Failing = false
	if err := st.SaveEndpointState(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a state write from an older read: %v, want a conflict", err)
	}
}

// createLinked stores a new endpoint of account linked to thermometers
// (named One, Two, … in order).
func createLinked(t *testing.T, st *store.Store, account string, thermometers ...string) domain.Endpoint {
	t.Helper()
	e := newEndpoint(account, 0)
	names := []string{"One", "Two", "Three"}
	for i, th := range thermometers {
		e.Thermometers = append(e.Thermometers, domain.Thermometer{ID: th, Name: names[i%len(names)], Type: "email"})
	}
	if err := st.CreateEndpoint(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// privateTable creates an endpoints table for one test (keys only, as the
// stack's), deleted when the test ends.
func privateTable(t *testing.T) string {
	t.Helper()
	db := dynamodb.NewFromConfig(awstest.Config(t))
	name := "endpoints-" + uniqueAccount()
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: &name, BillingMode: dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: dbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []dbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: dbtypes.KeyTypeRange},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	return name
}
