package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// SetListBatch makes ListDeliveries read n summaries to a BatchGetItem until
// the returned function restores the default.
func SetListBatch(n int) (restore func()) {
	old := listBatch
	listBatch = n
	return func() { listBatch = old }
}

// SetStatusBehindIndex changes the status of account's delivery id but not
// its by_status key: the summary as a listing finds it while the index has
// not caught up with a status change yet.
func (st *Store) SetStatusBehindIndex(ctx context.Context, account, id, status string) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &st.deliveriesTable,
		Key:                       map[string]types.AttributeValue{"pk": s(deliveryPK(account, id)), "sk": s(summarySK)},
		UpdateExpression:          aws.String("SET #s = :s"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": s(status)},
	})
	return err
}

// PadEndpoint adds n bytes of an attribute no reader knows to account's
// endpoint id, so a listing of a few endpoints crosses a Query's 1 MB limit;
// n 0 removes them.
func (st *Store) PadEndpoint(ctx context.Context, account, id string, n int) error {
	in := &dynamodb.UpdateItemInput{
		TableName:           &st.endpointsTable,
		Key:                 map[string]types.AttributeValue{"pk": s(accountPK(account)), "sk": s(endpointPrefix + id)},
		UpdateExpression:    aws.String("REMOVE padding"),
		ConditionExpression: aws.String("attribute_exists(pk)"),
	}
	if n > 0 {
		in.UpdateExpression = aws.String("SET padding = :p")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":p": s(strings.Repeat("x", n))}
	}
	_, err := st.db.UpdateItem(ctx, in)
	return err
}

// deliveryItem reads one of account's delivery id's items as stored.
func (st *Store) deliveryItem(ctx context.Context, account, id, sk string) (map[string]types.AttributeValue, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &st.deliveriesTable, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": s(deliveryPK(account, id)), "sk": s(sk)},
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, errors.New("no such item")
	}
	return out.Item, nil
}

// ExpiresAt reads the TTL attribute of one of account's delivery id's items.
func (st *Store) ExpiresAt(ctx context.Context, account, id, sk string) (time.Time, error) {
	item, err := st.deliveryItem(ctx, account, id, sk)
	if err != nil {
		return time.Time{}, err
	}
	n, ok := item["expires_at"].(*types.AttributeValueMemberN)
	if !ok {
		return time.Time{}, errors.New("no expires_at")
	}
	sec, err := strconv.ParseInt(n.Value, 10, 64)
	return time.Unix(sec, 0), err
}

// SetListReads makes a filtered listing read scan index entries a Query and
// at most queries Queries a page, until the returned function restores the
// defaults.
func SetListReads(scan int32, queries int) (restore func()) {
	oldScan, oldQueries := listScan, listQueries
	listScan, listQueries = scan, queries
	return func() { listScan, listQueries = oldScan, oldQueries }
}

// StatusIndexKey is the by_status partition key account's delivery id is
// filed under, empty when it is not filed there.
func (st *Store) StatusIndexKey(ctx context.Context, account, id string) (string, error) {
	item, err := st.deliveryItem(ctx, account, id, summarySK)
	if err != nil {
		return "", err
	}
	if _, ok := item["gsi3sk"]; ok != (item["gsi3pk"] != nil) {
		return "", errors.New("gsi3pk and gsi3sk are not both there or both gone")
	}
	return stringAttr(item, "gsi3pk"), nil
}

// Position is the listing position of d: its index sort key.
func Position(d domain.Delivery) string { return sortTime(d.CreatedAt) + "#" + d.ID }

// HasAttribute reports whether the summary of account's delivery id holds
// attribute name.
func (st *Store) HasAttribute(ctx context.Context, account, id, name string) (bool, error) {
	item, err := st.deliveryItem(ctx, account, id, summarySK)
	_, ok := item[name]
	return ok, err
}
