// Package delivery turns response events into webhooks. It knows nothing of
// Lambda: the delivery function converts each SQS event into Messages and
// reports the ids Handle returns as batch item failures, so one failing
// message never fails its batch.
//
// Two queues feed it. A response event (intake) is validated, fanned out to
// the endpoints linked to its thermometer whose triggers match, and becomes
// one delivery record and one task message per endpoint. A task message makes
// one attempt at its delivery; a failed attempt hides the message for the
// next backoff and reports it as failed, so SQS brings it back when it is
// due: nothing sleeps. Each decision follows the failure's class:
//   - permanent (invalid event, endpoint deleted or disabled, 410 Gone):
//     record it and acknowledge the message;
//   - retryable (timeout, 5xx, 429, connection, refused target): record the
//     attempt and schedule the next one, or, after the last, mark the
//     delivery failed and let SQS move the message to the dead-letter queue;
//   - infrastructure (DynamoDB, SQS or KMS unavailable): report the message
//     as failed without recording anything, so it comes back and nothing is
//     lost.
//
// A crash between a POST and its bookkeeping repeats the POST with the same
// delivery id (at least once); receivers dedupe on X-Ct-Delivery-Id.
package delivery
