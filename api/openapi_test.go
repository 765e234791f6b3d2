package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/mqim/mqim/api"
	"github.com/mqim/mqim/internal/testutil"
)

// pendingRoutes are documented in api/openapi.yaml before their handler
// is registered: the route test accepts them missing from the router, and
// fails once they are registered, so that the entry is removed.
var pendingRoutes = map[string]string{}

// documented returns "METHOD /path" of every operation of the document.
func documented(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIRoutes: the document describes exactly the routes the router
// registers (with metrics and the demo enabled), but for pendingRoutes.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc, _ := testutil.OpenAPI(t)
	registered := api.Routes(api.Options{Metrics: http.NotFoundHandler(), Demo: http.NotFoundHandler()})
	inRouter := make(map[string]bool, len(registered))
	for _, p := range registered {
		if inRouter[p] {
			t.Errorf("route %s is registered twice", p)
		}
		inRouter[p] = true
	}
	inDoc := make(map[string]bool)
	for _, p := range documented(doc) {
		inDoc[p] = true
		why, pending := pendingRoutes[p]
		switch {
		case !inRouter[p] && pending:
			t.Logf("%s: %s", p, why)
		case !inRouter[p]:
			t.Errorf("api/openapi.yaml documents %s, which the router does not register", p)
		case pending:
			t.Errorf("%s is registered now: remove it from pendingRoutes", p)
		}
	}
	for _, p := range registered {
		if !inDoc[p] {
			t.Errorf("the router registers %s, which api/openapi.yaml does not document", p)
		}
	}
	for p := range pendingRoutes {
		if !inDoc[p] {
			t.Errorf("pending route %s is not in api/openapi.yaml", p)
		}
	}
}

// TestOpenAPIStatuses: what every operation may answer follows from how it
// is reached: one that needs a token lists 401 and 503 (the token check
// reads the store), one with a request body lists 400 and 413.
func TestOpenAPIStatuses(t *testing.T) {
	t.Parallel()
	doc, _ := testutil.OpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			what := method + " " + path
			has := func(st string) bool { return op.Responses.Value(st) != nil }
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			open := len(sec) == 0
			for _, req := range sec {
				if len(req) == 0 {
					open = true
				}
			}
			if !open && path != "/metrics" && (!has("401") || !has("503")) {
				t.Errorf("%s needs a token but does not list 401 and 503", what)
			}
			if op.RequestBody != nil && (!has("400") || !has("413")) {
				t.Errorf("%s takes a body but does not list 400 and 413", what)
			}
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s has no operationId or summary", what)
			}
		}
	}
}

// TestOpenAPIServed: GET /v1/openapi.yaml answers the document, without
// authentication, and it is valid OpenAPI 3.
func TestOpenAPIServed(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		st, hdr, body := do(t, srv, call{method: "GET", path: "/v1/openapi.yaml"})
		if st != http.StatusOK {
			t.Fatalf("GET /v1/openapi.yaml: %d %s", st, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("Content-Type %q, want application/yaml", ct)
		}
		if string(body) != string(api.OpenAPI()) {
			t.Errorf("the served document is not api/openapi.yaml")
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(body)
		if err != nil {
			t.Fatalf("the served document does not load: %v", err)
		}
		if err := doc.Validate(loader.Context); err != nil {
			t.Fatalf("the served document is not valid OpenAPI: %v", err)
		}
		if !strings.HasPrefix(doc.OpenAPI, "3.") {
			t.Errorf("openapi: %q, want 3.x", doc.OpenAPI)
		}
	})
}
