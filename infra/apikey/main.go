// Command apikey creates an API key for an account (`make api-key ACCOUNT=x`)
// and prints it: exactly one line, the key. Only the key's SHA-256 hash is
// stored. The account is created if it does not exist.
//
// With -revoke it revokes the key it reads from standard input instead
// (`make revoke-api-key < file`): read there, the key stays out of the
// command line, the shell's history and the process list.
//
// The endpoints table is found, in order, from ENDPOINTS_TABLE, from the
// outputs of the CloudFormation stack named by STACK, or from the local
// stack's .local/outputs.json. Requests go where the AWS SDK is pointed:
// AWS_ENDPOINT_URL (the local emulator, by default in the Makefile) or AWS.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	revoke := flag.Bool("revoke", false, "revoke the key read from standard input instead of creating one")
	flag.Parse()
	var err error
	if *revoke {
		err = revokeKey(os.Stdin, *outputs)
	} else {
		err = run(*account, *outputs)
	}
	if err != nil {
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
	st, err := keyStore(ctx, outputsPath)
	if err != nil {
		return err
	}
	key := apikey.New()
	if err := st.CreateAPIKey(ctx, account, apikey.Hash(key), time.Now()); err != nil {
		return explain(err)
	}
	fmt.Println(key)
	return nil
}

// revokeKey revokes the key on the first line of in.
func revokeKey(in io.Reader, outputsPath string) error {
	line, err := bufio.NewReader(io.LimitReader(in, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	key := strings.TrimSpace(line)
	if !apikey.WellFormed(key) {
		return errors.New("standard input holds no API key (make revoke-api-key < file-holding-the-key)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := keyStore(ctx, outputsPath)
	if err != nil {
		return err
	}
	if err := st.RevokeAPIKey(ctx, apikey.Hash(key), time.Now()); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return errors.New("no such key in this stack")
		}
		return explain(err)
	}
	fmt.Println("revoked")
	return nil
}

// keyStore is the store over the stack's endpoints table.
func keyStore(ctx context.Context, outputsPath string) (*store.Store, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	table, err := endpointsTable(ctx, cloudformation.NewFromConfig(cfg), outputsPath)
	if err != nil {
		return nil, err
	}
	return store.New(dynamodb.NewFromConfig(cfg), table, ""), nil
}

// explain adds what to do to an error of the local stack not running.
func explain(err error) error {
	if ep := os.Getenv("AWS_ENDPOINT_URL"); ep != "" && errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("nothing answers at %s: start the local stack with `make local`, or set AWS_ENDPOINT_URL= for AWS", ep)
	}
	return err
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
