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
				"pk": s("APIKEY#" + keyHash), "sk": s(apiKeySK),
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

// AccountByKeyHash resolves an API key hash to its account. Unknown and revoked
// keys are not_found.
func (st *Store) AccountByKeyHash(ctx context.Context, keyHash string) (string, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &st.endpointsTable,
		Key:       map[string]types.AttributeValue{"pk": s("APIKEY#" + keyHash), "sk": s(apiKeySK)},
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

type endpointItem struct {
	PK        string   `dynamodbav:"pk"`
	SK        string   `dynamodbav:"sk"`
	ID        string   `dynamodbav:"id"`
	AccountID string   `dynamodbav:"account_id"`
	Name      string   `dynamodbav:"name"`
	URL       string   `dynamodbav:"url"`
	Triggers  []string `dynamodbav:"triggers,stringset,omitempty"`
	Status    string   `dynamodbav:"status"`
	Enabled   bool     `dynamodbav:"enabled"`
	CreatedAt string   `dynamodbav:"created_at"`
	UpdatedAt string   `dynamodbav:"updated_at"`
}

// ListEndpoints returns up to limit of account's endpoints in id order.
func (st *Store) ListEndpoints(ctx context.Context, account string, limit int) ([]domain.Endpoint, error) {
	if limit < 1 || limit > 100 {
		return nil, errors.New("list endpoints: limit must be 1-100")
	}
	out, err := st.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              &st.endpointsTable,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :ep)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(accountPK(account)), ":ep": s(endpointPrefix),
		},
		Limit: aws.Int32(int32(limit)),
	})
	if err != nil {
		return nil, fmt.Errorf("list endpoints of account %s: %w", account, err)
	}
	var items []endpointItem
	if err := attributevalue.UnmarshalListOfMaps(out.Items, &items); err != nil {
		return nil, fmt.Errorf("decode endpoints of account %s: %w", account, err)
	}
	eps := make([]domain.Endpoint, 0, len(items))
	for _, it := range items {
		created, _ := time.Parse(time.RFC3339, it.CreatedAt)
		updated, _ := time.Parse(time.RFC3339, it.UpdatedAt)
		eps = append(eps, domain.Endpoint{
			ID: it.ID, AccountID: it.AccountID, Name: it.Name, URL: it.URL, Triggers: it.Triggers,
			Status: it.Status, Enabled: it.Enabled, CreatedAt: created, UpdatedAt: updated,
		})
	}
	return eps, nil
}
