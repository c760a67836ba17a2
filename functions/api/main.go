// Command api is the Lambda function behind API Gateway that serves the
// management API. It only wires configuration, clients and the handler.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/customerthermometer/webhooks/shared/api"
	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/store"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		logger.Error("start-up failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		logger.Error("start-up failed: aws config", slog.String("error", err.Error()))
		os.Exit(1)
	}
	st := store.New(dynamodb.NewFromConfig(awsCfg), cfg.EndpointsTable, cfg.DeliveriesTable)
	handler := api.New(api.Deps{Keys: st, Endpoints: st, SourceIPs: cfg.SourceIPs, Logger: logger})
	lambda.Start(gatewayHandler(handler))
}
