// Command samenv writes the environment of a deployed stack's functions to a
// file for `sam local invoke --env-vars` (`make sam-env STACK=name`).
//
// SAM CLI gives a function run on this machine the variables of
// template.yaml, but with a resource's logical id where the template refers
// to a resource: the tables are called "EndpointsTable", the source IP
// "NatEip", and the functions stop at start-up. The deployed functions hold
// the real values; this command copies them, keyed by logical id as
// --env-vars expects, so a local invocation uses the stack's tables, queues
// and KMS key. The file holds names and addresses, no secret.
//
// Requests go where the AWS SDK is pointed: AWS itself (set
// AWS_ENDPOINT_URL= to override the Makefile's local default) or an
// emulator.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

func main() {
	stack := flag.String("stack", os.Getenv("STACK"), "the deployed stack's name")
	out := flag.String("out", filepath.Join(".local", "sam-env.json"), "the file to write")
	flag.Parse()
	if err := run(*stack, *out); err != nil {
		fmt.Fprintln(os.Stderr, "sam-env:", err)
		os.Exit(1)
	}
}

func run(stack, out string) error {
	if stack == "" {
		return errors.New("name the deployed stack: make sam-env STACK=ct-webhooks-dev")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	env, err := functionEnv(ctx, cloudformation.NewFromConfig(cfg), lambda.NewFromConfig(cfg), stack)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Printf("%s: the environment of %d functions of %s\n", out, len(env), stack)
	return nil
}

// functionEnv is the environment of every Lambda function of stack, by the
// function's logical id.
func functionEnv(ctx context.Context, cfn *cloudformation.Client, lam *lambda.Client, stack string) (map[string]map[string]string, error) {
	env := map[string]map[string]string{}
	p := cloudformation.NewListStackResourcesPaginator(cfn, &cloudformation.ListStackResourcesInput{StackName: &stack})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("stack %s: %w", stack, err)
		}
		for _, r := range page.StackResourceSummaries {
			if r.ResourceType == nil || *r.ResourceType != "AWS::Lambda::Function" || r.PhysicalResourceId == nil {
				continue
			}
			conf, err := lam.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: r.PhysicalResourceId})
			if err != nil {
				return nil, fmt.Errorf("function %s: %w", *r.LogicalResourceId, err)
			}
			vars := map[string]string{}
			if conf.Environment != nil {
				vars = conf.Environment.Variables
			}
			env[*r.LogicalResourceId] = vars
		}
	}
	if len(env) == 0 {
		return nil, fmt.Errorf("stack %s has no functions", stack)
	}
	return env, nil
}
