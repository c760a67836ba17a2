// Command apikey creates an API key for an account (`make api-key ACCOUNT=x`)
// and prints it: exactly one line, the key. Only the key's SHA-256 hash is
// stored. The account is created if it does not exist.
//
// The endpoints table is found, in order, from ENDPOINTS_TABLE, from the
// outputs of the CloudFormation stack named by STACK, or from the local
// stack's .local/outputs.json. Requests go where the AWS SDK is pointed:
// AWS_ENDPOINT_URL (the local emulator, by default in the Makefile) or AWS.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/customerthermometer/webhooks/shared/apikey"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/store"
)

func main() {
	account := flag.String("account", "", "account id (1-128 characters of A-Za-z0-9_.:-)")
	outputs := flag.String("outputs", ".local/outputs.json", "the local stack's outputs, used when neither ENDPOINTS_TABLE nor STACK is set")
	flag.Parse()
	if err := run(*account, *outputs); err != nil {
		fmt.Fprintln(os.Stderr, "api-key:", err)
		os.Exit(1)
	}
}

func run(account, outputsPath string) error {
	if !domain.ValidAccountID(account) {
		return errors.New("ACCOUNT must be 1-128 characters of A-Za-z0-9_.:- (make api-key ACCOUNT=acc_123)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	table, err := endpointsTable(ctx, cloudformation.NewFromConfig(cfg), outputsPath)
	if err != nil {
		return err
	}
	st := store.New(dynamodb.NewFromConfig(cfg), table, "")
	key := apikey.New()
	if err := st.CreateAPIKey(ctx, account, apikey.Hash(key), time.Now()); err != nil {
		if ep := os.Getenv("AWS_ENDPOINT_URL"); ep != "" && errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("nothing answers at %s: start the local stack with `make local`, or set AWS_ENDPOINT_URL= for AWS", ep)
		}
		return err
	}
	fmt.Println(key)
	return nil
}

func endpointsTable(ctx context.Context, cfn *cloudformation.Client, outputsPath string) (string, error) {
	if t := os.Getenv("ENDPOINTS_TABLE"); t != "" {
		return t, nil
	}
	if stack := os.Getenv("STACK"); stack != "" {
		out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &stack})
		if err != nil {
			return "", fmt.Errorf("stack %s: %w", stack, err)
		}
		for _, s := range out.Stacks {
			for _, o := range s.Outputs {
				if o.OutputKey != nil && *o.OutputKey == "EndpointsTableName" && o.OutputValue != nil {
					return *o.OutputValue, nil
				}
			}
		}
		return "", fmt.Errorf("stack %s has no EndpointsTableName output", stack)
	}
	b, err := os.ReadFile(outputsPath)
	if err != nil {
		return "", fmt.Errorf("%w: start the local stack with `make local`, or set STACK to a deployed stack's name", err)
	}
	var outputs map[string]string
	if err := json.Unmarshal(b, &outputs); err != nil || outputs["EndpointsTableName"] == "" {
		return "", fmt.Errorf("%s has no EndpointsTableName", outputsPath)
	}
	return outputs["EndpointsTableName"], nil
}
