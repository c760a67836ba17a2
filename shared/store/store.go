package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// Store reads and writes the endpoints and delivery-log tables.
type Store struct {
	db              *dynamodb.Client
	endpointsTable  string
	deliveriesTable string
}

// New returns a Store over the two tables.
func New(db *dynamodb.Client, endpointsTable, deliveriesTable string) *Store {
	return &Store{db: db, endpointsTable: endpointsTable, deliveriesTable: deliveriesTable}
}

func accountPK(account string) string { return "ACCOUNT#" + account }

const (
	accountSK      = "ACCOUNT"
	apiKeySK       = "APIKEY"
	endpointPrefix = "ENDPOINT#"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func apiKeyPK(keyHash string) string { return "APIKEY#" + keyHash }

// apiKeyKey is the key of the item of the API key whose hash is keyHash.
func apiKeyKey(keyHash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(apiKeyPK(keyHash)), "sk": s(apiKeySK)}
}

// CreateAPIKey stores the hash of a new key for account, creating the account
// if it does not exist yet. Both writes happen in one transaction, so there is
// never a key without its account.
func (st *Store) CreateAPIKey(ctx context.Context, account, keyHash string, now time.Time) error {
	if !domain.ValidAccountID(account) {
		return domain.Errorf(domain.CodeValidationFailed, "account id must be 1-128 characters of A-Za-z0-9_.:-")
	}
	at := now.UTC().Format(time.RFC3339)
	_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 &st.endpointsTable,
			Key:                       map[string]types.AttributeValue{"pk": s(accountPK(account)), "sk": s(accountSK)},
			UpdateExpression:          aws.String("SET account_id = :a, created_at = if_not_exists(created_at, :t)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": s(account), ":t": s(at)},
		}},
		{Put: &types.Put{
			TableName: &st.endpointsTable,
			Item: map[string]types.AttributeValue{
				"pk": s(apiKeyPK(keyHash)), "sk": s(apiKeySK),
				"account_id": s(account), "created_at": s(at),
			},
			// A hash collision of 256-bit random keys does not happen; the
			// condition makes sure a key is never silently reassigned.
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}},
	}})
	if err != nil {
		return fmt.Errorf("create api key for account %s: %w", account, err)
	}
	return nil
}

// RevokeAPIKey revokes the key whose hash is keyHash: from then on it
// resolves to no account. Revoking a revoked key keeps its first time; an
// unknown key is not_found.
func (st *Store) RevokeAPIKey(ctx context.Context, keyHash string, now time.Time) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &st.endpointsTable,
		Key:                       apiKeyKey(keyHash),
		UpdateExpression:          aws.String("SET revoked_at = if_not_exists(revoked_at, :t)"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": s(now.UTC().Format(time.RFC3339))},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return domain.Errorf(domain.CodeNotFound, "api key not found")
	}
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return nil
}

// AccountByKeyHash resolves an API key hash to its account. Unknown and revoked
// keys are not_found. The read is strongly consistent, so a key revoked a
// moment ago is already refused.
func (st *Store) AccountByKeyHash(ctx context.Context, keyHash string) (string, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.endpointsTable,
		Key:            apiKeyKey(keyHash),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("look up api key: %w", err)
	}
	var item struct {
		AccountID string `dynamodbav:"account_id"`
		RevokedAt string `dynamodbav:"revoked_at"`
	}
	if err := attributevalue.UnmarshalMap(out.Item, &item); err != nil {
		return "", fmt.Errorf("decode api key: %w", err)
	}
	if out.Item == nil || item.AccountID == "" || item.RevokedAt != "" {
		return "", domain.Errorf(domain.CodeNotFound, "api key not found")
	}
	return item.AccountID, nil
}
