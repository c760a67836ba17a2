// Command api is the Lambda function behind API Gateway that serves the
// management API. It only wires configuration, clients and the handler.
package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/customerthermometer/webhooks/shared/api"
	"github.com/customerthermometer/webhooks/shared/awsconn"
	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/cursor"
	"github.com/customerthermometer/webhooks/shared/delivery"
	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/kms"
	"github.com/customerthermometer/webhooks/shared/queue"
	"github.com/customerthermometer/webhooks/shared/store"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	fail := func(msg string, err error) {
		logger.Error("start-up failed: "+msg, slog.String("error", err.Error()))
		os.Exit(1)
	}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fail("configuration", err)
	}
	cfg.WarnRaisedRetention(logger)
	if limit := config.MemoryLimit(os.LookupEnv); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		fail("aws config", err)
	}
	awsconn.Use(&awsCfg)
	st := store.New(dynamodb.NewFromConfig(awsCfg), cfg.EndpointsTable, cfg.DeliveriesTable)
	sealer := kms.New(awskms.NewFromConfig(awsCfg), cfg.KMSKeyID)
	cursorKey, err := st.ServiceKey(ctx, "cursor", sealer)
	if err != nil {
		fail("cursor key", err)
	}
	cursors, err := cursor.New(cursorKey)
	if err != nil {
		fail("cursor key", err)
	}
	handler := api.New(api.Deps{
		Keys: st, Endpoints: st, Secrets: sealer, Cursors: cursors, Deliveries: st,
		Tasks:   &delivery.Enqueuer{Queue: queue.New(sqs.NewFromConfig(awsCfg)), QueueURL: cfg.DeliveryTasksQueueURL},
		Sender:  dispatch.New(dispatch.Options{LocalMode: cfg.LocalMode}),
		Counter: st, RateLimitPerMinute: cfg.RateLimitPerMinute, SendsPerMinute: cfg.SendsPerMinute,
		SourceIPs: cfg.SourceIPs, LocalMode: cfg.LocalMode, Retention: cfg.LogRetention, PayloadRetention: cfg.PayloadRetention(), Logger: logger,
	})
	lambda.Start(gatewayHandler(handler))
}
