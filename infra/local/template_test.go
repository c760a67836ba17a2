package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/customerthermometer/webhooks/shared/awstest"
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

	// So the API, which lists deliveries, reads their summaries by key.
	if !allows(res("ApiFunctionRole"), "dynamodb:BatchGetItem", "DeliveriesTable") {
		t.Error("the API function may not BatchGetItem on the delivery log")
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
	for _, o := range []string{"ApiUrl", "ResponseEventsQueueUrl", "WebhookSourceIp", "EndpointsTableName", "DeliveriesTableName"} {
		if tpl.Outputs[o] == nil {
			t.Errorf("missing output %s", o)
		}
	}
}

// allows reports whether one of role's inline policy statements allows action
// on table's ARN.
func allows(role map[string]any, action, table string) bool {
	policies, _ := role["Policies"].([]any)
	for _, p := range policies {
		doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
		statements, _ := doc["Statement"].([]any)
		for _, st := range statements {
			st, _ := st.(map[string]any)
			if st["Effect"] != "Allow" || !contains(st["Action"], action) {
				continue
			}
			if contains(st["Resource"], fmt.Sprint(map[string]any{"Fn::GetAtt": []any{table, "Arn"}})) {
				return true
			}
		}
	}
	return false
}

// contains reports whether v, one value or a list, holds want (compared as
// fmt.Sprint renders them).
func contains(v any, want string) bool {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	for _, x := range list {
		if fmt.Sprint(x) == want {
			return true
		}
	}
	return false
}
