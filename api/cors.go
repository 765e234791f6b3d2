package api

import (
	"net/http"
	"slices"
	"strings"
)

// corsMethods are the methods the API's routes answer; a preflight for any
// other is not approved.
var corsMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// corsHeaders are the request headers a page may send: the bearer token and
// the body's type. Tokens travel in Authorization, never in cookies, so no
// answer ever allows credentials.
const corsHeaders = "Authorization, Content-Type"

// cors lets pages on the configured origins (http.cors_origins) call the
// API from a browser. For an allowed Origin it answers a preflight
// (OPTIONS with Access-Control-Request-Method) itself, with 204, and marks
// every other answer readable by that origin, exposing the headers clients
// page and back off by. A request from any other origin gets no CORS
// headers at all (its preflight falls through to the router, which does not
// know OPTIONS), so the browser keeps the page from reading the answer.
func (h *handler) cors(next http.Handler) http.Handler {
	origins := h.HTTP.CORSOrigins
	if len(origins) == 0 {
		return next
	}
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || (!anyOrigin && !slices.Contains(origins, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		hd := w.Header()
		if anyOrigin {
			hd.Set("Access-Control-Allow-Origin", "*")
		} else {
			hd.Set("Access-Control-Allow-Origin", origin)
			hd.Add("Vary", "Origin")
		}
		if method := r.Header.Get("Access-Control-Request-Method"); r.Method == http.MethodOptions && method != "" {
			hd.Add("Vary", "Access-Control-Request-Method")
			hd.Add("Vary", "Access-Control-Request-Headers")
			if slices.Contains(corsMethods, method) {
				hd.Set("Access-Control-Allow-Methods", strings.Join(corsMethods, ", "))
				hd.Set("Access-Control-Allow-Headers", corsHeaders)
				hd.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		hd.Set("Access-Control-Expose-Headers", "X-Next-Cursor, Retry-After")
		next.ServeHTTP(w, r)
	})
}
