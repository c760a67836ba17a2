package main

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestItemSize(t *testing.T) {
	for _, c := range []struct {
		name string
		item map[string]types.AttributeValue
		want int
	}{
		{"string", map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "abc"}}, 2 + 3},
		{"number, 3 significant digits", map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "503"}}, 1 + 3},
		{"number, zeros trimmed", map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "1200"}}, 1 + 2},
		{"zero", map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "0"}}, 1 + 1},
		{"bool", map[string]types.AttributeValue{"ok": &types.AttributeValueMemberBOOL{Value: true}}, 2 + 1},
		{"map", map[string]types.AttributeValue{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"a": &types.AttributeValueMemberS{Value: "xy"}}}}, 1 + 3 + 1 + 1 + 2},
	} {
		if got := itemSize(c.item); got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, got, c.want)
		}
	}
}

// summaryItem is delivery d's summary with status, padded by pad bytes.
func summaryItem(d, status string, pad int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "DELIVERY#a#" + d},
		"sk": &types.AttributeValueMemberS{Value: "#SUMMARY"}, "status": &types.AttributeValueMemberS{Value: status},
		"pad": &types.AttributeValueMemberS{Value: strings.Repeat("x", pad)}}
}

func TestCapacityOfASummaryLifecycle(t *testing.T) {
	c := newCounter()
	step := func(in any, want float64) {
		t.Helper()
		before := c.wru
		c.capacity(in)
		if got := c.wru - before; got != want {
			t.Errorf("%T: %v WRU, want %v", in, got, want)
		}
	}
	create, settle := aws.String("attribute_not_exists(pk)"), aws.String("attempt_count = :prev")
	// Created pending: by_account and by_endpoint; delivered at once: the
	// item alone (neither status is in by_status).
	step(&dynamodb.PutItemInput{Item: summaryItem("d", "pending", 100), ConditionExpression: create}, 1+2)
	step(&dynamodb.PutItemInput{Item: summaryItem("d", "delivered", 100), ConditionExpression: settle}, 1)
	// Another: into by_status, kept there, moved within it, and out again.
	step(&dynamodb.PutItemInput{Item: summaryItem("e", "pending", 100), ConditionExpression: create}, 1+2)
	step(&dynamodb.PutItemInput{Item: summaryItem("e", "retrying", 100), ConditionExpression: settle}, 1+1)
	step(&dynamodb.PutItemInput{Item: summaryItem("e", "retrying", 100), ConditionExpression: settle}, 1)
	step(&dynamodb.PutItemInput{Item: summaryItem("e", "failed", 100), ConditionExpression: settle}, 1+2)
	step(&dynamodb.UpdateItemInput{Key: summaryItem("e", "", 0)}, 1+1)
	step(&dynamodb.PutItemInput{Item: summaryItem("e", "delivered", 1500), ConditionExpression: settle}, 2)
	step(&dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"t": {
		{PutRequest: &types.PutRequest{Item: summaryItem("x", "x", 10)}}, {PutRequest: &types.PutRequest{Item: summaryItem("x", "x", 2100)}}}}}, 1+3)
}

// TestCapacityOfARefusedWrite: a settle refused by its condition (the loser
// of two invocations that made one attempt) costs its item's units, writes
// no index, and leaves the status the winner wrote.
func TestCapacityOfARefusedWrite(t *testing.T) {
	c := newCounter()
	c.capacity(&dynamodb.PutItemInput{Item: summaryItem("d", "pending", 0), ConditionExpression: aws.String("attribute_not_exists(pk)")})
	c.capacity(&dynamodb.PutItemInput{Item: summaryItem("d", "delivered", 0), ConditionExpression: aws.String("attempt_count = :prev")})
	before := c.wru
	c.refused(&dynamodb.PutItemInput{Item: summaryItem("d", "retrying", 0), ConditionExpression: aws.String("attempt_count = :prev")})
	if got := c.wru - before; got != 1 {
		t.Errorf("refused settle: %v WRU, want 1", got)
	}
	if c.status["DELIVERY#a#d"] != "delivered" {
		t.Errorf("status after a refused settle %q, want the winner's delivered", c.status["DELIVERY#a#d"])
	}
}
