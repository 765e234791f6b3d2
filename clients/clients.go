// Package clients embeds mqim's own clients so the server can serve them:
// the JavaScript client library (clients/js/src), the web chat client
// (clients/web) built on it, and the browser build of mqtt.js the library
// runs on (clients/web/vendor, copied from the npm package; see
// docs/clients.md). Nothing here is fetched at run time, so the web client
// works from a plain `go run ./cmd/mqim` with no network.
package clients

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

//go:embed web js/src
var files embed.FS

// Web is the web chat client: index.html and its scripts at the root, and
// the vendored mqtt.js under vendor/.
func Web() fs.FS {
	web, _ := fs.Sub(files, "web")
	return web
}

// Library is the client library's source (clients/js/src).
func Library() fs.FS {
	lib, _ := fs.Sub(files, "js/src")
	return lib
}

// DemoOptions say what the page needs to know about the server.
type DemoOptions struct {
	// WSAddr returns the bound address of the MQTT WebSocket listener
	// ("host:port"), or "" when there is none. It is asked at each request,
	// so it may be called before the listener binds.
	WSAddr func() string
}

// Demo serves the web chat client at /demo/ (the request path keeps its
// /demo prefix), the client library at /demo/lib/, and where the page
// connects to at /demo/config.json: {"ws_port": 8083, "ws_path": "/"}
// (ws_port 0: no WebSocket listener). The page takes the host from its own
// address, so one answer fits every name the server is reached by.
func Demo(o DemoOptions) http.Handler {
	web := http.StripPrefix("/demo", http.FileServerFS(Web()))
	lib := http.StripPrefix("/demo/lib", http.FileServerFS(Library()))
	csp := contentPolicy()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/demo/config.json" {
			port := 0
			if _, p, err := net.SplitHostPort(o.WSAddr()); err == nil {
				port, _ = strconv.Atoi(p)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			_ = json.NewEncoder(w).Encode(map[string]any{"ws_port": port, "ws_path": "/"})
			return
		}
		// The page and its scripts change with the server's version: no
		// stale copy after an upgrade.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, "/demo/lib/") {
			lib.ServeHTTP(w, r)
			return
		}
		web.ServeHTTP(w, r)
	})
}

// importMap is the page's one inline script: the import map that points
// the library's "mqtt" at the vendored build.
var importMap = regexp.MustCompile(`(?s)<script type="importmap">(.*?)</script>`)

// contentPolicy is the page's Content-Security-Policy: scripts only from
// the server (and the import map, by its hash), MQTT over ws/wss to any
// host (the WebSocket port is another origin), images from anywhere (an
// image message is a URL), no frames, no plugins.
func contentPolicy() string {
	scripts := "'self'"
	if page, err := fs.ReadFile(files, "web/index.html"); err == nil {
		if m := importMap.FindSubmatch(page); m != nil {
			sum := sha256.Sum256(m[1])
			scripts += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		}
	}
	return "default-src 'self'; script-src " + scripts + "; connect-src 'self' ws: wss:; img-src * data: blob:; " +
		"style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
}
