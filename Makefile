# Customer Thermometer webhooks. `make help` lists the targets.

SHELL := /bin/bash
GO ?= go
PYTHON ?= python3
LOCAL := .local
BIN := $(LOCAL)/bin
STACK ?=
export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
# The local emulator takes any credentials and region; real AWS gets the
# caller's own (AWS_ENDPOINT_URL= on the command line), profile region
# included.
ifneq ($(findstring 127.0.0.1,$(AWS_ENDPOINT_URL))$(findstring localhost,$(AWS_ENDPOINT_URL)),)
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
endif

# Production bootstraps, as SAM builds them (BuildMethod: makefile).
LAMBDA_BUILD := CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w -buildid='
# Local bootstraps run on this machine's own OS and architecture.
LOCAL_BUILD := CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath

.DEFAULT_GOAL := help
.PHONY: bench bench-run chaos chaos-short fuzz help local test api-key revoke-api-key sam-env build build-local build-ApiFunction build-DeliveryFunction lint template-check test-go clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

local: build-local ## run the whole service on this machine (API on http://127.0.0.1:3000); Ctrl-C stops it
	$(BIN)/ctlocal

test: build-local lint template-check ## all tests: lint, template checks, receiver examples, unit, emulator-backed, end-to-end and the short fault battery
	bash docs/examples/run.sh
	$(BIN)/ctlocal with-emulator -- $(MAKE) --no-print-directory test-go
	$(BIN)/ctlocal with-emulator -- $(BIN)/chaos $(CHAOS_SHORT)

test-go: ## the Go tests alone (needs the emulator running: `make test` provides it)
	@# the Go tests against a fresh test stack (run by `make test`, which provides the emulator)
	$(PYTHON) infra/local/provision.py \
		--stack ct-webhooks-test --code-dir $(LOCAL)/build --out $(LOCAL)/test/stack.json
	WEBHOOKS_BIN=$(abspath $(BIN)) WEBHOOKS_CODE=$(abspath $(LOCAL)/build) \
		$(GO) test -count=1 -timeout 20m ./...

api-key: $(BIN)/apikey ## print a new API key for ACCOUNT (make api-key ACCOUNT=acc_123 [STACK=deployed-stack-name])
	@STACK=$(STACK) $(BIN)/apikey -account '$(ACCOUNT)'

revoke-api-key: $(BIN)/apikey ## revoke the API key read from standard input (make revoke-api-key < file [STACK=deployed-stack-name])
	@STACK=$(STACK) $(BIN)/apikey -revoke

sam-env: ## write .local/sam-env.json, a deployed stack's function environment for `sam local invoke --env-vars` (make sam-env STACK=name AWS_ENDPOINT_URL=)
	@STACK=$(STACK) $(GO) run ./infra/samenv

lint: ## gofmt, go vet, cfn-lint, the OpenAPI document, and no build output among the tracked files
	@big=$$(git ls-files -z 2>/dev/null | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1048576 {print $$2}'); \
		if [ -n "$$big" ]; then echo "tracked files over 1 MiB (build output?): $$big"; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	cfn-lint template.yaml
	openapi-spec-validator shared/api/openapi.json

template-check: ## expand template.yaml with samtranslator, as `sam deploy` would
	$(PYTHON) infra/local/provision.py --translate-only --out $(LOCAL)/template.cfn.json

build: build-ApiFunction build-DeliveryFunction ## the arm64 Lambda bootstraps in bin/<Function>/bootstrap, as sam build makes them

build-ApiFunction: ## (SAM) the API function's bootstrap into $(ARTIFACTS_DIR)
	$(LAMBDA_BUILD) -o $(or $(ARTIFACTS_DIR),bin/ApiFunction)/bootstrap ./functions/api

build-DeliveryFunction: ## (SAM) the delivery function's bootstrap into $(ARTIFACTS_DIR)
	$(LAMBDA_BUILD) -o $(or $(ARTIFACTS_DIR),bin/DeliveryFunction)/bootstrap ./functions/delivery

build-local: ## bootstraps for this machine, the runtime emulator and the local tools, in .local/
	$(LOCAL_BUILD) -o $(LOCAL)/build/ApiFunction/bootstrap ./functions/api
	$(LOCAL_BUILD) -o $(LOCAL)/build/DeliveryFunction/bootstrap ./functions/delivery
	$(GO) build -o $(BIN)/aws-lambda-rie github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
	$(GO) build -o $(BIN)/ctlocal ./infra/local
	$(GO) build -o $(BIN)/apikey ./infra/apikey
	$(GO) build -o $(BIN)/chaos ./infra/chaos
	$(GO) build -o $(BIN)/samenv ./infra/samenv

$(BIN)/apikey: $(shell find infra/apikey shared -name '*.go' 2>/dev/null) go.mod
	@# silent: `make api-key` prints exactly one line, the key
	@$(GO) build -o $@ ./infra/apikey

bench: build-local ## print throughput ratio, AWS requests and cost per delivery, start-up and memory (BENCH= picks parts)
	$(BIN)/ctlocal with-emulator -- $(MAKE) --no-print-directory bench-run

bench-run: ## the benchmarks alone (needs the emulator running: `make bench` provides it)
	$(PYTHON) infra/local/provision.py --stack ct-webhooks-bench --code-dir $(LOCAL)/build --out $(LOCAL)/bench/stack.json
	WEBHOOKS_BENCH_STACK=$(LOCAL)/bench/stack.json $(GO) run ./infra/bench -run $(BENCH)

CHAOS_EVENTS ?= 2000
CHAOS_KILLS ?= 6
# Share of the functions' AWS requests that fail, and how many times all of
# them fail for 4 s.
CHAOS_AWS_FAULTS ?= 0.03
CHAOS_OUTAGES ?= 3
# Empty: the queues keep the template's visibility timeout (6 minutes, as on AWS).
CHAOS_VISIBILITY ?=
chaos: build-local ## the fault battery: CHAOS_EVENTS events (2000), misbehaving receivers, CHAOS_KILLS kills (6) of the delivery process, CHAOS_AWS_FAULTS of the AWS requests failing (0.03) and CHAOS_OUTAGES outages (3); CHAOS_VISIBILITY=30s shortens the wait for killed batches
	$(BIN)/ctlocal with-emulator -- $(BIN)/chaos -events $(CHAOS_EVENTS) -kills $(CHAOS_KILLS) -aws-faults $(CHAOS_AWS_FAULTS) -aws-outages $(CHAOS_OUTAGES) $(if $(CHAOS_VISIBILITY),-visibility-timeout $(CHAOS_VISIBILITY))

# The short form make test runs: every receiver kind, two kills, AWS faults
# with one outage, and a visibility timeout of 30 s so that killed batches
# come back within the run.
CHAOS_SHORT := -stack ct-webhooks-chaos-short -events 48 -kills 2 -aws-faults 0.03 -aws-outages 1 -instances 4 -visibility-timeout 30s
chaos-short: build-local ## the fault battery's short form, as make test runs it: 48 events, 2 kills, 3 % of AWS requests failing and one outage, 30 s visibility timeout
	$(BIN)/ctlocal with-emulator -- $(BIN)/chaos $(CHAOS_SHORT)

BENCH ?= throughput,requests,startup,latency
FUZZTIME ?= 2m
fuzz: ## run each fuzz target for FUZZTIME (default 2m); crashers land in testdata/fuzz as seeds
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./shared/event
	$(GO) test -run '^$$' -fuzz '^FuzzCheckURL$$' -fuzztime $(FUZZTIME) ./shared/target
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEndpoint$$' -fuzztime $(FUZZTIME) ./shared/api

clean: ## remove build output and local state
	rm -rf $(LOCAL) bin .aws-sam
