package store

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// The log items are built by hand for speed; they must be exactly what the
// item structs (which read them back) marshal to.
func TestLogItemValuesMatchTheItemStructs(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 55, 3, 123456789, time.UTC)
	expires := at.Add(30 * 24 * time.Hour)
	attempt := LogItem{AccountID: "acc_1", DeliveryID: "dlv_1", Expires: expires, Request: "0a1b2c3d4e5f", Attempt: &domain.Attempt{
		Number: 3, At: at, StatusCode: 503, LatencyMS: 1234, Error: "receiver answered 503", ResponseBody: `{"busy":true}`}}
	want, err := attributevalue.MarshalMap(attemptItem{PK: deliveryPK("acc_1", "dlv_1"), SK: "ATTEMPT#000003#0a1b2c3d4e5f", Number: 3,
		At: at.Format(time.RFC3339Nano), StatusCode: 503, LatencyMS: 1234, Error: "receiver answered 503",
		ResponseBody: `{"busy":true}`, ExpiresAt: expires.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if got := logItemValues(attempt); !reflect.DeepEqual(got, want) {
		t.Errorf("attempt item\n got %#v\nwant %#v", got, want)
	}
	var back attemptItem
	if err := attributevalue.UnmarshalMap(logItemValues(attempt), &back); err != nil || back.Number != 3 || back.ResponseBody != `{"busy":true}` {
		t.Errorf("attempt item reads back as %+v (%v)", back, err)
	}

	body := LogItem{AccountID: "acc_1", DeliveryID: "dlv_1", Expires: expires, Payload: []byte(`{"id":"dlv_1"}`)}
	want, err = attributevalue.MarshalMap(payloadItem{PK: deliveryPK("acc_1", "dlv_1"), SK: payloadSK, Body: `{"id":"dlv_1"}`, ExpiresAt: expires.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if got := logItemValues(body); !reflect.DeepEqual(got, want) {
		t.Errorf("payload item\n got %#v\nwant %#v", got, want)
	}
}

// TestPutLogItemsNamesEachKeyOnce: DynamoDB refuses a BatchWriteItem that
// names one key twice, so two items for the same attempt (two workers made
// it) must not reach one request.
func TestPutLogItemsNamesEachKeyOnce(t *testing.T) {
	var keys []string
	ddb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			RequestItems map[string][]struct {
				PutRequest struct {
					Item map[string]map[string]string
				}
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			t.Error(err)
		}
		for _, reqs := range in.RequestItems {
			for _, req := range reqs {
				keys = append(keys, req.PutRequest.Item["pk"]["S"]+" "+req.PutRequest.Item["sk"]["S"])
			}
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer ddb.Close()
	st := New(dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(ddb.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}), "endpoints", "deliveries")
	at := time.Now()
	attempt := func(delivery string, n, status int) LogItem {
		return LogItem{AccountID: "acc_1", DeliveryID: delivery, Expires: at, Attempt: &domain.Attempt{Number: n, At: at, StatusCode: status}}
	}
	// Two requests of one attempt with their keys are two records.
	sent := func(delivery string, n, status int, request string) LogItem {
		li := attempt(delivery, n, status)
		li.Request = request
		return li
	}
	err := st.PutLogItems(context.Background(), []LogItem{attempt("dlv_1", 1, 500), attempt("dlv_2", 1, 200), attempt("dlv_1", 1, 503), attempt("dlv_1", 2, 200),
		sent("dlv_3", 1, 500, "aaaaaaaaaaaa"), sent("dlv_3", 1, 503, "bbbbbbbbbbbb"), sent("dlv_3", 1, 503, "bbbbbbbbbbbb")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DELIVERY#acc_1#dlv_1 ATTEMPT#000001", "DELIVERY#acc_1#dlv_2 ATTEMPT#000001", "DELIVERY#acc_1#dlv_1 ATTEMPT#000002",
		"DELIVERY#acc_1#dlv_3 ATTEMPT#000001#aaaaaaaaaaaa", "DELIVERY#acc_1#dlv_3 ATTEMPT#000001#bbbbbbbbbbbb"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("written keys %q, want %q", keys, want)
	}
}
