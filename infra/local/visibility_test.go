package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/customerthermometer/webhooks/shared/awstest"
)

func TestCheckVisibility(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 30 * time.Second, 12 * time.Hour} {
		if err := checkVisibility(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	for _, d := range []time.Duration{-time.Second, 500 * time.Millisecond, 1500 * time.Millisecond, 12*time.Hour + time.Second} {
		if err := checkVisibility(d); err == nil {
			t.Errorf("%s accepted", d)
		}
	}
}

// TestSetVisibility: -visibility-timeout shortens a queue's visibility
// timeout, and the next start without it sets the template's value back.
func TestSetVisibility(t *testing.T) {
	client := sqs.NewFromConfig(awstest.Config(t))
	ctx := context.Background()
	name := fmt.Sprintf("visibility-test-%d", time.Now().UnixNano())
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"VisibilityTimeout": "360"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	current := func() string {
		t.Helper()
		out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes["VisibilityTimeout"]
	}
	for _, step := range []struct {
		declared, override, want time.Duration
	}{
		{360 * time.Second, 30 * time.Second, 30 * time.Second},
		{0, 0, 30 * time.Second}, // declared value unknown: left alone
		{360 * time.Second, 0, 360 * time.Second},
		{0, 45 * time.Second, 45 * time.Second},
	} {
		got, err := setVisibility(ctx, client, *q.QueueUrl, step.declared, step.override)
		if err != nil {
			t.Fatal(err)
		}
		if got != step.want || current() != fmt.Sprint(int(step.want/time.Second)) {
			t.Errorf("declared %s, override %s: got %s, queue has %ss; want %s", step.declared, step.override, got, current(), step.want)
		}
	}
}

// TestStackReportsVisibility: provision.py reports each event source's
// visibility timeout as the template declares it (what ctlocal sets back).
func TestStackReportsVisibility(t *testing.T) {
	st := awstest.LoadStack(t)
	if len(st.EventSourceMappings) == 0 {
		t.Fatal("no event-source mappings in the test stack")
	}
	for _, m := range st.EventSourceMappings {
		fn := st.Functions[m.Function]
		if m.VisibilityTimeout < 6*fn.Timeout {
			t.Errorf("%s: visibility timeout %d s, want at least 6 × the function timeout %d s", m.EventSourceArn, m.VisibilityTimeout, fn.Timeout)
		}
	}
}
