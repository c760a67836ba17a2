package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// The delivery-log table keeps each delivery in its own partition:
//
//	DELIVERY#<account>#<delivery>  #SUMMARY          status, counts, ids (small: updated per attempt)
//	DELIVERY#<account>#<delivery>  #PAYLOAD          the body sent, written once
//	DELIVERY#<account>#<delivery>  ATTEMPT#<number>#<request>  one item per request recorded, written once
//
// so one Query reads a delivery with its payload and attempts. Only summary
// items carry the index keys, so the three sparse indexes list deliveries
// newest first per account (by_account), per endpoint (by_endpoint) and, for
// deliveries in trouble, per status (by_status). Every item carries
// expires_at for the table's TTL.
//
// The indexes hold keys, not summaries: by_account and by_endpoint only the
// keys (KEYS_ONLY), by_status also endpoint_id. Their keys and endpoint_id
// never change after a delivery is created, so recording an attempt, which
// rewrites the summary, costs by_account and by_endpoint nothing. by_status
// is sparse: it files only deliveries in trouble (retrying or failed), the
// ones an account holder looks for by status; most deliveries go from
// pending to delivered without ever entering it, and a listing of those two
// statuses reads by_account or by_endpoint and keeps the summaries with the
// status asked for. In the words of the DynamoDB Developer Guide (global
// secondary indexes, write capacity units): "If a write to a table does not
// require a global secondary index update, no write capacity is consumed
// from the index", whereas "If an update to the table changes the value of
// an indexed key attribute (from A to B), two writes are required, one to
// delete the previous item from the index and another write to put the new
// item into the index" and "If an update to the table only changes the value
// of projected attributes in the index key schema, but does not change the
// value of any indexed key attribute, one write is required to update the
// values of the projected attributes into the index". So, for a summary under
// 1 KB, creating a delivery costs 3 write units (the item and its by_account
// and by_endpoint entries), delivering it at its first attempt 1 (the item),
// a write that enters by_status (retrying after pending) or leaves it
// (delivered after retrying, or a new round after failed) 2, one that moves
// within it (failed after retrying) 3, and one that keeps the status (or
// starts a new round after delivered) 1. Listing reads the summaries by key
// (see ListDeliveries).
const (
	summarySK     = "#SUMMARY"
	payloadSK     = "#PAYLOAD"
	attemptPrefix = "ATTEMPT#"

	IndexByAccount  = "by_account"
	IndexByEndpoint = "by_endpoint"
	IndexByStatus   = "by_status"
)

func deliveryPK(account, id string) string { return "DELIVERY#" + account + "#" + id }

// expired reports whether an item whose expires_at is unix has outlived the
// log's retention. DynamoDB deletes expired items within days, not at
// once, and until then every read still finds them; the log treats them
// as deleted, so that it shows a delivery (and the respondent's details in
// its payload) no longer than its retention says, and never one of which
// the TTL has already taken a part.
func expired(unix int64) bool { return unix > 0 && unix <= time.Now().Unix() }

// deliveryNotFound is the error for a delivery that is gone or expired.
func deliveryNotFound(id string) error {
	return domain.Errorf(domain.CodeNotFound, "delivery %s not found", id)
}

// sortTime is a fixed-width UTC time, so index sort keys order by time.
func sortTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

type summaryItem struct {
	PK             string `dynamodbav:"pk"`
	SK             string `dynamodbav:"sk"`
	ID             string `dynamodbav:"id"`
	AccountID      string `dynamodbav:"account_id"`
	EndpointID     string `dynamodbav:"endpoint_id"`
	EndpointURL    string `dynamodbav:"endpoint_url"`
	EventID        string `dynamodbav:"event_id"`
	Event          string `dynamodbav:"event"`
	Trigger        string `dynamodbav:"trigger"`
	ThermometerID  string `dynamodbav:"thermometer_id"`
	Status         string `dynamodbav:"status"`
	AttemptCount   int    `dynamodbav:"attempt_count"`
	RoundStart     int    `dynamodbav:"round_start"`
	LastStatusCode int    `dynamodbav:"last_status_code"`
	LastError      string `dynamodbav:"last_error"`
	NextAttemptAt  string `dynamodbav:"next_attempt_at"`
	CreatedAt      string `dynamodbav:"created_at"`
	UpdatedAt      string `dynamodbav:"updated_at"`
	ExpiresAt      int64  `dynamodbav:"expires_at"`
	Carrier        string `dynamodbav:"carrier,omitempty"`
	LastURL        string `dynamodbav:"last_url,omitempty"` // only when not EndpointURL
	PayloadSHA256  string `dynamodbav:"payload_sha256,omitempty"`
	GSI1PK         string `dynamodbav:"gsi1pk"`
	GSI1SK         string `dynamodbav:"gsi1sk"`
	GSI2PK         string `dynamodbav:"gsi2pk"`
	GSI2SK         string `dynamodbav:"gsi2sk"`
	GSI3PK         string `dynamodbav:"gsi3pk,omitempty"` // only while StatusIndexed
	GSI3SK         string `dynamodbav:"gsi3sk,omitempty"`
}

func statusPK(account, status string) string { return "ACCOUNT#" + account + "#STATUS#" + status }

// StatusIndexed tells whether deliveries with status are filed in by_status:
// those in trouble, retrying or failed. Pending and delivered ones are not,
// which spares every delivery that succeeds at its first attempt two index
// writes (into by_status when created, out of it when delivered).
func StatusIndexed(status string) bool {
	return status == domain.DeliveryRetrying || status == domain.DeliveryFailed
}

func toSummary(d domain.Delivery, expires time.Time) summaryItem {
	key := sortTime(d.CreatedAt) + "#" + d.ID
	it := summaryItem{
		PK: deliveryPK(d.AccountID, d.ID), SK: summarySK, ID: d.ID, AccountID: d.AccountID, EndpointID: d.EndpointID,
		EndpointURL: d.EndpointURL, EventID: d.EventID, Event: d.Event, Trigger: d.Trigger, ThermometerID: d.ThermometerID,
		Status: d.Status, AttemptCount: d.AttemptCount, RoundStart: d.RoundStart, LastStatusCode: d.LastStatusCode,
		LastError: d.LastError, CreatedAt: d.CreatedAt.UTC().Format(time.RFC3339Nano), UpdatedAt: d.UpdatedAt.UTC().Format(time.RFC3339Nano),
		ExpiresAt: expires.Unix(), Carrier: d.Carrier, PayloadSHA256: d.PayloadSHA256,
		GSI1PK: accountPK(d.AccountID), GSI1SK: key,
		GSI2PK: accountPK(d.AccountID) + "#ENDPOINT#" + d.EndpointID, GSI2SK: key,
	}
	if StatusIndexed(d.Status) {
		it.GSI3PK, it.GSI3SK = statusPK(d.AccountID, d.Status), key
	}
	if d.LastURL != d.EndpointURL {
		it.LastURL = d.LastURL
	}
	if !d.NextAttemptAt.IsZero() {
		it.NextAttemptAt = d.NextAttemptAt.UTC().Format(time.RFC3339Nano)
	}
	return it
}

func fromSummary(it summaryItem) domain.Delivery {
	d := domain.Delivery{
		ID: it.ID, AccountID: it.AccountID, EndpointID: it.EndpointID, EndpointURL: it.EndpointURL, EventID: it.EventID,
		Event: it.Event, Trigger: it.Trigger, ThermometerID: it.ThermometerID, Status: it.Status,
		AttemptCount: it.AttemptCount, RoundStart: it.RoundStart, LastStatusCode: it.LastStatusCode, LastError: it.LastError,
		Carrier: it.Carrier, LastURL: cmp.Or(it.LastURL, it.EndpointURL), PayloadSHA256: it.PayloadSHA256,
	}
	d.CreatedAt, _ = time.Parse(time.RFC3339Nano, it.CreatedAt)
	d.UpdatedAt, _ = time.Parse(time.RFC3339Nano, it.UpdatedAt)
	if it.NextAttemptAt != "" {
		d.NextAttemptAt, _ = time.Parse(time.RFC3339Nano, it.NextAttemptAt)
	}
	return d
}

// CreateDelivery stores a new delivery unless one with its id exists. It
// returns whether it created it and, if not, the delivery that exists: a
// resent event or a redelivered message never makes a second delivery.
func (st *Store) CreateDelivery(ctx context.Context, d domain.Delivery, expires time.Time) (bool, domain.Delivery, error) {
	av, err := attributevalue.MarshalMap(toSummary(d, expires))
	if err != nil {
		return false, domain.Delivery{}, err
	}
	_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &st.deliveriesTable, Item: av,
		// An expired delivery never attempted (its fan-out stopped before
		// its task, and the event came back after the retention, from the
		// dead-letter queue) is made anew: nothing of it was sent.
		ConditionExpression: aws.String("attribute_not_exists(pk) OR (expires_at <= :now AND attempt_count = :zero)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now":  &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Unix(), 10)},
			":zero": &types.AttributeValueMemberN{Value: "0"},
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		// The delivery exists under this id, and, if expired, was
		// attempted: an event resent after its delivery's retention is not
		// delivered again (nor, were the expired delivery taken for none,
		// retried until DynamoDB deletes it).
		existing, err := st.summary(ctx, d.AccountID, d.ID)
		return false, fromSummary(existing), err
	}
	if err != nil {
		return false, domain.Delivery{}, fmt.Errorf("create delivery %s: %w", d.ID, err)
	}
	return true, d, nil
}

// GetDelivery returns account's delivery id (summary only).
func (st *Store) GetDelivery(ctx context.Context, account, id string) (domain.Delivery, error) {
	it, err := st.summary(ctx, account, id)
	if err != nil {
		return domain.Delivery{}, err
	}
	if expired(it.ExpiresAt) {
		return domain.Delivery{}, deliveryNotFound(id)
	}
	return fromSummary(it), nil
}

// summary reads account's delivery id's summary item, expired or not.
func (st *Store) summary(ctx context.Context, account, id string) (summaryItem, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.deliveriesTable,
		Key:            map[string]types.AttributeValue{"pk": s(deliveryPK(account, id)), "sk": s(summarySK)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return summaryItem{}, fmt.Errorf("get delivery %s: %w", id, err)
	}
	if out.Item == nil {
		return summaryItem{}, deliveryNotFound(id)
	}
	var it summaryItem
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return summaryItem{}, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return it, nil
}

// LogItem is an immutable item of a delivery's log: its payload or one
// attempt. Log items are written in batches.
type LogItem struct {
	AccountID  string
	DeliveryID string
	Payload    []byte          // set for the payload item
	Attempt    *domain.Attempt // set for an attempt item
	// Request tells apart two requests sent for the same attempt (two
	// invocations holding one task message, a repeated fan-out): each keeps
	// its own item instead of the last written replacing the other. Set it
	// with NewRequestKey once per request sent; empty, the item is keyed by
	// the attempt number alone.
	Request string
	Expires time.Time
}

// NewRequestKey returns a random key for LogItem.Request.
func NewRequestKey() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

type payloadItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Body      string `dynamodbav:"body"`
	ExpiresAt int64  `dynamodbav:"expires_at"`
}

type attemptItem struct {
	PK           string `dynamodbav:"pk"`
	SK           string `dynamodbav:"sk"`
	Number       int    `dynamodbav:"number"`
	At           string `dynamodbav:"at"`
	StatusCode   int    `dynamodbav:"status_code"`
	LatencyMS    int64  `dynamodbav:"latency_ms"`
	Error        string `dynamodbav:"error"`
	ResponseBody string `dynamodbav:"response_body"`
	ExpiresAt    int64  `dynamodbav:"expires_at"`
}

func attemptSK(n int, request string) string {
	if request == "" {
		return fmt.Sprintf("%s%06d", attemptPrefix, n)
	}
	return fmt.Sprintf("%s%06d#%s", attemptPrefix, n, request)
}

// PutLogItems writes payload and attempt items, 25 to a BatchWriteItem,
// retrying what DynamoDB leaves unprocessed. The items are built by hand
// rather than by reflection: this runs for every batch of attempts. Of two
// items with one key only the first is written: DynamoDB refuses a whole
// batch that names a key twice.
func (st *Store) PutLogItems(ctx context.Context, items []LogItem) error {
	reqs := make([]types.WriteRequest, 0, len(items))
	seen := make(map[[2]string]bool, len(items))
	for _, li := range items {
		item := logItemValues(li)
		key := [2]string{stringAttr(item, "pk"), stringAttr(item, "sk")}
		if seen[key] {
			continue
		}
		seen[key] = true
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	for len(reqs) > 0 {
		n := min(len(reqs), 25)
		if err := st.batchWrite(ctx, reqs[:n]); err != nil {
			return err
		}
		reqs = reqs[n:]
	}
	return nil
}

// PutPayloadIfAbsent writes li, a payload, unless its delivery has one:
// a resent event's body can differ from the first (an endpoint renamed
// meanwhile), and the body a delivery was made with, whose hash it keeps
// and which its first task may carry, must stay the one it sends.
func (st *Store) PutPayloadIfAbsent(ctx context.Context, li LogItem) error {
	_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &st.deliveriesTable, Item: logItemValues(li), ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store payload of %s: %w", li.DeliveryID, err)
	}
	return nil
}

// logItemValues is li as a DynamoDB item, with the attribute names of
// payloadItem or attemptItem (which read it back).
func logItemValues(li LogItem) map[string]types.AttributeValue {
	pk := deliveryPK(li.AccountID, li.DeliveryID)
	expires := &types.AttributeValueMemberN{Value: strconv.FormatInt(li.Expires.Unix(), 10)}
	if a := li.Attempt; a != nil {
		return map[string]types.AttributeValue{
			"pk": s(pk), "sk": s(attemptSK(a.Number, li.Request)),
			"number":        &types.AttributeValueMemberN{Value: strconv.Itoa(a.Number)},
			"at":            s(a.At.UTC().Format(time.RFC3339Nano)),
			"status_code":   &types.AttributeValueMemberN{Value: strconv.Itoa(a.StatusCode)},
			"latency_ms":    &types.AttributeValueMemberN{Value: strconv.FormatInt(a.LatencyMS, 10)},
			"error":         s(a.Error),
			"response_body": s(a.ResponseBody),
			"expires_at":    expires,
		}
	}
	return map[string]types.AttributeValue{"pk": s(pk), "sk": s(payloadSK), "body": s(string(li.Payload)), "expires_at": expires}
}

func (st *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	pending := map[string][]types.WriteRequest{st.deliveriesTable: reqs}
	for try := 0; len(pending[st.deliveriesTable]) > 0; try++ {
		if try > 0 {
			if try > 8 {
				return fmt.Errorf("batch write: items left unprocessed after 8 retries: %w", domain.ErrUnavailable)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(25<<try) * time.Millisecond):
			}
		}
		out, err := st.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return fmt.Errorf("batch write delivery log: %w", err)
		}
		pending = out.UnprocessedItems
	}
	return nil
}

// SaveDelivery stores d's new state if its attempt count is still prev and
// its round still d's: the write that records attempt prev+1 succeeds once,
// so two workers that both made that attempt (a duplicated task) never both
// record it, and a worker never undoes a round started meanwhile (a
// redelivery). ErrConflict otherwise.
//
// The write carries a key of its own, so that when DynamoDB carries it out
// but its answer is lost (a 500 or a timeout after the write was made) the
// SDK's retry finds its own write rather than a conflict: a worker that took
// that for another's record would skip what follows it (a 410's disabling
// of the endpoint, say).
func (st *Store) SaveDelivery(ctx context.Context, d domain.Delivery, prev int, expires time.Time) error {
	it := toSummary(d, expires)
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return err
	}
	write := NewRequestKey()
	av["written_by"] = s(write)
	_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &st.deliveriesTable, Item: av,
		ConditionExpression: aws.String("(attempt_count = :prev AND round_start = :round) OR " +
			"(written_by = :write AND attempt_count = :count AND round_start = :round)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":prev":  &types.AttributeValueMemberN{Value: strconv.Itoa(prev)},
			":round": &types.AttributeValueMemberN{Value: strconv.Itoa(d.RoundStart)},
			":count": &types.AttributeValueMemberN{Value: strconv.Itoa(d.AttemptCount)},
			":write": s(write),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("save delivery %s: %w", d.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save delivery %s: %w", d.ID, err)
	}
	return nil
}

// DeliveryDetail returns a delivery with its payload and its latest
// attempts: at most maxAttempts (every one when maxAttempts is 0), and
// whether earlier ones were left out. The attempts are every request
// recorded, by attempt number and then by time sent: two requests recorded
// for one attempt (see LogItem.Request) are both there, with the same
// number. Two Queries: the summary and payload, then the attempts, newest
// first, so a delivery redelivered hundreds of times is read no further
// than its latest attempts.
func (st *Store) DeliveryDetail(ctx context.Context, account, id string, maxAttempts int) (domain.Delivery, []byte, []domain.Attempt, bool, error) {
	var d domain.Delivery
	var payload []byte
	found := false
	pk := s(deliveryPK(account, id))
	// "#SUMMARY" and "#PAYLOAD" sort before every "ATTEMPT#" key.
	out, err := st.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &st.deliveriesTable,
		KeyConditionExpression:    aws.String("pk = :pk AND sk < :attempts"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": pk, ":attempts": s(attemptPrefix)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return d, nil, nil, false, fmt.Errorf("read delivery %s: %w", id, err)
	}
	for _, item := range out.Items {
		sk, _ := item["sk"].(*types.AttributeValueMemberS)
		switch {
		case sk == nil:
		case sk.Value == summarySK:
			var it summaryItem
			if err := attributevalue.UnmarshalMap(item, &it); err != nil {
				return d, nil, nil, false, err
			}
			d, found = fromSummary(it), !expired(it.ExpiresAt)
		case sk.Value == payloadSK:
			var it payloadItem
			if err := attributevalue.UnmarshalMap(item, &it); err != nil {
				return d, nil, nil, false, err
			}
			if !expired(it.ExpiresAt) {
				payload = []byte(it.Body)
			}
		}
	}
	if !found {
		return domain.Delivery{}, nil, nil, false, deliveryNotFound(id)
	}
	in := &dynamodb.QueryInput{
		TableName:                 &st.deliveriesTable,
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :attempts)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": pk, ":attempts": s(attemptPrefix)},
		ConsistentRead:            aws.Bool(true),
		ScanIndexForward:          aws.Bool(false),
	}
	if maxAttempts > 0 {
		// One more than shown tells whether any were left out.
		in.Limit = aws.Int32(int32(maxAttempts + 1))
	}
	var attempts []domain.Attempt
	for ended := false; !ended; {
		out, err := st.db.Query(ctx, in)
		if err != nil {
			return d, nil, nil, false, fmt.Errorf("read attempts of delivery %s: %w", id, err)
		}
		for _, item := range out.Items {
			var it attemptItem
			if err := attributevalue.UnmarshalMap(item, &it); err != nil {
				return d, nil, nil, false, err
			}
			if expired(it.ExpiresAt) {
				// Read newest first: the attempts before it were recorded
				// earlier, with the same retention, and have expired too.
				ended = true
				break
			}
			at, _ := time.Parse(time.RFC3339Nano, it.At)
			attempts = append(attempts, domain.Attempt{Number: it.Number, At: at, StatusCode: it.StatusCode,
				LatencyMS: it.LatencyMS, Error: it.Error, ResponseBody: it.ResponseBody})
		}
		if ended || len(out.LastEvaluatedKey) == 0 || maxAttempts > 0 && len(attempts) > maxAttempts {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		if maxAttempts > 0 {
			in.Limit = aws.Int32(int32(maxAttempts + 1 - len(attempts)))
		}
	}
	truncated := maxAttempts > 0 && len(attempts) > maxAttempts
	if truncated {
		attempts = attempts[:maxAttempts]
	}
	// Keys order attempts by number, and two requests of one number by
	// their random keys: order those by the time they were sent.
	slices.SortStableFunc(attempts, func(a, b domain.Attempt) int {
		return cmp.Or(cmp.Compare(a.Number, b.Number), a.At.Compare(b.At))
	})
	return d, payload, attempts, truncated, nil
}

// DeliveryFilter narrows a listing; empty fields do not filter.
type DeliveryFilter struct {
	EndpointID string
	Status     string
}

// listBatch is the most summaries one BatchGetItem reads (DynamoDB's own
// limit); tests lower it to cross batch boundaries with few deliveries.
var listBatch = 100

// A listing narrowed by a filter on the index entries (status and endpoint
// together) reads listScan entries a Query, since DynamoDB applies a
// Query's limit before its filter, and at most listQueries Queries a page:
// an endpoint with few deliveries among an account's many of one status
// gets short pages with a next position, not a request that runs past the
// function's timeout. A listing of a status by_status does not file
// (pending, delivered) keeps the summaries with that status, so it reads
// the summary of every entry it looks at: a page's worth with its first
// Query, which delivered deliveries (most of them) usually fill, then up to
// min(listScan, listBatch) entries a Query for a rarer status; at most
// listQueries Queries a page as well. Tests lower both.
var (
	listScan    int32 = 1000
	listQueries       = 10
)

// ListDeliveries returns up to limit of account's deliveries, newest first,
// after the position a previous page returned (empty: from the newest), and
// the position of the next page (empty: no more). A page is shorter than
// limit, even empty, with a next position when it read as much of the index
// as one page may (listQueries) without filling up.
//
// The indexes hold keys only (by_status also the endpoint id), so a page is a
// Query for keys and a consistent BatchGetItem for the summaries. A status
// by_status does not file (pending, delivered) is read from the account's or
// the endpoint's index and kept where the summary has it. An index is
// eventually consistent: a summary whose status no longer matches the status
// asked for is left out, and so is one that is gone from the table, and the
// page is filled from further index entries.
func (st *Store) ListDeliveries(ctx context.Context, account string, f DeliveryFilter, limit int, after string) ([]domain.Delivery, string, error) {
	if limit < 1 || limit > 100 {
		return nil, "", errors.New("list deliveries: limit must be 1-100")
	}
	index, pkName, skName, pk := IndexByAccount, "gsi1pk", "gsi1sk", accountPK(account)
	var filter *string
	values := map[string]types.AttributeValue{}
	switch {
	case StatusIndexed(f.Status):
		// The status's index, narrowed to the endpoint by its projected
		// endpoint_id, which never changes: a filter on the index entries is
		// cheaper than reading every summary of the endpoint to check its
		// status. Other statuses are not indexed: the account's or the
		// endpoint's index is read, and the summaries' status decides below.
		index, pkName, skName, pk = IndexByStatus, "gsi3pk", "gsi3sk", statusPK(account, f.Status)
		if f.EndpointID != "" {
			filter = aws.String("endpoint_id = :ep")
			values[":ep"] = s(f.EndpointID)
		}
	case f.EndpointID != "":
		index, pkName, skName, pk = IndexByEndpoint, "gsi2pk", "gsi2sk", accountPK(account)+"#ENDPOINT#"+f.EndpointID
	}
	values[":pk"] = s(pk)
	in := &dynamodb.QueryInput{
		TableName:                 &st.deliveriesTable,
		IndexName:                 &index,
		KeyConditionExpression:    aws.String(pkName + " = :pk"),
		ExpressionAttributeValues: values,
		FilterExpression:          filter,
		ScanIndexForward:          aws.Bool(false),
	}
	if after != "" {
		// The position is the index sort key of the last item shown: the
		// table key is derived from it.
		_, id, ok := strings.Cut(after, "#")
		if !ok {
			return nil, "", errors.New("list deliveries: bad position")
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{
			"pk": s(deliveryPK(account, id)), "sk": s(summarySK), pkName: s(pk), skName: s(after),
		}
	}
	var out []domain.Delivery
	var positions []string
	// Entries may be filtered out or left out, so a page may come back short;
	// read on until it is full or the index ends. One more than asked tells
	// whether a next page exists.
	bySummary := f.Status != "" && !StatusIndexed(f.Status)
	skipped := false // entries whose summaries expired (see expired)
	for queries := 1; len(out) <= limit; queries++ {
		in.Limit = aws.Int32(int32(limit + 1 - len(out)))
		switch {
		case filter != nil:
			in.Limit = aws.Int32(max(*in.Limit, listScan))
		case (bySummary || skipped) && queries > 1:
			// The first Query did not fill the page: look further at once.
			in.Limit = aws.Int32(max(*in.Limit, min(listScan, int32(listBatch))))
		}
		page, err := st.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("list deliveries of account %s: %w", account, err)
		}
		items, lastKey := page.Items, page.LastEvaluatedKey
		if need := limit + 1 - len(out); filter != nil && len(items) > need {
			// A filtered Query may find more than the page needs: read the
			// summaries of those it needs, and go on after the last of them.
			items = items[:need]
			last := items[need-1]
			lastKey = map[string]types.AttributeValue{"pk": last["pk"], "sk": last["sk"], pkName: last[pkName], skName: last[skName]}
		}
		summaries, err := st.summaries(ctx, items)
		if err != nil {
			return nil, "", fmt.Errorf("list deliveries of account %s: %w", account, err)
		}
		for _, key := range items {
			it, ok := summaries[stringAttr(key, "pk")]
			if ok && expired(it.ExpiresAt) {
				ok, skipped = false, true
			}
			if !ok || (f.Status != "" && it.Status != f.Status) {
				continue
			}
			out = append(out, fromSummary(it))
			positions = append(positions, stringAttr(key, skName))
		}
		if len(lastKey) == 0 {
			break
		}
		in.ExclusiveStartKey = lastKey
		if queries == listQueries && len(out) <= limit {
			// Read enough for one request: the next page starts after the
			// last entry read.
			return out, stringAttr(lastKey, skName), nil
		}
	}
	next := ""
	if len(out) > limit {
		out, next = out[:limit], positions[limit-1]
	}
	return out, next, nil
}

// numberAttr is item's whole-number attribute name, zero when it has none.
func numberAttr(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func stringAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// summaries reads the summary items of index entries, listBatch to a
// consistent BatchGetItem, retrying what DynamoDB leaves unprocessed. It
// returns them by partition key; a summary that no longer exists is absent.
func (st *Store) summaries(ctx context.Context, entries []map[string]types.AttributeValue) (map[string]summaryItem, error) {
	got := make(map[string]summaryItem, len(entries))
	for len(entries) > 0 {
		n := min(len(entries), listBatch)
		keys := make([]map[string]types.AttributeValue, 0, n)
		for _, e := range entries[:n] {
			keys = append(keys, map[string]types.AttributeValue{"pk": e["pk"], "sk": e["sk"]})
		}
		entries = entries[n:]
		pending := map[string]types.KeysAndAttributes{st.deliveriesTable: {Keys: keys, ConsistentRead: aws.Bool(true)}}
		for try := 0; len(pending[st.deliveriesTable].Keys) > 0; try++ {
			if try > 0 {
				if try > 8 {
					return nil, fmt.Errorf("batch get: keys left unprocessed after 8 retries: %w", domain.ErrUnavailable)
				}
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Duration(25<<try) * time.Millisecond):
				}
			}
			out, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, fmt.Errorf("batch get delivery summaries: %w", err)
			}
			for _, item := range out.Responses[st.deliveriesTable] {
				var it summaryItem
				if err := attributevalue.UnmarshalMap(item, &it); err != nil {
					return nil, fmt.Errorf("decode delivery summary: %w", err)
				}
				got[it.PK] = it
			}
			pending = out.UnprocessedKeys
		}
	}
	return got, nil
}

// StartRound starts a new round of attempts for account's delivery id if
// it still has attempts attempts: status pending, the next attempt numbered
// attempts+1, the delivery kept until expires and its payload until
// payloadExpires (a round started late in the retention period must not
// lose its payload). It returns the delivery as updated; ErrConflict when
// another attempt was recorded meanwhile, not_found when the delivery is
// gone or expired at now.
func (st *Store) StartRound(ctx context.Context, account, id string, attempts int, now, expires, payloadExpires time.Time) (domain.Delivery, error) {
	key := func(sk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": s(deliveryPK(account, id)), "sk": s(sk)}
	}
	exp := &types.AttributeValueMemberN{Value: strconv.FormatInt(expires.Unix(), 10)}
	// An expired delivery is not brought back: its payload and attempts
	// may already be gone (see expired).
	unexpired := &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)}
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.deliveriesTable,
		Key:       key(summarySK),
		// Pending again, so out of by_status; no earlier write replays over it.
		UpdateExpression: aws.String("SET #s = :pending, round_start = :round, " +
			"next_attempt_at = :now, updated_at = :now, expires_at = :exp REMOVE gsi3pk, gsi3sk, written_by"),
		ConditionExpression:      aws.String("attribute_exists(pk) AND attempt_count = :attempts AND expires_at > :unexpired"),
		ExpressionAttributeNames: map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pending":  s(domain.DeliveryPending),
			":attempts": &types.AttributeValueMemberN{Value: strconv.Itoa(attempts)},
			":round":    &types.AttributeValueMemberN{Value: strconv.Itoa(attempts + 1)},
			":now":      s(now.UTC().Format(time.RFC3339Nano)), ":exp": exp, ":unexpired": unexpired,
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 || numberAttr(ccf.Item, "expires_at") <= now.Unix() {
			return domain.Delivery{}, deliveryNotFound(id)
		}
		return domain.Delivery{}, fmt.Errorf("start a round of %s: %w", id, ErrConflict)
	}
	if err != nil {
		return domain.Delivery{}, fmt.Errorf("start a round of %s: %w", id, err)
	}
	var it summaryItem
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return domain.Delivery{}, err
	}
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.deliveriesTable, Key: key(payloadSK),
		UpdateExpression:    aws.String("SET expires_at = :exp"),
		ConditionExpression: aws.String("attribute_exists(pk) AND expires_at > :unexpired"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":exp": &types.AttributeValueMemberN{Value: strconv.FormatInt(payloadExpires.Unix(), 10)}, ":unexpired": unexpired},
	})
	if err != nil && !errors.As(err, &ccf) {
		return domain.Delivery{}, fmt.Errorf("keep the payload of %s: %w", id, err)
	}
	return fromSummary(it), nil
}

// Payload returns the body sent for account's delivery id.
func (st *Store) Payload(ctx context.Context, account, id string) ([]byte, error) {
	// Consistent: fan-out writes the payload just before it queues the
	// task, and a payload read as missing ends the delivery.
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.deliveriesTable,
		Key:            map[string]types.AttributeValue{"pk": s(deliveryPK(account, id)), "sk": s(payloadSK)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get payload of %s: %w", id, err)
	}
	b, ok := out.Item["body"].(*types.AttributeValueMemberS)
	if !ok || expired(numberAttr(out.Item, "expires_at")) {
		return nil, domain.Errorf(domain.CodeNotFound, "payload of delivery %s not found", id)
	}
	return []byte(b.Value), nil
}
