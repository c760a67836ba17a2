package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// The log items are built by hand for speed; they must be exactly what the
// item structs (which read them back) marshal to.
func TestLogItemValuesMatchTheItemStructs(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 55, 3, 123456789, time.UTC)
	expires := at.Add(30 * 24 * time.Hour)
	attempt := LogItem{AccountID: "acc_1", DeliveryID: "dlv_1", Expires: expires, Attempt: &domain.Attempt{
		Number: 3, At: at, StatusCode: 503, LatencyMS: 1234, Error: "receiver answered 503", ResponseBody: `{"busy":true}`}}
	want, err := attributevalue.MarshalMap(attemptItem{PK: deliveryPK("acc_1", "dlv_1"), SK: attemptSK(3), Number: 3,
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
