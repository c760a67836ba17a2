package main

import (
	"math"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/customerthermometer/webhooks/shared/store"
)

// capacity adds the DynamoDB capacity units a request consumes in AWS, by
// the rules of the DynamoDB Developer Guide:
//
//   - a write costs one WRU per KB of the item written (rounded up); writing
//     a delivery summary also writes its index entries (keys only, well
//     under 1 KB: 1 WRU each): a new summary puts one entry in by_account
//     and one in by_endpoint (2), and one in by_status too when its status
//     is one by_status files (retrying, failed); a rewrite that changes its
//     status puts (1), deletes (1) or moves (a delete and a put: 2) its
//     by_status entry as the old and new status are filed there or not, and
//     one that keeps its status changes no index key or projected attribute
//     (0);
//   - a strongly consistent read costs one RRU per 4 KB read; a Query one
//     per 4 KB of the items it returns.
//
// Items are sized from what is actually sent (itemSize); what is read is
// counted at its minimum, 1 RRU, as the items this service reads are small
// (a summary, an endpoint, three link items). Callers hold c.mu.
func (c *counter) capacity(params any) {
	switch p := params.(type) {
	case *dynamodb.PutItemInput:
		c.wru += capacityUnits(itemSize(p.Item), 1024)
		if stringValue(p.Item["sk"]) != "#SUMMARY" {
			return
		}
		pk, status := stringValue(p.Item["pk"]), stringValue(p.Item["status"])
		switch prev, seen := c.status[pk]; {
		case !seen && p.ConditionExpression != nil && strings.Contains(*p.ConditionExpression, "attribute_not_exists"):
			c.wru += 2 + statusEntry(status) // a new delivery: by_account, by_endpoint (and by_status)
		case prev != status:
			c.wru += statusEntry(prev) + statusEntry(status) // out of by_status, into it, or both
		}
		c.status[pk] = status
	case *dynamodb.BatchWriteItemInput:
		for _, reqs := range p.RequestItems {
			for _, r := range reqs {
				if r.PutRequest != nil {
					c.wru += capacityUnits(itemSize(r.PutRequest.Item), 1024)
				} else {
					c.wru++ // a delete: 1 WRU for an item under 1 KB
				}
			}
		}
	case *dynamodb.UpdateItemInput:
		// A small item (a payload's new expiry, a rate counter), or a
		// summary's new round (redelivery): pending again, out of by_status.
		c.wru++
		if stringValue(p.Key["sk"]) == "#SUMMARY" {
			pk := stringValue(p.Key["pk"])
			c.wru += statusEntry(c.status[pk])
			c.status[pk] = "pending"
		}
	case *dynamodb.TransactWriteItemsInput:
		c.wru += 2 * float64(len(p.TransactItems)) // transactional writes cost double
	case *dynamodb.GetItemInput, *dynamodb.QueryInput:
		c.rru++
	}
}

// refused adds the capacity of a write DynamoDB refused because its
// condition failed: DynamoDB still charges write units for it, by the size
// of the item already there (at least 1; sized here from the item sent,
// which is about the same for a summary), and writes no index. Callers
// hold c.mu.
func (c *counter) refused(params any) {
	switch p := params.(type) {
	case *dynamodb.PutItemInput:
		c.wru += capacityUnits(itemSize(p.Item), 1024)
	case *dynamodb.UpdateItemInput, *dynamodb.DeleteItemInput:
		c.wru++
	}
}

// statusEntry is the by_status entries a summary of status has: 1 or 0.
func statusEntry(status string) float64 {
	if store.StatusIndexed(status) {
		return 1
	}
	return 0
}

func capacityUnits(size, per int) float64 { return math.Ceil(float64(max(size, 1)) / float64(per)) }

func stringValue(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// itemSize is an item's size as DynamoDB bills it: each attribute's name in
// UTF-8 bytes plus its value (strings in UTF-8 bytes, numbers about one byte
// per two significant digits plus one, binary in bytes, booleans and nulls
// one byte, lists and maps three bytes plus their elements).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		digits := strings.Trim(strings.TrimLeft(strings.Replace(v.Value, ".", "", 1), "-0"), "0")
		return utf8.RuneCountInString(digits)/2 + 1 + utf8.RuneCountInString(digits)%2
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}
