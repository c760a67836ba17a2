package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

type sealer interface {
	Seal(ctx context.Context, plaintext []byte, ec map[string]string) ([]byte, error)
	Open(ctx context.Context, ciphertext []byte, ec map[string]string) ([]byte, error)
}

// ServiceKey returns the service-wide 32-byte key called name (for example
// the key that seals pagination cursors), creating it on first use. The key
// is stored sealed with KMS; every instance of every function gets the same
// key, and a race between two first uses keeps one of them.
func (st *Store) ServiceKey(ctx context.Context, name string, kms sealer) ([]byte, error) {
	key := map[string]types.AttributeValue{"pk": s("SERVICE"), "sk": s("KEY#" + name)}
	ec := map[string]string{"purpose": "service-key", "name": name}
	for attempt := 0; attempt < 3; attempt++ {
		out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &st.endpointsTable, Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return nil, fmt.Errorf("read service key %s: %w", name, err)
		}
		if b, ok := out.Item["sealed"].(*types.AttributeValueMemberB); ok {
			plain, err := kms.Open(ctx, b.Value, ec)
			if err != nil {
				return nil, fmt.Errorf("open service key %s: %w", name, err)
			}
			if len(plain) != 32 {
				return nil, fmt.Errorf("service key %s is %d bytes", name, len(plain))
			}
			return plain, nil
		}
		fresh := make([]byte, 32)
		_, _ = rand.Read(fresh)
		sealed, err := kms.Seal(ctx, fresh, ec)
		if err != nil {
			return nil, fmt.Errorf("seal service key %s: %w", name, err)
		}
		_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &st.endpointsTable,
			Item: map[string]types.AttributeValue{"pk": key["pk"], "sk": key["sk"],
				"sealed": &types.AttributeValueMemberB{Value: sealed}},
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			continue // another instance created it first: use theirs
		}
		if err != nil {
			return nil, fmt.Errorf("store service key %s: %w", name, err)
		}
		return fresh, nil
	}
	return nil, fmt.Errorf("service key %s: could not be read or created", name)
}

// CountRequest adds one to account's request count for the window starting
// at window and returns the new count. Counters expire a window after they
// end (the endpoints table's TTL attribute expires_at).
func (st *Store) CountRequest(ctx context.Context, account string, window time.Time, length time.Duration) (int64, error) {
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.endpointsTable,
		Key: map[string]types.AttributeValue{
			"pk": s("RATE#" + account + "#" + strconv.FormatInt(window.Unix(), 10)), "sk": s("RATE"),
		},
		UpdateExpression:         aws.String("ADD #n :one SET expires_at = if_not_exists(expires_at, :exp)"),
		ExpressionAttributeNames: map[string]string{"#n": "count"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": &types.AttributeValueMemberN{Value: "1"},
			":exp": &types.AttributeValueMemberN{Value: strconv.FormatInt(window.Add(2*length).Unix(), 10)},
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, fmt.Errorf("count request of account %s: %w", account, err)
	}
	n, ok := out.Attributes["count"].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("count request of account %s: no count returned", account)
	}
	return strconv.ParseInt(n.Value, 10, 64)
}
