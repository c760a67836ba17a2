package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// maxVisibility is the longest visibility timeout SQS accepts.
const maxVisibility = 12 * time.Hour

// checkVisibility validates a -visibility-timeout value: 0 (the template's
// value) or whole seconds up to twelve hours.
func checkVisibility(d time.Duration) error {
	if d == 0 {
		return nil
	}
	if d < time.Second || d > maxVisibility || d%time.Second != 0 {
		return fmt.Errorf("-visibility-timeout %s: want whole seconds from 1s to 12h", d)
	}
	return nil
}

// setVisibility gives the queue at url the visibility timeout the template
// declares for it, or override when that is set, and returns the timeout it
// has now. The template's value is set back on every start, so a stack that
// an earlier run shortened is not left that way. A declared value of 0
// (unknown) with no override leaves the queue as it is.
func setVisibility(ctx context.Context, client *sqs.Client, url string, declared, override time.Duration) (time.Duration, error) {
	want := declared
	if override > 0 {
		want = override
	}
	attr := string(types.QueueAttributeNameVisibilityTimeout)
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
	if err != nil {
		return 0, fmt.Errorf("visibility timeout of %s: %w", url, err)
	}
	secs, err := strconv.Atoi(out.Attributes[attr])
	if err != nil {
		return 0, fmt.Errorf("visibility timeout of %s: %q", url, out.Attributes[attr])
	}
	has := time.Duration(secs) * time.Second
	if want <= 0 || has == want {
		return has, nil
	}
	_, err = client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{
		attr: strconv.Itoa(int(want / time.Second)),
	}})
	if err != nil {
		return has, fmt.Errorf("set the visibility timeout of %s: %w", url, err)
	}
	return want, nil
}
