package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

type openAPIDoc struct {
	OpenAPI    string `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	OperationID string `json:"operationId"`
	RequestBody *struct {
		Content map[string]json.RawMessage `json:"content"`
	} `json:"requestBody"`
	Responses map[string]json.RawMessage `json:"responses"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	return doc
}

func operations(t *testing.T, doc openAPIDoc) map[string]operation {
	ops := map[string]operation{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

// TestOpenAPIMatchesRoutes: every route the handler serves is in the
// document, and every operation in the document is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ops := operations(t, loadOpenAPI(t))
	h := &handler{}
	var served, documented []string
	for pattern := range h.routes() {
		served = append(served, pattern)
	}
	for op := range ops {
		documented = append(documented, op)
	}
	sort.Strings(served)
	sort.Strings(documented)
	if fmt.Sprint(served) != fmt.Sprint(documented) {
		t.Errorf("served routes %v\ndocumented %v", served, documented)
	}
}

// TestOpenAPIWalk calls every documented operation against the running
// handler, successfully and without a key, and checks that each answer's
// status is one the document lists for it and that success bodies carry the
// fields the schema requires.
func TestOpenAPIWalk(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)
	rc := newReceiver(t, 200)
	create := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL))
	id := create.json(t)["id"].(string)
	e.do("POST", "/v1/endpoints/"+id+"/test", e.key, "")
	doomed := e.do("POST", "/v1/endpoints", e.key, createBody(rc.URL)).json(t)["id"].(string)
	dlv := e.delivery(e.account, id, "failed", time.Now().UTC(), 2)

	bodies := map[string]string{
		"createEndpoint":          createBody(rc.URL),
		"updateEndpoint":          `{"name":"Renamed"}`,
		"setEndpointThermometers": `{"thermometers":[{"id":"th_42","name":"Support tickets","type":"email"}]}`,
	}
	ops := operations(t, doc)
	names := make([]string, 0, len(ops))
	for k := range ops {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		op := ops[name]
		method, path, _ := strings.Cut(name, " ")
		t.Run(op.OperationID, func(t *testing.T) {
			target := strings.ReplaceAll(path, "{id}", id)
			if strings.HasPrefix(path, "/v1/deliveries/") {
				target = strings.ReplaceAll(path, "{id}", dlv.ID)
			}
			if op.OperationID == "deleteEndpoint" {
				target = strings.ReplaceAll(path, "{id}", doomed)
			}
			body := bodies[op.OperationID]
			if (op.RequestBody != nil) != (body != "") && op.OperationID != "testEndpoint" && op.OperationID != "rotateEndpointSecret" && op.OperationID != "redeliverDelivery" {
				t.Errorf("request body documented: %v, sent: %v", op.RequestBody != nil, body != "")
			}
			r := e.do(method, target, e.key, body)
			if r.status >= 300 {
				t.Fatalf("%s %s: %d %s", method, target, r.status, r.body)
			}
			checkDocumented(t, doc, op, r)
			if name != "GET /v1/health" && name != "GET /v1/openapi.json" {
				if r := e.do(method, target, "", body); r.status != 401 {
					t.Errorf("without a key: %d", r.status)
				} else {
					checkDocumented(t, doc, op, r)
				}
			}
			if r := e.do("TRACE", target, e.key, ""); r.status != 405 {
				t.Errorf("TRACE: %d", r.status)
			} else {
				checkDocumented(t, doc, op, r)
			}
		})
	}
}

func checkDocumented(t *testing.T, doc openAPIDoc, op operation, r resp) {
	t.Helper()
	raw, ok := op.Responses[fmt.Sprint(r.status)]
	if !ok {
		t.Errorf("status %d is not documented for %s", r.status, op.OperationID)
		return
	}
	if r.status >= 300 || r.status == 204 {
		return
	}
	var resp struct {
		Content map[string]struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"content"`
	}
	_ = json.Unmarshal(raw, &resp)
	schema := resolve(doc, resp.Content["application/json"].Schema)
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Errorf("%s: body is not a JSON object", op.OperationID)
		return
	}
	for _, f := range requiredFields(doc, schema) {
		if _, ok := body[f]; !ok {
			t.Errorf("%s: response lacks required field %q: %s", op.OperationID, f, r.body)
		}
	}
}

// resolve follows a $ref to components.schemas.
func resolve(doc openAPIDoc, schema json.RawMessage) json.RawMessage {
	var ref struct {
		Ref string `json:"$ref"`
	}
	_ = json.Unmarshal(schema, &ref)
	if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
		return resolve(doc, doc.Components.Schemas[name])
	}
	return schema
}

// requiredFields collects required properties, through allOf.
func requiredFields(doc openAPIDoc, schema json.RawMessage) []string {
	var s struct {
		Required []string          `json:"required"`
		AllOf    []json.RawMessage `json:"allOf"`
	}
	_ = json.Unmarshal(schema, &s)
	out := s.Required
	for _, part := range s.AllOf {
		out = append(out, requiredFields(doc, resolve(doc, part))...)
	}
	return out
}
