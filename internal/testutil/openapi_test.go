package testutil

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Errorf.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckResponse: the validator accepts answers as documented and
// catches each kind of mismatch.
func TestCheckResponse(t *testing.T) {
	js := http.Header{"Content-Type": {"application/json"}}
	with := func(k, v string) http.Header { h := js.Clone(); h.Set(k, v); return h }
	for _, c := range []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		bad                string // a part of the expected complaint; "" for none
	}{
		{"as documented", "GET", "/healthz", 200, js, `{"status":"ok"}`, ""},
		{"extra field", "GET", "/healthz", 200, js, `{"status":"ok","x":1}`, "x"},
		{"missing field", "POST", "/v1/token", 200, js, `{"token":"t","expires_at":1}`, "server_time"},
		{"wrong type", "POST", "/v1/token", 200, js, `{"token":"t","expires_at":"1","server_time":1}`, "expires_at"},
		{"undocumented status", "GET", "/v1/users/alice", 418, js, `{}`, "status is not supported"},
		{"code of another status", "GET", "/v1/users/alice", 404, js, `{"error":{"code":"invalid","message":"m"}}`, "code"},
		{"error without Retry-After", "POST", "/v1/messages", 429, js, `{"error":{"code":"rate_limited","message":"slow down"}}`, "Retry-After"},
		{"error with Retry-After", "POST", "/v1/messages", 429, with("Retry-After", "3"), `{"error":{"code":"rate_limited","message":"slow down"}}`, ""},
		{"wrong content type", "GET", "/healthz", 200, http.Header{"Content-Type": {"text/html"}}, `{"status":"ok"}`, "text/html"},
		{"no content", "DELETE", "/v1/blocks/bob", 204, http.Header{}, ``, ""},
		{"unknown route, error", "GET", "/v2/nothing", 404, js, `{"error":{"code":"not_found","message":"no such endpoint"}}`, ""},
		{"unknown method, error", "TRACE", "/v1/users/alice", 404, js, `{"error":{"code":"not_found","message":"no such endpoint"}}`, ""},
		{"unknown route, success", "GET", "/v2/nothing", 200, js, `{}`, "error status"},
		{"unknown route, not the error body", "GET", "/v2/nothing", 404, js, `{"error":"nope"}`, "Error schema"},
		{"head", "HEAD", "/healthz", 200, js, ``, ""},
	} {
		req, err := http.NewRequest(c.method, "http://127.0.0.1:1"+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{TB: t}
		CheckResponse(r, req, c.status, c.header, []byte(c.body))
		switch {
		case c.bad == "" && len(r.errs) > 0:
			t.Errorf("%s: unexpected complaint: %s", c.name, r.errs)
		case c.bad != "" && len(r.errs) == 0:
			t.Errorf("%s: not caught", c.name)
		case c.bad != "" && !strings.Contains(strings.Join(r.errs, " "), c.bad):
			t.Errorf("%s: complaint does not mention %q: %s", c.name, c.bad, r.errs)
		}
	}
}
