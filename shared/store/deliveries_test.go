package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/store"
)

var listBase = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// putDelivery stores a delivery created at listBase plus i seconds, so a
// higher i is newer.
func putDelivery(t *testing.T, st *store.Store, account, endpoint, status string, i int) domain.Delivery {
	t.Helper()
	created := listBase.Add(time.Duration(i) * time.Second)
	d := domain.Delivery{
		ID: ids.Derived("dlv", account, fmt.Sprint("evt_", i), endpoint), AccountID: account, EndpointID: endpoint,
		EndpointURL: "https://example.com/hook", EventID: fmt.Sprint("evt_", i), Event: "comment", Trigger: "comment.red",
		ThermometerID: "th_1", Status: status, AttemptCount: i % 9, RoundStart: 1, LastStatusCode: 500 + i,
		LastError: "receiver answered 500", CreatedAt: created, UpdatedAt: created.Add(time.Minute),
	}
	if _, _, err := st.CreateDelivery(context.Background(), d, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return d
}

// listAll follows a listing page by page, checking that every page but the
// last is full and that only the last has no next position, and returns the
// ids in order and the number of pages.
func listAll(t *testing.T, st *store.Store, account string, f store.DeliveryFilter, limit int) ([]string, int) {
	t.Helper()
	var got []string
	after := ""
	for pages := 1; ; pages++ {
		ds, next, err := st.ListDeliveries(context.Background(), account, f, limit, after)
		if err != nil {
			t.Fatalf("%+v limit %d page %d: %v", f, limit, pages, err)
		}
		if len(ds) > limit || (next != "" && len(ds) != limit) {
			t.Fatalf("%+v limit %d page %d: %d deliveries, next %q", f, limit, pages, len(ds), next)
		}
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if next == "" {
			return got, pages
		}
		if pages > 200 {
			t.Fatalf("%+v limit %d: no end after %d pages", f, limit, pages)
		}
		after = next
	}
}

func newestFirst(ds ...domain.Delivery) []string {
	var out []string
	for i := len(ds) - 1; i >= 0; i-- {
		out = append(out, ds[i].ID)
	}
	return out
}

func TestListDeliveriesFiltersAndPages(t *testing.T) {
	st := newStore(t)
	// Three summaries to a BatchGetItem, so pages cross batch boundaries.
	defer store.SetListBatch(3)()
	account := uniqueAccount()
	epA, epB := ids.New("ep", listBase), ids.New("ep", listBase.Add(time.Second))
	statuses := []string{domain.DeliveryDelivered, domain.DeliveryFailed, domain.DeliveryRetrying, domain.DeliveryDelivered, domain.DeliveryPending}
	var all []domain.Delivery
	for i := 0; i < 17; i++ {
		ep := epA
		if i%3 == 2 {
			ep = epB
		}
		all = append(all, putDelivery(t, st, account, ep, statuses[i%len(statuses)], i))
	}
	putDelivery(t, st, uniqueAccount(), epA, domain.DeliveryDelivered, 20) // another account's

	filters := []store.DeliveryFilter{{}, {EndpointID: epB}}
	for _, s := range []string{domain.DeliveryPending, domain.DeliveryDelivered, domain.DeliveryRetrying, domain.DeliveryFailed} {
		filters = append(filters, store.DeliveryFilter{Status: s}, store.DeliveryFilter{EndpointID: epA, Status: s}, store.DeliveryFilter{EndpointID: epB, Status: s})
	}
	for _, f := range filters {
		var match []domain.Delivery
		for _, d := range all {
			if (f.EndpointID == "" || d.EndpointID == f.EndpointID) && (f.Status == "" || d.Status == f.Status) {
				match = append(match, d)
			}
		}
		want := newestFirst(match...)
		for _, limit := range []int{1, 2, 3, 4, 5, 100} {
			got, pages := listAll(t, st, account, f, limit)
			if !slices.Equal(got, want) {
				t.Errorf("%+v limit %d: %v\nwant %v", f, limit, got, want)
			}
			if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
				t.Errorf("%+v limit %d: %d pages for %d deliveries, want %d", f, limit, pages, len(want), wantPages)
			}
		}
	}

	// A listed delivery is its whole summary.
	ds, _, err := st.ListDeliveries(context.Background(), account, store.DeliveryFilter{Status: domain.DeliveryRetrying, EndpointID: epA}, 1, "")
	if err != nil || len(ds) != 1 {
		t.Fatalf("list = %v, %v", ds, err)
	}
	want := all[12] // the newest retrying on epA
	if got := ds[0]; got.ID != want.ID || got.AccountID != account || got.EndpointID != epA || got.EndpointURL != want.EndpointURL ||
		got.EventID != want.EventID || got.Event != "comment" || got.Trigger != "comment.red" || got.ThermometerID != "th_1" ||
		got.Status != domain.DeliveryRetrying || got.AttemptCount != 3 || got.RoundStart != 1 || got.LastStatusCode != 512 ||
		got.LastError != want.LastError || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("listed %+v\nstored %+v", got, want)
	}

	if ds, next, err := st.ListDeliveries(context.Background(), uniqueAccount(), store.DeliveryFilter{}, 20, ""); err != nil || len(ds) != 0 || next != "" {
		t.Errorf("a new account lists %v, %q, %v", ds, next, err)
	}
}

// More deliveries than one BatchGetItem reads, at its real limit of 100.
func TestListDeliveriesBeyondOneBatch(t *testing.T) {
	st := newStore(t)
	account := uniqueAccount()
	ep := ids.New("ep", listBase)
	var all []domain.Delivery
	for i := 0; i < 105; i++ {
		all = append(all, putDelivery(t, st, account, ep, domain.DeliveryDelivered, i))
	}
	want := newestFirst(all...)
	for _, f := range []store.DeliveryFilter{{}, {EndpointID: ep}, {Status: domain.DeliveryDelivered}, {EndpointID: ep, Status: domain.DeliveryDelivered}} {
		ds, next, err := st.ListDeliveries(context.Background(), account, f, 100, "")
		if err != nil || len(ds) != 100 || next == "" {
			t.Fatalf("%+v first page: %d deliveries, next %q, %v", f, len(ds), next, err)
		}
		got := make([]string, 0, len(all))
		for _, d := range ds {
			got = append(got, d.ID)
		}
		ds, next, err = st.ListDeliveries(context.Background(), account, f, 100, next)
		if err != nil || len(ds) != 5 || next != "" {
			t.Fatalf("%+v second page: %d deliveries, next %q, %v", f, len(ds), next, err)
		}
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%+v: %v\nwant %v", f, got, want)
		}
	}
}

// by_status is eventually consistent: a summary whose status has moved on
// while its index entry has not is left out, and the page is filled from the
// entries after it.
func TestListDeliveriesSkipsEntriesTheIndexHasNotMovedYet(t *testing.T) {
	st := newStore(t)
	defer store.SetListBatch(2)()
	ctx := context.Background()
	account := uniqueAccount()
	epA, epB := ids.New("ep", listBase), ids.New("ep", listBase.Add(time.Second))
	var r []domain.Delivery
	for i := 0; i < 8; i++ {
		ep := epA
		if i == 6 {
			ep = epB
		}
		r = append(r, putDelivery(t, st, account, ep, domain.DeliveryRetrying, i))
	}
	// Delivered since, as far as the summaries know; by_status still files
	// them under retrying. r[0], the oldest, is one of them: the entry read
	// to tell whether a next page exists is stale.
	for _, i := range []int{7, 4, 3, 0} {
		if err := st.SetStatusBehindIndex(ctx, account, r[i].ID, domain.DeliveryDelivered); err != nil {
			t.Fatal(err)
		}
	}
	retrying := store.DeliveryFilter{Status: domain.DeliveryRetrying}
	for limit, want := range map[int][]string{
		1: {r[6].ID, r[5].ID, r[2].ID, r[1].ID},
		2: {r[6].ID, r[5].ID, r[2].ID, r[1].ID},
		3: {r[6].ID, r[5].ID, r[2].ID, r[1].ID},
		4: {r[6].ID, r[5].ID, r[2].ID, r[1].ID},
	} {
		got, pages := listAll(t, st, account, retrying, limit)
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %v\nwant %v", limit, got, want)
		}
		if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}
	ds, next, err := st.ListDeliveries(ctx, account, retrying, 3, "")
	if err != nil || len(ds) != 3 || next == "" {
		t.Fatalf("first page of 3: %d, %q, %v", len(ds), next, err)
	}
	for _, d := range ds {
		if d.Status != domain.DeliveryRetrying {
			t.Errorf("listed %s as %s under retrying", d.ID, d.Status)
		}
	}
	// The last page ends at a stale entry: no next position.
	if ds, next, err := st.ListDeliveries(ctx, account, retrying, 1, nextAfter(t, st, account, retrying, 3)); err != nil ||
		len(ds) != 1 || ds[0].ID != r[1].ID || next != "" {
		t.Errorf("last page: %v, %q, %v", ds, next, err)
	}

	// The same with the endpoint filter.
	for f, want := range map[store.DeliveryFilter][]string{
		{EndpointID: epA, Status: domain.DeliveryRetrying}: {r[5].ID, r[2].ID, r[1].ID},
		{EndpointID: epB, Status: domain.DeliveryRetrying}: {r[6].ID},
	} {
		for _, limit := range []int{1, 2, 3} {
			if got, _ := listAll(t, st, account, f, limit); !slices.Equal(got, want) {
				t.Errorf("%+v limit %d: %v\nwant %v", f, limit, got, want)
			}
		}
	}
	// Without a status filter every delivery is listed, as it is now.
	ds, _, err = st.ListDeliveries(ctx, account, store.DeliveryFilter{}, 100, "")
	if err != nil || len(ds) != 8 || ds[0].ID != r[7].ID || ds[0].Status != domain.DeliveryDelivered {
		t.Errorf("unfiltered: %v, %v", ds, err)
	}
}

// nextAfter returns the next position after the first page of limit.
func nextAfter(t *testing.T, st *store.Store, account string, f store.DeliveryFilter, limit int) string {
	t.Helper()
	_, next, err := st.ListDeliveries(context.Background(), account, f, limit, "")
	if err != nil || next == "" {
		t.Fatalf("no next page: %q, %v", next, err)
	}
	return next
}

// unprocessing leaves the second half of a BatchGetItem's answer
// unprocessed, as DynamoDB may, the first times times.
type unprocessing struct {
	times, calls int
}

func (u *unprocessing) option(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("Unprocess",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			o, ok := out.Result.(*dynamodb.BatchGetItemOutput)
			if err != nil || !ok {
				return out, md, err
			}
			u.calls++
			for table, items := range o.Responses {
				if u.times == 0 || len(items) < 2 {
					continue
				}
				u.times--
				kept, left := items[:len(items)/2], items[len(items)/2:]
				keys := make([]map[string]types.AttributeValue, 0, len(left))
				for _, it := range left {
					keys = append(keys, map[string]types.AttributeValue{"pk": it["pk"], "sk": it["sk"]})
				}
				o.Responses[table] = kept
				o.UnprocessedKeys = map[string]types.KeysAndAttributes{table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
			}
			return out, md, err
		}), middleware.After)
}

func TestListDeliveriesRetriesUnprocessedKeys(t *testing.T) {
	stack := awstest.LoadStack(t)
	u := &unprocessing{times: 3}
	db := dynamodb.NewFromConfig(awstest.Config(t), func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, u.option) })
	st := store.New(db, stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	account := uniqueAccount()
	ep := ids.New("ep", listBase)
	var all []domain.Delivery
	for i := 0; i < 12; i++ {
		all = append(all, putDelivery(t, st, account, ep, domain.DeliveryFailed, i))
	}
	got, pages := listAll(t, st, account, store.DeliveryFilter{Status: domain.DeliveryFailed}, 10)
	if want := newestFirst(all...); !slices.Equal(got, want) || pages != 2 {
		t.Errorf("%d pages: %v\nwant %v", pages, got, want)
	}
	if u.times != 0 || u.calls < 2+3 {
		t.Errorf("%d BatchGetItem calls, %d answers left to cut short: unprocessed keys were not read again", u.calls, u.times)
	}
}

// TestStartRound: a new round starts only on the attempt count it was asked
// for (an attempt recorded meanwhile is a conflict, not a round started in
// the middle of it), keeps the delivery and its payload for the retention
// period from then on, and a worker's save of the old round no longer wins.
func TestStartRound(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	d := putDelivery(t, st, account, "ep_1", domain.DeliveryDelivered, 3) // 3 attempts
	if err := st.PutLogItems(ctx, []store.LogItem{{AccountID: account, DeliveryID: d.ID, Payload: []byte(`{"id":"x"}`), Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartRound(ctx, account, d.ID, 2, time.Now(), time.Now(), time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("start on a stale attempt count: %v, want a conflict", err)
	}
	if _, err := st.StartRound(ctx, account, "dlv_00000000000000000000000000", 0, time.Now(), time.Now(), time.Now()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("start on an unknown delivery: %v, want not_found", err)
	}
	expires := time.Now().Add(40 * 24 * time.Hour).Truncate(time.Second)
	payloadExpires := expires.Add(50 * time.Hour)
	got, err := st.StartRound(ctx, account, d.ID, 3, time.Now(), expires, payloadExpires)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != domain.DeliveryPending || got.RoundStart != 4 || got.AttemptCount != 3 {
		t.Errorf("after StartRound: %+v", got)
	}
	for sk, want := range map[string]time.Time{"#SUMMARY": expires, "#PAYLOAD": payloadExpires} {
		if exp, err := st.ExpiresAt(ctx, account, d.ID, sk); err != nil || !exp.Equal(want) {
			t.Errorf("%s expires %v (%v), want %v", sk, exp, err, want)
		}
	}
	// A worker that read the old round and made attempt 4 does not undo the
	// new round.
	old := d
	old.AttemptCount, old.Status = 4, domain.DeliveryRetrying
	if err := st.SaveDelivery(ctx, old, 3, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("save of the old round: %v, want a conflict", err)
	}
}

// queryCounter counts the Queries a client makes.
type queryCounter struct{ n int }

func (q *queryCounter) option(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("CountQueries",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if _, ok := in.Parameters.(*dynamodb.QueryInput); ok {
				q.n++
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// TestFilteredListingReadsABoundedAmountAPage: a listing that keeps only
// some of the index entries it reads gets short (even empty) pages with a
// next position, each from a bounded number of Queries, rather than one
// request that reads them all; following the positions still lists every
// delivery asked for, newest first. Two such listings: one endpoint's
// deliveries of a status, filtered from the status's index entries of the
// whole account, and a status by_status does not file (pending), kept from
// the account's whole log by the summaries' status.
func TestFilteredListingReadsABoundedAmountAPage(t *testing.T) {
	defer store.SetListReads(4, 2)()
	stack := awstest.LoadStack(t)
	qc := &queryCounter{}
	db := dynamodb.NewFromConfig(awstest.Config(t), func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, qc.option) })
	st := store.New(db, stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	busy, quiet := ids.New("ep", listBase), ids.New("ep", listBase.Add(time.Second))
	for _, c := range []struct {
		filter       store.DeliveryFilter
		many, sought string // status of the many, and of the few sought
	}{
		{store.DeliveryFilter{Status: domain.DeliveryFailed, EndpointID: quiet}, domain.DeliveryFailed, domain.DeliveryFailed},
		{store.DeliveryFilter{Status: domain.DeliveryPending}, domain.DeliveryDelivered, domain.DeliveryPending},
	} {
		account := uniqueAccount()
		var want []domain.Delivery
		for i := 0; i < 30; i++ {
			ep, status := busy, c.many
			if i == 2 || i == 3 || i == 17 {
				ep, status = quiet, c.sought
			}
			d := putDelivery(t, st, account, ep, status, i)
			if ep == quiet {
				want = append(want, d)
			}
		}
		var got []string
		after := ""
		for pages := 1; ; pages++ {
			before := qc.n
			ds, next, err := st.ListDeliveries(context.Background(), account, c.filter, 2, after)
			if err != nil {
				t.Fatal(err)
			}
			if q := qc.n - before; q > 2 {
				t.Fatalf("%+v: page %d took %d Queries, want at most 2", c.filter, pages, q)
			}
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if next == "" {
				break
			}
			if pages > 20 {
				t.Fatalf("%+v: no end after 20 pages", c.filter)
			}
			after = next
		}
		if w := newestFirst(want...); !slices.Equal(got, w) {
			t.Errorf("%+v: listed %v\nwant %v", c.filter, got, w)
		}
	}
}

// TestOnlyDeliveriesInTroubleAreInTheStatusIndex: by_status files retrying
// and failed deliveries only, so one delivered at its first attempt never
// enters it (two index writes fewer), and a delivery leaves it when it is
// delivered after retries or starts a new round.
func TestOnlyDeliveriesInTroubleAreInTheStatusIndex(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	d := putDelivery(t, st, account, "ep_1", domain.DeliveryPending, 0)
	filed := func(step, want string) {
		t.Helper()
		got, err := st.StatusIndexKey(ctx, account, d.ID)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if want != "" {
			want = "ACCOUNT#" + account + "#STATUS#" + want
		}
		if got != want {
			t.Errorf("%s: filed under %q, want %q", step, got, want)
		}
	}
	filed("created", "")
	save := func(status string) {
		t.Helper()
		prev := d.AttemptCount
		d.AttemptCount, d.Status = prev+1, status
		if err := st.SaveDelivery(ctx, d, prev, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	save(domain.DeliveryRetrying)
	filed("retrying", domain.DeliveryRetrying)
	save(domain.DeliveryFailed)
	filed("failed", domain.DeliveryFailed)
	got, err := st.StartRound(ctx, account, d.ID, d.AttemptCount, time.Now(), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d = got
	filed("new round", "")
	save(domain.DeliveryRetrying)
	filed("retrying again", domain.DeliveryRetrying)
	save(domain.DeliveryDelivered)
	filed("delivered", "")
}

// TestTwoRequestsOfOneAttemptAreBothInTheLog: two requests sent for one
// attempt (two invocations holding one task) keep a record each, in the
// order sent, however their random keys sort.
func TestTwoRequestsOfOneAttemptAreBothInTheLog(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	d := putDelivery(t, st, account, "ep_1", domain.DeliveryDelivered, 2)
	at := time.Date(2026, 11, 27, 10, 55, 3, 0, time.UTC)
	sent := func(n, status int, at time.Time, request string) store.LogItem {
		return store.LogItem{AccountID: account, DeliveryID: d.ID, Expires: time.Now().Add(time.Hour), Request: request,
			Attempt: &domain.Attempt{Number: n, At: at, StatusCode: status}}
	}
	if err := st.PutLogItems(ctx, []store.LogItem{sent(2, 200, at.Add(time.Minute), store.NewRequestKey()),
		sent(1, 502, at.Add(time.Second), "000000000000"), sent(1, 500, at, "ffffffffffff")}); err != nil {
		t.Fatal(err)
	}
	_, _, attempts, _, err := st.DeliveryDetail(ctx, account, d.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range attempts {
		got = append(got, fmt.Sprint(a.Number, ":", a.StatusCode))
	}
	if want := []string{"1:500", "1:502", "2:200"}; !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
	if k := store.NewRequestKey(); len(k) != 12 || k == store.NewRequestKey() {
		t.Errorf("request key %q: want 12 random hex digits", k)
	}
}

// TestListingFromAnotherEndpointsPosition: a page of one endpoint's
// deliveries can end at an entry of another endpoint (a listing filtered
// on by_status returns the last entry it read), and a cursor made before
// pending and delivered listings moved from by_status to by_endpoint may
// hold such a position. Listing the endpoint from it goes on with its
// deliveries older than that position.
func TestListingFromAnotherEndpointsPosition(t *testing.T) {
	st := newStore(t)
	account := uniqueAccount()
	epA, epB := ids.New("ep", listBase), ids.New("ep", listBase.Add(time.Second))
	var a, b []domain.Delivery
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			a = append(a, putDelivery(t, st, account, epA, domain.DeliveryDelivered, i))
		} else {
			b = append(b, putDelivery(t, st, account, epB, domain.DeliveryDelivered, i))
		}
	}
	// b[2] was created at 5 s: epA's older deliveries are a[2], a[1], a[0].
	for _, f := range []store.DeliveryFilter{{EndpointID: epA, Status: domain.DeliveryDelivered}, {EndpointID: epA}} {
		ds, next, err := st.ListDeliveries(context.Background(), account, f, 10, store.Position(b[2]))
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if want := []string{a[2].ID, a[1].ID, a[0].ID}; !slices.Equal(got, want) || next != "" {
			t.Errorf("%+v: %v (next %q)\nwant %v", f, got, next, want)
		}
	}
}

// losingAnswer carries out every request, but answers the first of one
// operation with a 500, as a write made when the answer was lost on the way
// looks: the SDK retries it and meets its own effect.
type losingAnswer struct {
	next    aws.HTTPClient
	op      string // X-Amz-Target's operation, "PutItem"
	between func() // if set, runs after the write and before the retry
	lost    atomic.Bool
}

func (c *losingAnswer) Do(r *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(r)
	if err != nil || !awstest.IsOperation(r, c.op) || !c.lost.CompareAndSwap(false, true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if c.between != nil {
		c.between()
	}
	return awstest.ErrorAnswer(r, http.StatusInternalServerError, "InternalServerError", "answer lost"), nil
}

// TestSaveDeliveryWhoseAnswerWasLost: a save DynamoDB carried out but whose
// answer was lost succeeds on the SDK's retry rather than coming back as a
// conflict, which the worker would take for another worker's record of the
// attempt (and skip what follows it: disabling a gone endpoint). Another
// worker's save of the same attempt is still a conflict.
func TestSaveDeliveryWhoseAnswerWasLost(t *testing.T) {
	cfg := awstest.Config(t)
	losing := &losingAnswer{next: cfg.HTTPClient, op: "PutItem"}
	cfg.HTTPClient = losing
	stack := awstest.LoadStack(t)
	st := store.New(dynamodb.NewFromConfig(cfg), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	ctx := context.Background()
	account := uniqueAccount()
	d := putDelivery(t, newStore(t), account, "ep_1", domain.DeliveryPending, 0)

	failed := d
	failed.AttemptCount, failed.Status, failed.LastStatusCode = 1, domain.DeliveryFailed, http.StatusGone
	if err := st.SaveDelivery(ctx, failed, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("save whose first answer was lost: %v, want success", err)
	}
	if !losing.lost.Load() {
		t.Fatal("no answer was lost: the test did not test anything")
	}
	got, err := st.GetDelivery(ctx, account, d.ID)
	if err != nil || got.Status != domain.DeliveryFailed || got.AttemptCount != 1 {
		t.Fatalf("after the save: %+v, %v", got, err)
	}
	other := d
	other.AttemptCount, other.Status = 1, domain.DeliveryDelivered
	if err := st.SaveDelivery(ctx, other, 0, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("another worker's save of the same attempt: %v, want a conflict", err)
	}

	// A round started between the write and the SDK's retry: the replayed
	// write must not undo it.
	plain := newStore(t)
	d2 := putDelivery(t, plain, account, "ep_1", domain.DeliveryPending, 1)
	cfg2 := awstest.Config(t)
	cfg2.HTTPClient = &losingAnswer{next: cfg2.HTTPClient, op: "PutItem", between: func() {
		if _, err := plain.StartRound(ctx, account, d2.ID, 1, time.Now(), time.Now().Add(time.Hour), time.Now().Add(time.Hour)); err != nil {
			t.Error(err)
		}
	}}
	racing := store.New(dynamodb.NewFromConfig(cfg2), stack.Outputs["EndpointsTableName"], stack.Outputs["DeliveriesTableName"])
	retrying := d2
	retrying.AttemptCount, retrying.Status = 1, domain.DeliveryRetrying
	if err := racing.SaveDelivery(ctx, retrying, 0, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("replay over a round started meanwhile: %v, want a conflict", err)
	}
	if got, err := plain.GetDelivery(ctx, account, d2.ID); err != nil || got.Status != domain.DeliveryPending || got.RoundStart != 2 {
		t.Errorf("after the replay: %+v, %v; want the new round, pending", got, err)
	}
}

// TestLastURLIsKeptOnlyWhenItDiffers: a delivery remembers the URL its last
// attempt went to, and stores it only when the endpoint's URL changed after
// the delivery was made, so the summary of every other delivery stays as
// small (and its writes as cheap) as before.
func TestLastURLIsKeptOnlyWhenItDiffers(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := fmt.Sprint("acc_lasturl_", time.Now().UnixNano())
	d := putDelivery(t, st, account, "ep_1", domain.DeliveryPending, 1)
	if got, err := st.GetDelivery(ctx, account, d.ID); err != nil || got.LastURL != d.EndpointURL {
		t.Fatalf("new delivery: last URL %q (%v), want its endpoint's", got.LastURL, err)
	}
	for i, url := range []string{d.EndpointURL, "https://example.com/moved", d.EndpointURL} {
		prev := d.AttemptCount
		d.AttemptCount, d.Status, d.LastURL = prev+1, domain.DeliveryRetrying, url
		if err := st.SaveDelivery(ctx, d, prev, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetDelivery(ctx, account, d.ID)
		stored, herr := st.HasAttribute(ctx, account, d.ID, "last_url")
		if err != nil || herr != nil || got.LastURL != url || stored != (url != d.EndpointURL) {
			t.Errorf("save %d to %s: read back %q, stored apart %v (%v, %v)", i, url, got.LastURL, stored, err, herr)
		}
	}
}

// TestExpiredDeliveriesAreGone: DynamoDB deletes an expired item within
// days, not at once, and reads find it until then. The log keeps a
// delivery no longer than its retention: an expired delivery is not
// listed, not shown, not redelivered and not sent, nor made again by its
// event resent; an expired payload or attempt is left out of a delivery
// still kept; and a redelivery does not bring an expired payload back.
func TestExpiredDeliveriesAreGone(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	account := uniqueAccount()
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	put := func(i int, summary, payload time.Time, attempts ...time.Time) domain.Delivery {
		t.Helper()
		created := listBase.Add(time.Duration(i) * time.Second)
		d := domain.Delivery{ID: ids.Derived("dlv", account, fmt.Sprint("evt_", i), "ep_1"), AccountID: account, EndpointID: "ep_1",
			EndpointURL: "https://example.com/hook", EventID: fmt.Sprint("evt_", i), Event: "comment", Trigger: "comment.red",
			ThermometerID: "th_1", Status: domain.DeliveryFailed, AttemptCount: len(attempts), RoundStart: 1, CreatedAt: created, UpdatedAt: created}
		if _, _, err := st.CreateDelivery(ctx, d, summary); err != nil {
			t.Fatal(err)
		}
		items := []store.LogItem{{AccountID: account, DeliveryID: d.ID, Payload: []byte(`{"id":"` + d.ID + `"}`), Expires: payload}}
		for n, exp := range attempts {
			items = append(items, store.LogItem{AccountID: account, DeliveryID: d.ID, Request: store.NewRequestKey(), Expires: exp,
				Attempt: &domain.Attempt{Number: n + 1, At: created.Add(time.Duration(n) * time.Minute), StatusCode: 500}})
		}
		if err := st.PutLogItems(ctx, items); err != nil {
			t.Fatal(err)
		}
		return d
	}
	kept := put(1, future, future, past, future, future)
	gone := put(2, past, past, past)
	bare := put(3, future, past)
	unsent := put(4, past, past)

	for _, f := range []store.DeliveryFilter{{}, {EndpointID: "ep_1"}, {Status: domain.DeliveryFailed}} {
		if got, _ := listAll(t, st, account, f, 10); !slices.Equal(got, []string{bare.ID, kept.ID}) {
			t.Errorf("%+v: listed %v, want %v", f, got, []string{bare.ID, kept.ID})
		}
	}
	if _, err := st.GetDelivery(ctx, account, gone.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("get of an expired delivery: %v, want not_found", err)
	}
	if _, _, _, _, err := st.DeliveryDetail(ctx, account, gone.ID, 100); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("detail of an expired delivery: %v, want not_found", err)
	}
	if _, err := st.StartRound(ctx, account, gone.ID, 1, time.Now(), future, future); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("new round of an expired delivery: %v, want not_found", err)
	}
	// Its event resent: the delivery exists, expired, and is not made again
	// (taken for none, the create would fail until DynamoDB deleted it).
	if created, existing, err := st.CreateDelivery(ctx, gone, future); err != nil || created || existing.ID != gone.ID || existing.Status != domain.DeliveryFailed {
		t.Errorf("create over an expired delivery: created %v, existing %+v, %v", created, existing, err)
	}
	// An expired delivery never attempted is made anew: nothing of it was sent.
	unsent.Status = domain.DeliveryPending
	if created, _, err := st.CreateDelivery(ctx, unsent, future); err != nil || !created {
		t.Errorf("create over an expired delivery never attempted: created %v, %v", created, err)
	}
	if d, err := st.GetDelivery(ctx, account, unsent.ID); err != nil || d.Status != domain.DeliveryPending {
		t.Errorf("the delivery made anew: %+v, %v", d, err)
	}

	// The first of kept's three attempts has expired: the latest two show.
	_, payload, attempts, truncated, err := st.DeliveryDetail(ctx, account, kept.ID, 100)
	if err != nil || payload == nil || len(attempts) != 2 || attempts[0].Number != 2 || attempts[1].Number != 3 || truncated {
		t.Errorf("detail of a kept delivery: payload %q, attempts %+v, truncated %v, %v", payload, attempts, truncated, err)
	}
	// bare's payload has expired: not shown, not sent, not brought back.
	if _, payload, attempts, _, err := st.DeliveryDetail(ctx, account, bare.ID, 100); err != nil || payload != nil || len(attempts) != 0 {
		t.Errorf("detail of a delivery whose payload expired: payload %q, attempts %+v, %v", payload, attempts, err)
	}
	if _, err := st.Payload(ctx, account, bare.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("expired payload read as %v, want not_found", err)
	}
	if _, err := st.StartRound(ctx, account, bare.ID, 0, time.Now(), future.Add(time.Hour), future.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if exp, err := st.ExpiresAt(ctx, account, bare.ID, "#PAYLOAD"); err != nil || exp.After(time.Now()) {
		t.Errorf("a new round brought an expired payload back: it expires %v (%v)", exp, err)
	}
}
