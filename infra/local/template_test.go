package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/customerthermometer/webhooks/shared/awstest"
	"github.com/customerthermometer/webhooks/shared/config"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/metrics"
)

// TestTemplateInvariants checks, on the CloudFormation that samtranslator
// makes of template.yaml, the properties the service depends on.
func TestTemplateInvariants(t *testing.T) {
	root := awstest.RepoRoot(t)
	out := filepath.Join(t.TempDir(), "cfn.json")
	cmd := exec.Command("python3", filepath.Join(root, "infra", "local", "provision.py"),
		"--template", filepath.Join(root, "template.yaml"), "--translate-only", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("translate: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Parameters map[string]map[string]any
		Rules      map[string]struct {
			Assertions []struct {
				Assert            any
				AssertDescription string
			}
		}
		Resources map[string]struct {
			Type           string
			Condition      string
			DeletionPolicy string
			Properties     map[string]any
		}
		Outputs map[string]any
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	res := func(id string) map[string]any {
		r, ok := tpl.Resources[id]
		if !ok {
			t.Fatalf("no resource %s", id)
		}
		return r.Properties
	}

	var deliveryTimeout float64
	for _, fn := range []string{"ApiFunction", "DeliveryFunction"} {
		p := res(fn)
		if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || p["Architectures"].([]any)[0] != "arm64" {
			t.Errorf("%s: runtime %v handler %v architectures %v", fn, p["Runtime"], p["Handler"], p["Architectures"])
		}
		vpc, _ := p["VpcConfig"].(map[string]any)
		if subnets, _ := vpc["SubnetIds"].([]any); len(subnets) != 2 {
			t.Errorf("%s must run in the two private subnets (static egress IP): %v", fn, vpc)
		}
		env := p["Environment"].(map[string]any)["Variables"].(map[string]any)
		if env["LOCAL_MODE"] != "false" {
			t.Errorf("%s: LOCAL_MODE = %v; the template must keep production values", fn, env["LOCAL_MODE"])
		}
		if fn == "DeliveryFunction" {
			deliveryTimeout = p["Timeout"].(float64)
			// The function must know the tasks queue's maxReceiveCount to
			// move a delivery to a fresh message before SQS gives up on it.
			redrive, _ := res("DeliveryTasksQueue")["RedrivePolicy"].(map[string]any)
			limit, _ := redrive["maxReceiveCount"].(map[string]any)
			if param, _ := limit["Ref"].(string); param == "" || fmt.Sprint(env["DELIVERY_MAX_RECEIVE_COUNT"]) != fmt.Sprint(map[string]any{"Fn::Sub": "${" + param + "}"}) {
				t.Errorf("DELIVERY_MAX_RECEIVE_COUNT = %v, want the tasks queue's maxReceiveCount %v", env["DELIVERY_MAX_RECEIVE_COUNT"], redrive["maxReceiveCount"])
			}
			// A delivery moves to a fresh message before its message is
			// three days old; SQS must keep messages longer than that.
			if r, _ := res("DeliveryTasksQueue")["MessageRetentionPeriod"].(float64); r < 4*24*3600 {
				t.Errorf("tasks queue keeps messages %v s, want at least 4 days", r)
			}
		}
	}

	q := res("ResponseEventsQueue")
	if vt := q["VisibilityTimeout"].(float64); vt < 6*deliveryTimeout {
		t.Errorf("queue visibility timeout %v < 6 × delivery timeout %v", vt, deliveryTimeout)
	}
	if q["RedrivePolicy"] == nil || q["SqsManagedSseEnabled"] != true {
		t.Errorf("queue needs a redrive policy and encryption: %v", q)
	}

	for id, r := range tpl.Resources {
		if r.Type == "AWS::Lambda::EventSourceMapping" && r.Properties["Enabled"] == false {
			t.Errorf("%s is disabled in what sam deploy submits", id)
		}
	}
	esm := res("DeliveryFunctionResponseEvents")
	if types, _ := esm["FunctionResponseTypes"].([]any); len(types) != 1 || types[0] != "ReportBatchItemFailures" {
		t.Errorf("event source mapping must report batch item failures: %v", esm)
	}

	for _, table := range []string{"EndpointsTable", "DeliveriesTable"} {
		p := res(table)
		pitr, _ := p["PointInTimeRecoverySpecification"].(map[string]any)
		sse, _ := p["SSESpecification"].(map[string]any)
		if p["BillingMode"] != "PAY_PER_REQUEST" || pitr["PointInTimeRecoveryEnabled"] != true || sse["SSEEnabled"] != true {
			t.Errorf("%s: on-demand, PITR and SSE required: %v", table, p)
		}
	}
	if ttl, _ := res("DeliveriesTable")["TimeToLiveSpecification"].(map[string]any); ttl["Enabled"] != true {
		t.Errorf("delivery log needs TTL: %v", ttl)
	}

	// The delivery log's indexes hold keys only (by_status also the
	// endpoint id, which never changes): a settle that rewrites a summary then
	// costs an index nothing unless it moves the summary's status.
	projections := map[string]map[string]any{}
	gsis, _ := res("DeliveriesTable")["GlobalSecondaryIndexes"].([]any)
	for _, g := range gsis {
		g := g.(map[string]any)
		projections[g["IndexName"].(string)], _ = g["Projection"].(map[string]any)
	}
	if len(projections) != 3 {
		t.Errorf("delivery log indexes %v, want by_account, by_endpoint and by_status", projections)
	}
	for _, index := range []string{"by_account", "by_endpoint"} {
		if p := projections[index]; p == nil || p["ProjectionType"] != "KEYS_ONLY" {
			t.Errorf("index %s projects %v, want KEYS_ONLY", index, p)
		}
	}
	if p := projections["by_status"]; p == nil || p["ProjectionType"] != "INCLUDE" || fmt.Sprint(p["NonKeyAttributes"]) != "[endpoint_id]" {
		t.Errorf("index by_status projects %v, want INCLUDE of endpoint_id only", p)
	}

	// Each function may do on each table what shared/store does for it,
	// and nothing more: no index of the endpoints table (it has none), no
	// deletes from the delivery log by the API (which reads the summaries
	// of a listing by key, BatchGetItem, and records a test fire, PutItem
	// and BatchWriteItem), no listing of the delivery log by the delivery
	// function.
	endpoints, deliveries, deliveryIndexes := "EndpointsTable", "DeliveriesTable", "${DeliveriesTable.Arn}/index/*"
	for role, want := range map[string]map[string]string{
		"ApiFunctionRole": {
			endpoints:       "dynamodb:DeleteItem dynamodb:GetItem dynamodb:PutItem dynamodb:Query dynamodb:UpdateItem",
			deliveries:      "dynamodb:BatchGetItem dynamodb:BatchWriteItem dynamodb:GetItem dynamodb:PutItem dynamodb:Query dynamodb:UpdateItem",
			deliveryIndexes: "dynamodb:Query",
		},
		"DeliveryFunctionRole": {
			endpoints:  "dynamodb:DeleteItem dynamodb:GetItem dynamodb:PutItem dynamodb:Query",
			deliveries: "dynamodb:BatchWriteItem dynamodb:GetItem dynamodb:PutItem dynamodb:UpdateItem",
		},
	} {
		got := dynamoGrants(res(role))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s may do on DynamoDB\n  %v\nwant\n  %v", role, got, want)
		}
	}

	// No role may touch SQS queues or anything else beyond the stack's own:
	// the managed policies are only those for logs and the VPC's network
	// interfaces (SAM would add AWSLambdaSQSQueueExecutionRole, on every
	// queue of the account, to a role it makes for a function with SQS
	// events), and no inline statement grants on "*".
	for _, role := range []string{"ApiFunctionRole", "DeliveryFunctionRole"} {
		for _, arn := range asList(res(role)["ManagedPolicyArns"]) {
			name := fmt.Sprint(arn)
			if m, ok := arn.(map[string]any); ok {
				name = fmt.Sprint(m["Fn::Sub"])
			}
			if !strings.HasSuffix(name, "/AWSLambdaBasicExecutionRole") && !strings.HasSuffix(name, "/AWSLambdaVPCAccessExecutionRole") {
				t.Errorf("%s has managed policy %s", role, name)
			}
		}
		policies, _ := res(role)["Policies"].([]any)
		for _, p := range policies {
			doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
			statements, _ := doc["Statement"].([]any)
			for _, st := range statements {
				for _, r := range asList(st.(map[string]any)["Resource"]) {
					if r == "*" {
						t.Errorf("%s grants %v on every resource", role, st.(map[string]any)["Action"])
					}
				}
			}
		}
	}
	if got := fmt.Sprint(sqsGrants(res("DeliveryFunctionRole"))); got != "map[DeliveryTasksQueue:sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage sqs:SendMessage "+
		"ResponseEventsDeadLetterQueue:sqs:SendMessage ResponseEventsQueue:sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage]" {
		t.Errorf("DeliveryFunctionRole may do on SQS %s", got)
	}

	// The delivery function may decrypt what it needs to sign and
	// authenticate webhooks, and nothing else sealed with the same key.
	purposes := map[string]bool{}
	policies, _ := res("DeliveryFunctionRole")["Policies"].([]any)
	for _, p := range policies {
		doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
		statements, _ := doc["Statement"].([]any)
		for _, st := range statements {
			st, _ := st.(map[string]any)
			if !slices.ContainsFunc(asList(st["Action"]), func(a any) bool { return strings.HasPrefix(fmt.Sprint(a), "kms:") }) {
				continue
			}
			cond, _ := st["Condition"].(map[string]any)
			eq, _ := cond["StringEquals"].(map[string]any)
			var allowed []any
			if v, ok := eq["kms:EncryptionContext:purpose"]; ok {
				allowed = asList(v)
			}
			if len(allowed) == 0 {
				t.Errorf("DeliveryFunctionRole may use the KMS key for any purpose: %v", st)
			}
			for _, a := range allowed {
				purposes[fmt.Sprint(a)] = true
			}
		}
	}
	if want := map[string]bool{domain.PurposeSecret: true, domain.PurposePassword: true}; !maps.Equal(purposes, want) {
		t.Errorf("DeliveryFunctionRole may decrypt for purposes %v, want %v", purposes, want)
	}

	// Each function logs to a group of the stack that expires its lines.
	for _, fn := range []string{"ApiFunction", "DeliveryFunction"} {
		logging, _ := res(fn)["LoggingConfig"].(map[string]any)
		group, _ := logging["LogGroup"].(map[string]any)
		name, _ := group["Ref"].(string)
		if r, ok := tpl.Resources[name]; !ok || r.Type != "AWS::Logs::LogGroup" || r.Properties["RetentionInDays"] == nil || logging["LogFormat"] != "JSON" {
			t.Errorf("%s logs to %v, want a JSON-format log group of the stack with a retention", fn, logging)
		}
	}

	checkParameters(t, tpl.Parameters)

	// ExistingEipAllocationId and ExistingEipPublicIp: both or neither,
	// or the functions would start without a source IP.
	if len(tpl.Rules) == 0 {
		t.Error("no rules: ExistingEipAllocationId may be set without ExistingEipPublicIp")
	}
	for _, alloc := range []string{"", "eipalloc-0123abcd"} {
		for _, ip := range []string{"", "198.51.100.7"} {
			params := map[string]any{"ExistingEipAllocationId": alloc, "ExistingEipPublicIp": ip}
			passes := true
			for _, rule := range tpl.Rules {
				for _, a := range rule.Assertions {
					if ok, _ := evalRule(t, a.Assert, params).(bool); !ok {
						passes = false
					}
				}
			}
			if want := (alloc == "") == (ip == ""); passes != want {
				t.Errorf("rules with allocation %q and address %q: pass %v, want %v", alloc, ip, passes, want)
			}
		}
	}

	if eip := tpl.Resources["NatEip"]; eip.DeletionPolicy != "Retain" || eip.Condition != "CreateEip" {
		t.Errorf("the EIP must be conditional and retained: %+v", eip)
	}
	if ep := res("DynamoDbGatewayEndpoint"); ep["VpcEndpointType"] != "Gateway" {
		t.Errorf("DynamoDB endpoint must be a gateway endpoint: %v", ep)
	}
	found := map[string]bool{}
	for _, r := range tpl.Resources {
		found[r.Type] = true
	}
	for _, typ := range []string{"AWS::EC2::NatGateway", "AWS::KMS::Key", "AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Dashboard", "AWS::CloudWatch::Alarm"} {
		if !found[typ] {
			t.Errorf("no %s in the stack", typ)
		}
	}
	// The alarms watch what the function writes, and what calls an
	// operator: the tasks dead-letter queue holds finally failed deliveries
	// by design, so its depth alone must not.
	var dashboard string
	for id, r := range tpl.Resources {
		switch r.Type {
		case "AWS::CloudWatch::Dashboard":
			body, _ := json.Marshal(r.Properties["DashboardBody"])
			dashboard += string(body)
		case "AWS::CloudWatch::Alarm":
			stats := []map[string]any{r.Properties}
			if ms, _ := r.Properties["Metrics"].([]any); len(ms) > 0 {
				stats = nil
				for _, m := range ms {
					if st, _ := m.(map[string]any)["MetricStat"].(map[string]any); st != nil {
						stats = append(stats, st["Metric"].(map[string]any))
					}
				}
			}
			for _, st := range stats {
				name, _ := st["MetricName"].(string)
				if st["Namespace"] == metrics.Namespace && !slices.Contains(metrics.Names(), name) {
					t.Errorf("%s watches %s, which the service never writes", id, name)
				}
				dims, _ := json.Marshal(st["Dimensions"])
				if strings.Contains(string(dims), "DeliveryTasksDeadLetterQueue") {
					t.Errorf("%s watches the tasks dead-letter queue, where finally failed deliveries wait by design", id)
				}
			}
			if r.Properties["AlarmActions"] == nil {
				t.Errorf("%s notifies no one", id)
			}
			// Named as the operating guide names it, not with a random suffix.
			if name, _ := r.Properties["AlarmName"].(map[string]any); fmt.Sprint(name["Fn::Sub"]) != "${AWS::StackName}-"+id {
				t.Errorf("%s is named %v", id, r.Properties["AlarmName"])
			}
		}
	}
	for _, name := range metrics.Names() {
		if !strings.Contains(dashboard, `\"`+name+`\"`) {
			t.Errorf("metric %s is not on the dashboard", name)
		}
	}
	if r := tpl.Resources["StrandedDeliveriesAlarm"]; r.Properties["MetricName"] != metrics.StrandedTasks {
		t.Errorf("no alarm on stranded delivery tasks: %v", r.Properties)
	}

	for _, o := range []string{"ApiUrl", "ResponseEventsQueueUrl", "WebhookSourceIp", "EndpointsTableName", "DeliveriesTableName"} {
		if tpl.Outputs[o] == nil {
			t.Errorf("missing output %s", o)
		}
	}
}

// dynamoGrants lists, for each resource of role's inline policies, the
// DynamoDB actions allowed on it (sorted, space-separated). A resource is
// named by its table's logical id, or by its Fn::Sub string.
func dynamoGrants(role map[string]any) map[string]string { return grants(role, "dynamodb:") }

func sqsGrants(role map[string]any) map[string]string { return grants(role, "sqs:") }

// grants lists what role's inline policies allow of the actions starting
// with prefix, by resource.
func grants(role map[string]any, prefix string) map[string]string {
	sets := map[string]map[string]bool{}
	policies, _ := role["Policies"].([]any)
	for _, p := range policies {
		doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
		statements, _ := doc["Statement"].([]any)
		for _, st := range statements {
			st, _ := st.(map[string]any)
			if st["Effect"] != "Allow" {
				continue
			}
			for _, r := range asList(st["Resource"]) {
				name := fmt.Sprint(r)
				if m, ok := r.(map[string]any); ok {
					if att, ok := m["Fn::GetAtt"].([]any); ok && len(att) == 2 && att[1] == "Arn" {
						name = fmt.Sprint(att[0])
					} else if sub, ok := m["Fn::Sub"].(string); ok {
						name = sub
					}
				}
				for _, a := range asList(st["Action"]) {
					if a, _ := a.(string); strings.HasPrefix(a, prefix) {
						if sets[name] == nil {
							sets[name] = map[string]bool{}
						}
						sets[name][a] = true
					}
				}
			}
		}
	}
	out := map[string]string{}
	for name, set := range sets {
		actions := make([]string, 0, len(set))
		for a := range set {
			actions = append(actions, a)
		}
		sort.Strings(actions)
		out[name] = strings.Join(actions, " ")
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// evalRule evaluates a CloudFormation rule condition (Ref, Fn::Equals,
// Fn::And, Fn::Or, Fn::Not) with params as the parameter values.
func evalRule(t *testing.T, node any, params map[string]any) any {
	t.Helper()
	m, ok := node.(map[string]any)
	if !ok {
		return node
	}
	if len(m) != 1 {
		t.Fatalf("rule condition %v", node)
	}
	for fn, arg := range m {
		args := asList(arg)
		switch fn {
		case "Ref":
			v, ok := params[fmt.Sprint(arg)]
			if !ok {
				t.Fatalf("rule refers to %v", arg)
			}
			return v
		case "Fn::Equals":
			return fmt.Sprint(evalRule(t, args[0], params)) == fmt.Sprint(evalRule(t, args[1], params))
		case "Fn::Not":
			return evalRule(t, args[0], params) != true
		case "Fn::And", "Fn::Or":
			every, some := true, false
			for _, a := range args {
				b := evalRule(t, a, params) == true
				every, some = every && b, some || b
			}
			return fn == "Fn::And" && every || fn == "Fn::Or" && some
		default:
			t.Fatalf("rule function %s not evaluated here", fn)
		}
	}
	return nil
}

// checkParameters holds the template's parameter constraints to what the
// functions' configuration (shared/config) accepts, so that a deployable
// stack never has functions that refuse to start.
func checkParameters(t *testing.T, params map[string]map[string]any) {
	t.Helper()
	// RetrySchedule: every schedule the pattern admits is a valid
	// RETRY_SCHEDULE, and, of single whole-number delays, exactly those.
	p := params["RetrySchedule"]
	pattern, err := regexp.Compile(fmt.Sprint(p["AllowedPattern"]))
	if err != nil {
		t.Fatalf("RetrySchedule pattern: %v", err)
	}
	if !pattern.MatchString(fmt.Sprint(p["Default"])) {
		t.Errorf("RetrySchedule default %v does not match its pattern", p["Default"])
	}
delays:
	for n := 0; n <= 50000; n++ {
		for _, unit := range []string{"s", "m", "h", "ms", "us"} {
			d := strconv.Itoa(n) + unit
			_, cfgErr := config.ParseRetrySchedule(d)
			if pattern.MatchString(d) != (cfgErr == nil && (unit == "s" || unit == "m" || unit == "h")) {
				t.Errorf("RetrySchedule %q: pattern matches %v, configuration error %v", d, pattern.MatchString(d), cfgErr)
				break delays
			}
		}
	}
	for _, sched := range []string{
		"1s,2s,5s,10s,20s,30s,45s", "12h,720m,43200s", strings.Repeat("1m,", 49) + "1m",
		strings.Repeat("1m,", 50) + "1m", "0s", "1m,", ",1m", "1m,,1m", "1m, 5m", "01m", "1h30m", "1.5h", "13h", "721m", "43201s", "-1m",
	} {
		if _, cfgErr := config.ParseRetrySchedule(sched); pattern.MatchString(sched) && cfgErr != nil {
			t.Errorf("RetrySchedule %q matches the pattern but the configuration refuses it: %v", sched, cfgErr)
		}
	}
	if pattern.MatchString(strings.Repeat("1m,", 50)+"1m") || !pattern.MatchString(strings.Repeat("1m,", 49)+"1m") {
		t.Error("RetrySchedule pattern must admit 1 to 50 delays")
	}

	// Numbers: the configuration accepts the whole range; for the rate
	// limit the range is exactly the configuration's.
	for _, tc := range []struct {
		param, env string
		exact      bool
	}{
		{"ApiRateLimitPerMinute", "RATE_LIMIT_PER_MINUTE", true},
		{"ApiSendsPerMinute", "SENDS_PER_MINUTE", true},
		{"LogRetentionDays", "LOG_RETENTION_DAYS", false},
		{"DeliveryMaxReceiveCount", "DELIVERY_MAX_RECEIVE_COUNT", false},
	} {
		lo, loOK := params[tc.param]["MinValue"].(float64)
		hi, hiOK := params[tc.param]["MaxValue"].(float64)
		if !loOK || !hiOK {
			t.Errorf("%s needs MinValue and MaxValue: %v", tc.param, params[tc.param])
			continue
		}
		accepts := func(n float64) bool {
			_, err := config.Load(func(name string) (string, bool) {
				if name == tc.env {
					return strconv.Itoa(int(n)), true
				}
				v, ok := map[string]string{
					"ENDPOINTS_TABLE": "ep", "DELIVERIES_TABLE": "dl", "KMS_KEY_ID": "key", "EVENTS_QUEUE_URL": "http://q",
					"EVENTS_DLQ_URL": "http://dlq", "DELIVERY_TASKS_QUEUE_URL": "http://tasks", "SOURCE_IPS": "203.0.113.7",
				}[name]
				return v, ok
			})
			return err == nil
		}
		if !accepts(lo) || !accepts(hi) {
			t.Errorf("%s: the configuration refuses %s %v or %v", tc.param, tc.env, lo, hi)
		}
		if tc.exact && (accepts(lo-1) || accepts(hi+1)) {
			t.Errorf("%s: %v..%v is narrower than what %s accepts", tc.param, lo, hi, tc.env)
		}
	}
}

// TestLocalRoundFitsInTwoMinutes: locally every attempt of a delivery is
// made within two minutes, as the README says: the schedule's delays, as
// long as receivers' Retry-After can make them and with their largest
// jitter, leave at least 20 s of it for the queue's receives.
func TestLocalRoundFitsInTwoMinutes(t *testing.T) {
	s, err := config.ParseRetrySchedule(LocalRetrySchedule)
	if err != nil {
		t.Fatal(err)
	}
	if span := (config.Config{RetrySchedule: s}).RoundSpan(); span > 100*time.Second {
		t.Errorf("a local round lasts up to %v", span)
	}
}
