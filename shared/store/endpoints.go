package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// ErrConflict is returned when an endpoint or a delivery changed since it
// was read; the caller reads it again and decides.
var ErrConflict = errors.New("changed concurrently")

func linkPK(account, thermometer string) string {
	return "ACCOUNT#" + account + "#THERMOMETER#" + thermometer
}

// endpointItem is an endpoint as stored. Link items (one per linked
// thermometer, keyed for access pattern 2) carry the same attributes plus
// the thermometer, so fan-out reads everything it needs in one Query.
type endpointItem struct {
	PK                string           `dynamodbav:"pk"`
	SK                string           `dynamodbav:"sk"`
	ID                string           `dynamodbav:"id"`
	AccountID         string           `dynamodbav:"account_id"`
	Name              string           `dynamodbav:"name"`
	URL               string           `dynamodbav:"url"`
	Triggers          []string         `dynamodbav:"triggers"`
	BasicAuthUsername string           `dynamodbav:"basic_auth_username,omitempty"`
	BasicAuthPassword []byte           `dynamodbav:"basic_auth_password,omitempty"`
	Secret            []byte           `dynamodbav:"secret"`
	Enabled           bool             `dynamodbav:"enabled"`
	Tested            bool             `dynamodbav:"tested"`
	Failing           bool             `dynamodbav:"failing"`
	Gone              bool             `dynamodbav:"gone"`
	LastTest          *lastTestItem    `dynamodbav:"last_test,omitempty"`
	Thermometers      []thermometerAtt `dynamodbav:"thermometers"`
	Thermometer       *thermometerAtt  `dynamodbav:"thermometer,omitempty"` // link items only
	CreatedAt         string           `dynamodbav:"created_at"`
	UpdatedAt         string           `dynamodbav:"updated_at"`
	Version           int64            `dynamodbav:"version"`
}

type thermometerAtt struct {
	ID   string `dynamodbav:"id"`
	Name string `dynamodbav:"name"`
	Type string `dynamodbav:"type"`
}

type lastTestItem struct {
	At         string `dynamodbav:"at"`
	Delivered  bool   `dynamodbav:"delivered"`
	StatusCode int    `dynamodbav:"status_code"`
	LatencyMS  int64  `dynamodbav:"latency_ms"`
	Error      string `dynamodbav:"error,omitempty"`
}

func toItem(e domain.Endpoint) endpointItem {
	it := endpointItem{
		PK: accountPK(e.AccountID), SK: endpointPrefix + e.ID, ID: e.ID, AccountID: e.AccountID,
		Name: e.Name, URL: e.URL, Triggers: e.Triggers, Secret: e.Secret,
		Enabled: e.Enabled, Tested: e.Tested, Failing: e.Failing, Gone: e.Gone,
		CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339Nano), UpdatedAt: e.UpdatedAt.UTC().Format(time.RFC3339Nano),
		Version: e.Version, Thermometers: make([]thermometerAtt, 0, len(e.Thermometers)),
	}
	if e.BasicAuth != nil {
		it.BasicAuthUsername, it.BasicAuthPassword = e.BasicAuth.Username, e.BasicAuth.Password
	}
	if lt := e.LastTest; lt != nil {
		it.LastTest = &lastTestItem{At: lt.At.UTC().Format(time.RFC3339Nano), Delivered: lt.Delivered,
			StatusCode: lt.StatusCode, LatencyMS: lt.LatencyMS, Error: lt.Error}
	}
	for _, th := range e.Thermometers {
		it.Thermometers = append(it.Thermometers, thermometerAtt(th))
	}
	return it
}

func fromItem(it endpointItem) domain.Endpoint {
	e := domain.Endpoint{
		ID: it.ID, AccountID: it.AccountID, Name: it.Name, URL: it.URL, Triggers: it.Triggers, Secret: it.Secret,
		Enabled: it.Enabled, Tested: it.Tested, Failing: it.Failing, Gone: it.Gone, Version: it.Version,
		Thermometers: make([]domain.Thermometer, 0, len(it.Thermometers)),
	}
	e.CreatedAt, _ = time.Parse(time.RFC3339Nano, it.CreatedAt)
	e.UpdatedAt, _ = time.Parse(time.RFC3339Nano, it.UpdatedAt)
	if it.BasicAuthUsername != "" {
		e.BasicAuth = &domain.BasicAuth{Username: it.BasicAuthUsername, Password: it.BasicAuthPassword}
	}
	if lt := it.LastTest; lt != nil {
		at, _ := time.Parse(time.RFC3339Nano, lt.At)
		e.LastTest = &domain.LastTest{At: at, Delivered: lt.Delivered, StatusCode: lt.StatusCode, LatencyMS: lt.LatencyMS, Error: lt.Error}
	}
	for _, th := range it.Thermometers {
		e.Thermometers = append(e.Thermometers, domain.Thermometer(th))
	}
	return e
}

// GetEndpoint returns account's endpoint id; another account's endpoint is
// not_found, exactly like one that does not exist.
func (st *Store) GetEndpoint(ctx context.Context, account, id string) (domain.Endpoint, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.endpointsTable,
		Key:            map[string]types.AttributeValue{"pk": s(accountPK(account)), "sk": s(endpointPrefix + id)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return domain.Endpoint{}, fmt.Errorf("get endpoint %s: %w", id, err)
	}
	if out.Item == nil {
		return domain.Endpoint{}, domain.Errorf(domain.CodeNotFound, "endpoint %s not found", id)
	}
	var it endpointItem
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return domain.Endpoint{}, fmt.Errorf("decode endpoint %s: %w", id, err)
	}
	return fromItem(it), nil
}

// ListEndpoints returns up to limit of account's endpoints in creation order,
// starting after the endpoint id after (empty: from the start), and whether
// more follow.
func (st *Store) ListEndpoints(ctx context.Context, account string, limit int, after string) ([]domain.Endpoint, bool, error) {
	if limit < 1 || limit > 100 {
		return nil, false, errors.New("list endpoints: limit must be 1-100")
	}
	in := &dynamodb.QueryInput{
		TableName:              &st.endpointsTable,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :ep)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(accountPK(account)), ":ep": s(endpointPrefix),
		},
		// One more than asked tells whether another page exists, so the
		// last page never ends with a cursor to an empty page.
		Limit: aws.Int32(int32(limit + 1)),
	}
	if after != "" {
		in.ExclusiveStartKey = map[string]types.AttributeValue{"pk": s(accountPK(account)), "sk": s(endpointPrefix + after)}
	}
	// A Query stops at 1 MB of items, fewer than asked when endpoints are
	// large (many linked thermometers): read on until the page is full or
	// the account's endpoints end, so a short page never hides the rest.
	var items []endpointItem
	for len(items) <= limit {
		out, err := st.db.Query(ctx, in)
		if err != nil {
			return nil, false, fmt.Errorf("list endpoints of account %s: %w", account, err)
		}
		var page []endpointItem
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
			return nil, false, fmt.Errorf("decode endpoints of account %s: %w", account, err)
		}
		items = append(items, page...)
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		in.Limit = aws.Int32(int32(limit + 1 - len(items)))
	}
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	eps := make([]domain.Endpoint, 0, len(items))
	for _, it := range items {
		eps = append(eps, fromItem(it))
	}
	return eps, more, nil
}

// CreateEndpoint stores a new endpoint (Version must be 0; stored as 1).
func (st *Store) CreateEndpoint(ctx context.Context, e domain.Endpoint) error {
	return st.write(ctx, e, nil, false)
}

// SaveEndpoint stores e if the stored endpoint still has e.Version, as
// e.Version+1, and brings its link items in line: links for thermometers in
// e.Thermometers are written (with the endpoint's new state), links for
// thermometers only in previous are deleted. ErrConflict when the endpoint
// changed since it was read; not_found when it is gone.
func (st *Store) SaveEndpoint(ctx context.Context, e domain.Endpoint, previous []domain.Thermometer) error {
	return st.write(ctx, e, previous, false)
}

// SaveEndpointState is SaveEndpoint for a change of the endpoint's own
// state that fan-out does not read (its failing flag): the endpoint item
// alone is written, not its links, which keep their version.
func (st *Store) SaveEndpointState(ctx context.Context, e domain.Endpoint) error {
	expect := e.Version
	e.Version++
	av, err := attributevalue.MarshalMap(toItem(e))
	if err != nil {
		return fmt.Errorf("encode endpoint %s: %w", e.ID, err)
	}
	_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &st.endpointsTable, Item: av,
		ConditionExpression:       aws.String("version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: fmt.Sprint(expect)}}})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return st.conflictOrGone(ctx, e)
	}
	if err != nil {
		return fmt.Errorf("write endpoint %s: %w", e.ID, err)
	}
	return nil
}

// DeleteEndpoint removes e and all its links, if it still has e.Version.
func (st *Store) DeleteEndpoint(ctx context.Context, e domain.Endpoint) error {
	return st.write(ctx, e, e.Thermometers, true)
}

// maxTransactItems is DynamoDB's limit of items in one transaction.
const maxTransactItems = 100

func (st *Store) write(ctx context.Context, e domain.Endpoint, previous []domain.Thermometer, remove bool) error {
	expect := e.Version
	e.Version++
	item := toItem(e)
	av, err := attributevalue.MarshalMap(item)
	if err != nil {
		return fmt.Errorf("encode endpoint %s: %w", e.ID, err)
	}
	var first types.TransactWriteItem
	key := map[string]types.AttributeValue{"pk": s(item.PK), "sk": s(item.SK)}
	switch {
	case expect == 0:
		first.Put = &types.Put{TableName: &st.endpointsTable, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)")}
	case remove:
		first.Delete = &types.Delete{TableName: &st.endpointsTable, Key: key,
			ConditionExpression:       aws.String("version = :v"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: fmt.Sprint(expect)}}}
	default:
		first.Put = &types.Put{TableName: &st.endpointsTable, Item: av,
			ConditionExpression:       aws.String("version = :v"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: fmt.Sprint(expect)}}}
	}
	ops := []types.TransactWriteItem{first}
	current := map[string]bool{}
	// A link is changed only if no later write of the endpoint has changed
	// it since: see below.
	notNewer := aws.String("attribute_not_exists(pk) OR version <= :v")
	newVersion := map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: fmt.Sprint(e.Version)}}
	if !remove {
		for _, th := range e.Thermometers {
			current[th.ID] = true
			lav, err := linkItem(item, th)
			if err != nil {
				return err
			}
			ops = append(ops, types.TransactWriteItem{Put: &types.Put{TableName: &st.endpointsTable, Item: lav,
				ConditionExpression: notNewer, ExpressionAttributeValues: newVersion}})
		}
	}
	for _, th := range previous {
		if current[th.ID] {
			continue
		}
		ops = append(ops, types.TransactWriteItem{Delete: &types.Delete{TableName: &st.endpointsTable,
			Key:                 map[string]types.AttributeValue{"pk": s(linkPK(e.AccountID, th.ID)), "sk": s(item.SK)},
			ConditionExpression: notNewer, ExpressionAttributeValues: newVersion}})
	}
	// The first transaction holds the endpoint item and its condition, so a
	// conflicting write changes nothing. An endpoint with more than 99 links
	// needs further transactions; should one of them fail, the next write
	// of the endpoint rewrites every link, and a delivery made through a
	// link left stale repairs it (RepairLink). A later write of the
	// endpoint may start once the first transaction is done: a link it has
	// changed since is its to set, and is left out of this write's further
	// transactions (each refused one is sent again without the links whose
	// condition failed).
	for i, chunk := 0, ops; len(chunk) > 0; {
		n := min(len(chunk), maxTransactItems)
		_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: chunk[:n]})
		var tce *types.TransactionCanceledException
		switch {
		case err == nil:
			chunk, i = chunk[n:], i+1
		case !errors.As(err, &tce):
			return fmt.Errorf("write endpoint %s: %w", e.ID, err)
		case i == 0 && len(tce.CancellationReasons) > 0 && aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed":
			if expect == 0 {
				return fmt.Errorf("create endpoint %s: id already exists", e.ID)
			}
			return st.conflictOrGone(ctx, e)
		case i > 0 && len(tce.CancellationReasons) == n && !slices.ContainsFunc(tce.CancellationReasons, func(r types.CancellationReason) bool {
			code := aws.ToString(r.Code)
			return code != "" && code != "None" && code != "ConditionalCheckFailed"
		}):
			kept := make([]types.TransactWriteItem, 0, len(chunk))
			for j, r := range tce.CancellationReasons {
				if aws.ToString(r.Code) != "ConditionalCheckFailed" {
					kept = append(kept, chunk[j])
				}
			}
			if len(kept) == n {
				return fmt.Errorf("write endpoint %s: %w", e.ID, err)
			}
			chunk = append(kept, chunk[n:]...)
		default:
			return fmt.Errorf("write endpoint %s: %w", e.ID, err)
		}
	}
	return nil
}

// linkItem is the link of the endpoint item to thermometer th.
func linkItem(item endpointItem, th domain.Thermometer) (map[string]types.AttributeValue, error) {
	item.PK, item.Thermometer = linkPK(item.AccountID, th.ID), &thermometerAtt{ID: th.ID, Name: th.Name, Type: th.Type}
	item.Thermometers = nil // the endpoint item holds the list
	av, err := attributevalue.MarshalMap(item)
	if err != nil {
		return nil, fmt.Errorf("encode link %s/%s: %w", item.ID, th.ID, err)
	}
	return av, nil
}

func (st *Store) conflictOrGone(ctx context.Context, e domain.Endpoint) error {
	if _, err := st.GetEndpoint(ctx, e.AccountID, e.ID); err != nil {
		return err
	}
	return fmt.Errorf("write endpoint %s: %w", e.ID, ErrConflict)
}

// LinkedEndpointsPage returns account's endpoints linked to thermometer, in
// id order, each with that thermometer in Thermometers (access pattern 2: one
// Query, cost proportional to the links): up to limit endpoints after the
// endpoint id after, and the id to continue after ("" at the end). Fan-out
// reads a page at a time so one invocation's work stays bounded however many
// endpoints an event reaches.
func (st *Store) LinkedEndpointsPage(ctx context.Context, account, thermometer, after string, limit int) ([]domain.Endpoint, string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &st.endpointsTable,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(linkPK(account, thermometer))},
		Limit:                     aws.Int32(int32(limit + 1)),
		// An event that follows a change of the links at once meets the
		// links as changed.
		ConsistentRead: aws.Bool(true),
	}
	if after != "" {
		in.ExclusiveStartKey = map[string]types.AttributeValue{"pk": s(linkPK(account, thermometer)), "sk": s(endpointPrefix + after)}
	}
	var eps []domain.Endpoint
	for len(eps) <= limit {
		out, err := st.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("endpoints linked to %s/%s: %w", account, thermometer, err)
		}
		var items []endpointItem
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &items); err != nil {
			return nil, "", fmt.Errorf("decode links of %s/%s: %w", account, thermometer, err)
		}
		for _, it := range items {
			e := fromItem(it)
			if it.Thermometer != nil {
				e.Thermometers = []domain.Thermometer{domain.Thermometer(*it.Thermometer)}
			}
			eps = append(eps, e)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		in.Limit = aws.Int32(int32(limit + 1 - len(eps)))
	}
	if len(eps) > limit {
		eps = eps[:limit]
		return eps, eps[limit-1].ID, nil
	}
	return eps, "", nil
}

// DeleteLink removes the link of account's thermometer to the endpoint
// endpointID. An endpoint whose deletion stopped part of the way (its links
// go in transactions after the one that deletes it) leaves links behind;
// the delivery function removes one when it finds its endpoint gone. An
// endpoint id is never used again, so a gone endpoint's link is never
// wanted.
func (st *Store) DeleteLink(ctx context.Context, account, thermometer, endpointID string) error {
	_, err := st.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &st.endpointsTable,
		Key:       map[string]types.AttributeValue{"pk": s(linkPK(account, thermometer)), "sk": s(endpointPrefix + endpointID)},
	})
	if err != nil {
		return fmt.Errorf("delete link %s/%s of endpoint %s: %w", account, thermometer, endpointID, err)
	}
	return nil
}

// RepairLink brings the link of thermometer to e in line with e, as read
// from its own item: written anew if e links thermometer, deleted if not.
// A link is left as it is when a later version of the endpoint wrote it,
// so a repair never undoes a newer write. It mends what a write of an
// endpoint with more than 99 changes of links leaves when it stops between
// its transactions.
func (st *Store) RepairLink(ctx context.Context, e domain.Endpoint, thermometer string) error {
	key := map[string]types.AttributeValue{"pk": s(linkPK(e.AccountID, thermometer)), "sk": s(endpointPrefix + e.ID)}
	version := map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: fmt.Sprint(e.Version)}}
	var err error
	if i := slices.IndexFunc(e.Thermometers, func(th domain.Thermometer) bool { return th.ID == thermometer }); i >= 0 {
		var av map[string]types.AttributeValue
		if av, err = linkItem(toItem(e), e.Thermometers[i]); err != nil {
			return err
		}
		_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &st.endpointsTable, Item: av,
			// Only a link that is there: one missing was deleted by a
			// later write (or with the endpoint), and must not come back.
			ConditionExpression:       aws.String("attribute_exists(pk) AND version < :v"),
			ExpressionAttributeValues: version,
		})
	} else {
		_, err = st.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &st.endpointsTable, Key: key,
			ConditionExpression:       aws.String("version <= :v"),
			ExpressionAttributeValues: version,
		})
	}
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("repair link %s/%s of endpoint %s: %w", e.AccountID, thermometer, e.ID, err)
	}
	return nil
}

// AccountExists reports whether account has been created (it has an API
// key, now or once).
func (st *Store) AccountExists(ctx context.Context, account string) (bool, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:            &st.endpointsTable,
		Key:                  map[string]types.AttributeValue{"pk": s(accountPK(account)), "sk": s(accountSK)},
		ProjectionExpression: aws.String("pk"),
		// An account's first events may follow its first key at once.
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, fmt.Errorf("look up account %s: %w", account, err)
	}
	return out.Item != nil, nil
}
