package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// stackInfo is what provision.py writes about the deployed stack.
type stackInfo struct {
	StackName string
	Outputs   map[string]string
	Functions map[string]struct {
		FunctionName string
		Timeout      int
		MemorySize   int
		Environment  map[string]string
	}
	EventSourceMappings []struct {
		Function                       string
		EventSourceArn                 string
		BatchSize                      int
		MaximumBatchingWindowInSeconds int
		FunctionResponseTypes          []string
		MaximumConcurrency             int
		// VisibilityTimeout is what the template declares for the queue,
		// in seconds (0: unknown).
		VisibilityTimeout int
	}
	HttpApiRoutes []struct {
		Function string
		Method   string
		Path     string
	}
}

// provision deploys template.yaml to the emulator with provision.py and reads
// back what it wrote.
func provision(ctx context.Context, o options, env []string) (stackInfo, error) {
	out := filepath.Join(o.stateDir, "stack.json")
	cmd := exec.CommandContext(ctx, o.python, o.provisionScript,
		"--template", o.template, "--stack", o.stack, "--code-dir", o.codeDir, "--out", out)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = o.log, o.log
	if err := cmd.Run(); err != nil {
		return stackInfo{}, fmt.Errorf("deploy %s to the emulator: %w", o.template, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return stackInfo{}, err
	}
	var st stackInfo
	if err := json.Unmarshal(b, &st); err != nil {
		return stackInfo{}, fmt.Errorf("%s: %w", out, err)
	}
	return st, nil
}
