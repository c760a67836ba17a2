// Command delivery is the Lambda function that consumes the response-events
// queue. It only wires configuration and clients to package delivery.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/delivery"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if _, err := config.Load(os.LookupEnv); err != nil {
		logger.Error("start-up failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
	consumer := &delivery.Consumer{Logger: logger}
	lambda.Start(func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		return handleSQS(ctx, consumer, ev), nil
	})
}
