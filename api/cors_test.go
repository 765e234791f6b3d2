package api_test

import (
	"net/http"
	"testing"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// CORS: a listed origin's preflight is answered for the API's methods and
// the Authorization and Content-Type headers, and its answers are readable
// (with the paging and back-off headers exposed); an unlisted origin gets no
// CORS header at all; credentials are never allowed; "*" allows any origin.
func TestCORS(t *testing.T) {
	t.Parallel()
	const app, evil = "https://app.example.com", "https://evil.example.com"
	srv := testutil.StartServer(t, "sqlite", func(c *config.Config) { c.HTTP.CORSOrigins = []string{app, "http://localhost:3000"} })
	tok := srv.User(t, "cors")
	preflight := func(srv *testutil.Server, origin, method string) (int, http.Header) {
		t.Helper()
		st, hdr, _ := do(t, srv, call{method: "OPTIONS", path: "/v1/conversations",
			header: map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type"}})
		return st, hdr
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		st, hdr := preflight(srv, app, m)
		if st != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != app || hdr.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
			hdr.Get("Access-Control-Allow-Methods") != "GET, POST, PUT, PATCH, DELETE" || hdr.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s from %s: %d %v", m, app, st, hdr)
		}
	}
	if st, hdr := preflight(srv, app, "TRACE"); hdr.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight TRACE approved: %d %v", st, hdr)
	}
	for _, o := range []string{evil, "https://app.example.com.evil.com", "null", "https://APP.example.com"} {
		st, hdr := preflight(srv, o, "GET")
		if st == http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "" || hdr.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight from unlisted %s: %d %v", o, st, hdr)
		}
	}
	// The actual request: readable by the listed origin only.
	for origin, want := range map[string]string{app: app, evil: "", "": ""} {
		c := call{method: "GET", path: "/v1/conversations", auth: bearer(tok), header: map[string]string{}}
		if origin != "" {
			c.header["Origin"] = origin
		}
		st, hdr, body := do(t, srv, c)
		if st != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != want || hdr.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("GET from %q: %d %v %s", origin, st, hdr, body)
		}
		if want != "" && (hdr.Get("Access-Control-Expose-Headers") != "X-Next-Cursor, Retry-After" || hdr.Get("Vary") != "Origin") {
			t.Errorf("GET from %q: exposes %q, vary %q", origin, hdr.Get("Access-Control-Expose-Headers"), hdr.Get("Vary"))
		}
	}
	// Refusals are readable too, so a page can show why.
	st, hdr, _ := do(t, srv, call{method: "GET", path: "/v1/conversations", header: map[string]string{"Origin": app}})
	if st != http.StatusUnauthorized || hdr.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("401 from %s: %d %v", app, st, hdr)
	}

	star := testutil.StartServer(t, "sqlite", func(c *config.Config) { c.HTTP.CORSOrigins = []string{"*"} })
	if st, hdr := preflight(star, evil, "PATCH"); st != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "*" || hdr.Get("Vary") == "Origin" {
		t.Errorf(`preflight with "*": %d %v`, st, hdr)
	}
	off := testutil.StartServer(t, "sqlite")
	if st, hdr := preflight(off, app, "GET"); st == http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight with no origins configured: %d %v", st, hdr)
	}
}
