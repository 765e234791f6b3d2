package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// pageServer serves a blank HTML page on its own loopback port: an origin
// other than the API's. It returns the page's origin.
func pageServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>app</title><p>app page</p>")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + l.Addr().String()
}

// fetchFrom opens page in the browser and, from it, fetches url with a
// bearer token, answering the status and body as the page sees them, or
// "error: ..." when the browser does not let the page read the answer.
func fetchFrom(t *testing.T, ctx context.Context, page, url, method, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args, _ := json.Marshal([]string{url, method, token})
	js := fmt.Sprintf(`(async ([url, method, token]) => {
		try {
			const r = await fetch(url, {method, headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
				body: method === "GET" ? undefined : "{\"pinned\":true}"});
			return r.status + " " + (r.headers.get("X-Next-Cursor") === null ? "" : "cursor ") + await r.text();
		} catch (e) { return "error: " + e.name; }
	})(%s)`, args)
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("navigate to %s: %v", page, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s from %s: %v", url, page, err)
	}
	return out
}

// A page on another origin, listed in http.cors_origins, calls the API from
// a real headless Chromium with a bearer token: the preflight passes, it
// reads the conversation list (and the exposed X-Next-Cursor) and may
// PATCH; a page on an unlisted origin is stopped by the browser.
func TestBrowserCORS(t *testing.T) {
	browser := testutil.Browser(t)
	allowed, other := pageServer(t), pageServer(t)
	srv := testutil.StartServer(t, "sqlite", func(c *config.Config) { c.HTTP.CORSOrigins = []string{allowed} })
	ta := srv.User(t, "alice")
	srv.User(t, "bob")
	for i := 0; i < 2; i++ {
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": "hi"}}, nil)
	}
	srv.User(t, "carol")
	srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "carol", "type": "text", "body": map[string]string{"text": "hi"}}, nil)

	got := fetchFrom(t, browser, allowed, srv.HTTPURL+"/v1/conversations?limit=1", "GET", ta)
	if !strings.HasPrefix(got, "200 cursor [") || !strings.Contains(got, `"id":"d:alice:carol"`) {
		t.Fatalf("GET from the listed origin: %s", got)
	}
	// PATCH needs a preflight (a non-simple method and headers).
	if got := fetchFrom(t, browser, allowed, srv.HTTPURL+"/v1/conversations/d:alice:bob", "PATCH", ta); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"pinned":true`) {
		t.Fatalf("PATCH from the listed origin: %s", got)
	}
	// A refusal is readable, so the page can show why.
	if got := fetchFrom(t, browser, allowed, srv.HTTPURL+"/v1/conversations", "GET", "not-a-token"); !strings.HasPrefix(got, "401 ") || !strings.Contains(got, `"unauthorized"`) {
		t.Fatalf("401 from the listed origin: %s", got)
	}
	if got := fetchFrom(t, browser, other, srv.HTTPURL+"/v1/conversations", "GET", ta); got != "error: TypeError" {
		t.Fatalf("GET from an unlisted origin: %s", got)
	}
}
