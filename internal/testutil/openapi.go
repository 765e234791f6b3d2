package testutil

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mqim/mqim/api"
)

// The OpenAPI document of the HTTP API (api/openapi.yaml), loaded once.
var spec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// OpenAPI returns the loaded and validated OpenAPI document of the HTTP
// API and a router over it; the test fails if it does not load.
func OpenAPI(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	spec.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI())
		if err != nil {
			spec.err = fmt.Errorf("load api/openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			spec.err = fmt.Errorf("api/openapi.yaml is not valid OpenAPI: %w", err)
			return
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			spec.err = fmt.Errorf("route api/openapi.yaml: %w", err)
			return
		}
		spec.doc, spec.router = doc, r
	})
	if spec.err != nil {
		t.Fatal(spec.err)
	}
	return spec.doc, spec.router
}

// errorStatus are the statuses of the error codes (DESIGN.md §5): what an
// answer the document does not cover (an unknown endpoint or method) may
// have.
var errorStatus = map[int]bool{400: true, 401: true, 403: true, 404: true, 409: true, 413: true, 429: true, 503: true}

// CheckResponse validates one answer of the HTTP API against its OpenAPI
// document and reports a mismatch with t.Errorf: for a documented route,
// that the status is one the operation lists and that the headers and the
// body match what it says for that status; for any other request, that the
// answer is the error body with an error status. A CORS preflight (OPTIONS
// with Access-Control-Request-Method) is not described by the document and
// not checked. Server.API and Server.Do call it on every answer.
func CheckResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	doc, router := OpenAPI(t)
	what := fmt.Sprintf("%s %s: answer %d", req.Method, req.URL.RequestURI(), status)
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		return
	}
	// A copy without the body: only the method, URL and headers route.
	r := &http.Request{Method: req.Method, URL: req.URL, Header: req.Header, Host: req.Host}
	head := req.Method == http.MethodHead // GET without the body
	if head {
		r.Method = http.MethodGet
	}
	route, params, err := router.FindRoute(r)
	if err != nil {
		checkError(t, doc, what, status, header, body, head)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: head},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s does not match api/openapi.yaml (%s %s): %v\nbody: %.500s", what, route.Method, route.Path, err, body)
	}
}

// checkError checks an answer to a request no documented route matches:
// the error body, with an error status.
func checkError(t testing.TB, doc *openapi3.T, what string, status int, header http.Header, body []byte, head bool) {
	t.Helper()
	if !errorStatus[status] {
		t.Errorf("%s to an undocumented route: want an error status (api/openapi.yaml documents no such route): %.300s", what, body)
		return
	}
	if ct, _, _ := mime.ParseMediaType(header.Get("Content-Type")); ct != "application/json" {
		t.Errorf("%s to an undocumented route: Content-Type %q, want application/json", what, header.Get("Content-Type"))
	}
	if head {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s to an undocumented route: body is not JSON: %.300s", what, body)
		return
	}
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		t.Errorf("%s to an undocumented route: not the Error schema of api/openapi.yaml: %v\nbody: %.300s", what, err, body)
	}
}
