// Package delivery consumes batches of response-event messages. It knows
// nothing of Lambda or SQS: the delivery function converts the SQS event into
// Messages and reports the ids Handle returns as batch item failures, so one
// failing message never fails its batch.
package delivery
