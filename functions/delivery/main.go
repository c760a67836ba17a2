// Command delivery is the Lambda function that consumes the response-events
// and delivery-tasks queues. It only wires configuration and clients to
// package delivery.
package main

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/awsconn"
	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		logger.Error("start-up failed: configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	cfg.WarnRaisedRetention(logger)
	if limit := config.MemoryLimit(os.LookupEnv); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		logger.Error("start-up failed: aws config", slog.String("error", err.Error()))
		os.Exit(1)
	}
	awsconn.Use(&awsCfg)
	h := &delivery.Handler{
		Store:            store.New(dynamodb.NewFromConfig(awsCfg), cfg.EndpointsTable, cfg.DeliveriesTable),
		Queue:            queue.New(sqs.NewFromConfig(awsCfg)),
		Secrets:          kms.New(awskms.NewFromConfig(awsCfg), cfg.KMSKeyID),
		Sender:           dispatch.New(dispatch.Options{LocalMode: cfg.LocalMode}),
		TasksQueueURL:    cfg.DeliveryTasksQueueURL,
		EventsDLQURL:     cfg.EventsDLQURL,
		EventsQueueURL:   cfg.EventsQueueURL,
		Schedule:         cfg.RetrySchedule,
		Jitter:           func(d time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(config.MaxJitter(d)) + 1)) },
		Retention:        cfg.LogRetention,
		PayloadRetention: cfg.PayloadRetention(),
		FanOutPage:       500,
		Concurrency:      32,
		MaxReceives:      cfg.DeliveryMaxReceives,
		Logger:           logger,
		Metrics:          os.Stdout,
		StackName:        cfg.StackName,
		Now:              time.Now,
	}
	lambda.Start(func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		return handleSQS(ctx, h, ev), nil
	})
}
