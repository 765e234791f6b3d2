package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

func TestHealth(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
			for _, auth := range []*string{nil, bearer("junk"), bearer(serviceKey)} {
				st, hdr, body := do(t, srv, call{method: "GET", path: path, auth: auth})
				var v struct {
					Status string `json:"status"`
				}
				if st != http.StatusOK || hdr.Get("Content-Type") != "application/json" || json.Unmarshal(body, &v) != nil || v.Status != want {
					t.Errorf("GET %s: %d %q %s", path, st, hdr.Get("Content-Type"), body)
				}
			}
			if st, _, _ := do(t, srv, call{method: "HEAD", path: path}); st != http.StatusOK {
				t.Errorf("HEAD %s: %d", path, st)
			}
			st, _, body := do(t, srv, call{method: "POST", path: path, body: []byte("{}")})
			wantError(t, "POST "+path, st, body, http.StatusNotFound, "not_found")
		}
	})
}

// TestReadyzStoreDown: /readyz tells when the store is unreachable, while
// /healthz (the process) stays up.
func TestReadyzStoreDown(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		if err := srv.Store.Close(); err != nil {
			t.Fatal(err)
		}
		st, body := srv.API(t, "GET", "/readyz", "", nil)
		if st != http.StatusServiceUnavailable || !strings.Contains(string(body), "store") {
			t.Errorf("readyz with the store closed: %d %s", st, body)
		}
		if st, body := srv.API(t, "GET", "/healthz", "", nil); st != http.StatusOK {
			t.Errorf("healthz: %d %s", st, body)
		}
		// A request that needs the store fails as unavailable, in the error
		// format, without details.
		st, body = srv.API(t, "GET", "/v1/users/x", serviceKey, nil)
		wantError(t, "GET user with the store closed", st, body, http.StatusServiceUnavailable, "unavailable")
	})
}

func TestUnknownRoutes(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		tok := srv.User(t, "u")
		for _, c := range []struct{ method, path string }{
			{"GET", "/"}, {"GET", "/v1"}, {"GET", "/v1/"}, {"GET", "/v2/users/u"}, {"GET", "/v1/nope"},
			{"GET", "/v1/users"}, {"GET", "/v1/users/"}, {"GET", "/v1/users/u/"}, {"GET", "/v1/users/u/tokens"},
			{"DELETE", "/v1/users/u"}, {"POST", "/v1/users/u"}, {"PATCH", "/v1/users/u"}, {"PUT", "/v1/login"},
			{"GET", "/v1/login"}, {"GET", "/v1/groups"}, {"PUT", "/v1/groups/g"}, {"GET", "/v1/groups/g/members/u/x"},
			{"POST", "/V1/groups"}, {"GET", "/HEALTHZ"}, {"GET", "/healthz/"}, {"OPTIONS", "/v1/users/u"},
			{"FOO", "/v1/users/u"}, {"get", "/v1/users/u"}, {"TRACE", "/healthz"},
		} {
			for _, auth := range []*string{nil, bearer(tok), bearer(serviceKey)} {
				st, hdr, body := do(t, srv, call{method: c.method, path: c.path, auth: auth})
				what := c.method + " " + c.path
				if c.method == "GET" && strings.HasSuffix(c.path, "/") && c.path != "/" || c.path == "/v1/users/" {
					// Trailing slash: either no route, or no route for the empty id.
					if st != http.StatusNotFound && st != http.StatusBadRequest {
						t.Errorf("%s: %d %s", what, st, body)
					}
					errorOf(t, what, body)
					continue
				}
				wantError(t, what, st, body, http.StatusNotFound, "not_found")
				if ct := hdr.Get("Content-Type"); ct != "application/json" {
					t.Errorf("%s: Content-Type %q", what, ct)
				}
			}
		}
	})
}

// padded returns a JSON object of exactly n bytes: prefix (an object
// without its closing brace), spaces, "}".
func padded(prefix string, n int) []byte {
	return []byte(prefix + strings.Repeat(" ", n-len(prefix)-1) + "}")
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		for _, limit := range []int64{0, 4096} {
			t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
				srv := testutil.StartServer(t, backend, func(c *config.Config) {
					if limit > 0 {
						c.HTTP.MaxBodyBytes = limit
					}
				})
				max := int(srv.Config.HTTP.MaxBodyBytes)
				if limit == 0 && max != 1<<20 {
					t.Errorf("default http.max_body_bytes = %d, want 1 MiB", max)
				}
				tok := srv.User(t, "big")
				srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", tok, map[string]string{"id": "g", "name": "G"}, nil)
				for _, c := range []struct {
					method, path, tok, prefix string
					okStatus                  int
				}{
					{"PUT", "/v1/users/big", serviceKey, `{"name":"x"`, 200},
					{"POST", "/v1/users/big/tokens", serviceKey, `{"ttl_seconds":60`, 200},
					{"POST", "/v1/login", "", `{"user_id":"big","password":"wrong password"`, 401},
					{"POST", "/v1/groups", tok, `{"name":"x"`, 201},
					{"POST", "/v1/groups/g/members", tok, `{"user_ids":["big"]`, 200},
				} {
					what := c.method + " " + c.path
					var auth *string
					if c.tok != "" {
						auth = bearer(c.tok)
					}
					// Exactly the limit is fine.
					st, _, body := do(t, srv, call{method: c.method, path: c.path, auth: auth, body: padded(c.prefix, max)})
					if st != c.okStatus {
						t.Errorf("%s with %d bytes: %d %.200s", what, max, st, body)
					}
					// One byte more is not, with or without a Content-Length.
					for _, chunked := range []bool{false, true} {
						st, _, body = do(t, srv, call{method: c.method, path: c.path, auth: auth, body: padded(c.prefix, max+1), chunked: chunked})
						msg := wantError(t, fmt.Sprintf("%s with %d bytes (chunked %v)", what, max+1, chunked), st, body, http.StatusRequestEntityTooLarge, "too_large")
						if msg != "" && !strings.Contains(msg, fmt.Sprint(max)) {
							t.Errorf("%s: message %q does not name the limit", what, msg)
						}
					}
				}
				// The oversized requests changed nothing.
				var u userResp
				srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/big", serviceKey, nil, &u)
				if u.Name != "x" {
					t.Errorf("user %+v", u)
				}
			})
		}
	})
}

// endpoint is a bootstrap route with its path parameters marked, and a
// body it accepts (empty: it takes none).
type endpoint struct {
	method, path string // path with {uid} and {gid}
	body         string
}

var endpoints = []endpoint{
	{"GET", "/healthz", ""},
	{"GET", "/readyz", ""},
	{"POST", "/v1/login", `{"user_id":"nobody","password":"whatever"}`},
	{"PUT", "/v1/users/{uid}", `{"name":"n","ext":{"a":1}}`},
	{"GET", "/v1/users/{uid}", ""},
	{"POST", "/v1/users/{uid}/tokens", `{"ttl_seconds":60}`},
	{"POST", "/v1/groups", `{"name":"n","members":["v"]}`},
	{"GET", "/v1/groups/{gid}", ""},
	{"POST", "/v1/groups/{gid}/members", `{"user_ids":["v"]}`},
	{"DELETE", "/v1/groups/{gid}/members/{uid}", ""},
	{"PATCH", "/v1/groups/{gid}/members/{uid}", `{"role":"member"}`},
	{"PATCH", "/v1/groups/{gid}", `{"name":"n","notice":"x","mute_all":true,"join_policy":"approval","ext":{"a":1}}`},
	{"POST", "/v1/groups/{gid}/transfer", `{"user_id":"v"}`},
	{"GET", "/v1/groups/{gid}/members", ""},
	{"POST", "/v1/groups/{gid}/join", `{"message":"hi"}`},
	{"GET", "/v1/groups/{gid}/requests", ""},
	{"POST", "/v1/groups/{gid}/requests/{uid}", `{"approve":false}`},
	// A group of its own (group g must outlive the test): dissolved by the
	// first call, then not_found.
	{"DELETE", "/v1/groups/gone", ""},
	{"GET", "/v1/conversations", ""},
	{"GET", "/v1/unread", ""},
	{"POST", "/v1/token", ""},
	{"POST", "/v1/friends/requests", `{"to":"v","message":"hi"}`},
	{"GET", "/v1/friends/requests", ""},
	{"POST", "/v1/friends/requests/{uid}", `{"accept":true}`},
	{"GET", "/v1/friends", ""},
	{"DELETE", "/v1/friends/{uid}", ""},
	{"PUT", "/v1/blocks/{uid}", ""},
	{"DELETE", "/v1/blocks/{uid}", ""},
	{"GET", "/v1/blocks", ""},
	{"POST", "/v1/messages/{mid}/recall", ""},
	{"PATCH", "/v1/messages/{mid}", `{"body":{"text":"t"}}`},
	{"GET", "/v1/messages/search?q=%E5%A5%BD%E4%B8%96&conv=g:g", ""},
}

// junkSearchQueries are query strings for GET /v1/messages/search: bad
// and extreme values of every parameter, LIKE wildcards, bad encodings.
var junkSearchQueries = func() []string {
	qs := []string{
		"", "q", "q=", "q=%20", "q=%00", "q=%FF", "q=%C0%AF", "q=%ED%A0%80", "q=%25", "q=_", "q=%5C", "q=!", "q=%27",
		"q=%22", "q=%25%25%25", "q=a%00b", "q=" + strings.Repeat("%E5%A5%BD", 100), "q=" + strings.Repeat("%E5%A5%BD", 101),
		"q=" + strings.Repeat("a", 5000), "q=%EF%B7%BA", "q=%E3%8D%BF", "q=x&q=y", "q[]=x", "q=x&limit=", "q=x&limit=-1",
		"q=x&limit=1e3", "q=x&limit=9223372036854775808", "q=x&limit=100", "q=x&limit=1", "q=x&cursor=", "q=x&cursor=%FF",
		"q=x&cursor=" + strings.Repeat("A", 1000), "q=x&cursor=MXx4", "q=x&cursor=LTF8eA", "q=x&cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk5fHg",
		"q=x&cursor=MXw", "q=x&cursor=fHg", "q=x&conv=", "q=x&conv=g:", "q=x&conv=d:u", "q=x&conv=d:u:v", "q=x&conv=d:v:u",
		"q=x&conv=g:g", "q=x&conv=g:" + strings.Repeat("g", 200), "q=x&conv=%00", "q=x&conv=g:g&conv=d:u:v",
		"q=x&user_id=", "q=x&user_id=v", "q=x&user_id=%FF", "q=x&user_id=" + strings.Repeat("u", 1000), "q=x&user_id=u&user_id=v",
		"%", "q=%", "q=%G0", "&&&", "q=x;conv=g:g",
	}
	return qs
}()

func (e endpoint) at(uid, gid string) string {
	return strings.NewReplacer("{uid}", uid, "{gid}", gid, "{mid}", gid).Replace(e.path) // junk ids go where gids go
}

// junkBodies covers broken syntax, wrong shapes, wrong types, extreme
// values and bad encodings, for every field of every bootstrap endpoint.
var junkBodies = func() []string {
	b := []string{
		"", " ", "{", "}", "[]", "[", "null", "0", "-1", "1e999", `"s"`, "true", `{"a":`, "{}{}", "{}}", "{}]",
		"\x00", "\xff\xfe\xfd", "\ufeff{}", `{"\ud800":1}`, "{\"name\":\"\xc3\x28\"}", `{"name":"\ud800"}`,
		strings.Repeat("[", 100000), strings.Repeat("{\"a\":", 50000), `{"a":` + strings.Repeat("9", 100000) + `}`,
		`{"name":null,"avatar":null,"ext":null,"password":null,"disabled":null}`,
		`{"name":1,"avatar":[],"ext":{},"password":{},"disabled":"x"}`,
		`{"ext":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
		"{\"ext\":\"\xff\"}", "{\"ext\":{\"\xff\":1}}", "{\"name\":\"g\",\"ext\":[\"\xed\xa0\x80\"]}", `{"ext":{"k":"\u0000"}}`,
		`{"password":"` + strings.Repeat("p", 100000) + `"}`,
		`{"name":"` + strings.Repeat("😀", 1000) + `"}`,
		`{"avatar":"` + strings.Repeat("é", 2000) + `"}`,
		`{"disabled":true}`, `{"disabled":false}`, `{"password":""}`,
		`{"ttl_seconds":-9223372036854775808}`, `{"ttl_seconds":9223372036854775807}`, `{"ttl_seconds":1e308}`,
		`{"ttl_seconds":-0}`, `{"ttl_seconds":0.0000001}`,
		`{"user_id":"u","password":"` + strings.Repeat("x", 5000) + `"}`, `{"user_id":"u"}`, `{"user_id":["u"]}`,
		`{"user_id":"` + strings.Repeat("u", 10000) + `","password":"x"}`,
		`{"id":"","name":""}`, `{"id":null}`, `{"id":"` + strings.Repeat("g", 65) + `"}`,
		`{"name":"g","members":[null]}`, `{"name":"g","members":[""]}`, `{"name":"g","members":["u","u","u"]}`,
		`{"name":"g","owner":"nobody"}`, `{"name":"g","owner":"u"}`, `{"name":"g","join_policy":""}`,
		`{"name":"g","avatar":"` + strings.Repeat("a", 5000) + `"}`, `{"name":"g","ext":"\ud800"}`,
		`{"name":"g","ext":{"a":"` + strings.Repeat("a", 100000) + `"}}`,
		`{"user_ids":[]}`, `{"user_ids":[null,null]}`, `{"user_ids":["u","nobody"]}`, `{"user_ids":["u"]}`,
		`{"user_ids":"` + strings.Repeat("u,", 1000) + `"}`,
		`{"role":"owner"}`, `{"role":"admin"}`, `{"role":""}`, `{"role":null,"muted_until":null}`,
		`{"muted_until":-1}`, `{"muted_until":9223372036854775807}`, `{"muted_until":"soon"}`,
		`{"to":"v"}`, `{"to":"u"}`, `{"to":null,"message":null}`, `{"to":["v"]}`, `{"to":"v","message":"` + strings.Repeat("m", 201) + `"}`,
		`{"accept":false}`, `{"accept":null}`, `{"accept":"yes"}`, `{"accept":1}`,
	}
	many := make([]string, 3000)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	j, _ := json.Marshal(map[string][]string{"user_ids": many, "members": many})
	return append(b, string(j))
}()

// junkIDs are path values: valid, unknown, invalid, and tricky.
var junkIDs = append([]string{
	"u", "g", "nobody", "%2E", "%2E%2E", ".", "..", "", "a%2Fb", "a%5Cb", "a/b", "a?b=c", "a#b",
	"%00", "%0D%0A", "%FF", "%C0%AF", strings.Repeat("a", 1000), strings.Repeat("%41", 64), "inline",
	"g:u", "u:g", "im%2Fu%2Fu", "*", "%2A", "+", "-", "@", "_", "~",
}, badPathIDs...)

// checkNo500 asserts what every response must be: below 500, and for a
// non-2xx a JSON error body.
func checkNo500(t *testing.T, what string, method string, st int, hdr http.Header, body []byte) {
	t.Helper()
	if st >= 500 {
		t.Errorf("%s: status %d: %.300s", what, st, body)
		return
	}
	if method == "HEAD" {
		return
	}
	if st >= 300 {
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: status %d with Content-Type %q: %.200q", what, st, ct, body)
		}
		errorOf(t, what, body)
		return
	}
	if st != http.StatusNoContent && !json.Valid(body) {
		t.Errorf("%s: status %d with a body that is not JSON: %.200q", what, st, body)
	}
}

// TestNoInputYields500 throws junk bodies, paths, methods and headers at
// every bootstrap endpoint: nothing may answer 5xx, and every refusal is a
// JSON error.
func TestNoInputYields500(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		utok := srv.User(t, "u")
		srv.MustAPI(t, http.StatusCreated, "PUT", "/v1/users/pw", serviceKey, map[string]string{"password": "pw password"}, nil)
		srv.User(t, "v")
		srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", utok, map[string]any{"id": "g", "name": "G", "members": []string{"v"}}, nil)
		srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", utok, map[string]any{"id": "gone", "name": "Gone", "members": []string{"v"}}, nil)
		auths := map[string]*string{"none": nil, "service": bearer(serviceKey), "user": bearer(utok), "junk": bearer("x.y.z")}
		var n atomic.Int64
		t.Run("junk", func(t *testing.T) {
			t.Run("bodies", func(t *testing.T) {
				t.Parallel()
				for _, e := range endpoints {
					if e.body == "" {
						continue
					}
					for _, b := range junkBodies {
						for _, an := range []string{"service", "user"} {
							// Target a user other than the token's, so that junk
							// (e.g. "disabled":true) does not lock the test out.
							c := call{method: e.method, path: e.at("v", "g"), auth: auths[an], body: []byte(b)}
							st, hdr, body := do(t, srv, c)
							n.Add(1)
							checkNo500(t, fmt.Sprintf("%s %s as %s, body %.60q", c.method, c.path, an, b), c.method, st, hdr, body)
						}
					}
				}
			})

			t.Run("paths", func(t *testing.T) {
				t.Parallel()
				for _, e := range endpoints {
					var paths []string
					for _, id := range junkIDs {
						if strings.Contains(e.path, "{uid}") && !(id == "u" && e.method == "PUT") { // keep the token's user as it is
							paths = append(paths, e.at(id, "g"))
						}
						if strings.Contains(e.path, "{gid}") || strings.Contains(e.path, "{mid}") {
							paths = append(paths, e.at("v", id))
						}
					}
					for _, p := range paths {
						for an, auth := range auths {
							c := call{method: e.method, path: p, auth: auth}
							if e.body != "" {
								c.body = []byte(e.body)
							}
							st, hdr, body := do(t, srv, c)
							n.Add(1)
							checkNo500(t, fmt.Sprintf("%s %s as %s", c.method, c.path, an), c.method, st, hdr, body)
						}
					}
				}
			})

			t.Run("methods", func(t *testing.T) {
				t.Parallel()
				for _, e := range endpoints {
					for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO", "get", "CONNECT"} {
						for an, auth := range auths {
							c := call{method: m, path: e.at("v", "g"), auth: auth, body: []byte(e.body)}
							st, hdr, body := do(t, srv, c)
							n.Add(1)
							checkNo500(t, fmt.Sprintf("%s %s as %s", c.method, c.path, an), c.method, st, hdr, body)
						}
					}
				}
			})

			t.Run("search queries", func(t *testing.T) {
				t.Parallel()
				for _, qs := range junkSearchQueries {
					for an, auth := range auths {
						c := call{method: "GET", path: "/v1/messages/search?" + qs, auth: auth}
						st, hdr, body := do(t, srv, c)
						n.Add(1)
						checkNo500(t, fmt.Sprintf("GET %.100s as %s", c.path, an), c.method, st, hdr, body)
					}
				}
			})

			t.Run("headers", func(t *testing.T) {
				t.Parallel()
				headers := []map[string]string{
					{"Content-Type": "text/plain"},
					{"Content-Type": "application/x-www-form-urlencoded"},
					{"Content-Type": "multipart/form-data; boundary=xyz"},
					{"Content-Type": "application/json; charset=latin1"},
					{"Content-Encoding": "gzip"},
					{"Accept": "text/html"},
					{"Accept-Encoding": "br"},
					{"Expect": "100-continue"},
					{"X-Forwarded-For": "not an ip"},
					{"Cookie": strings.Repeat("a=b; ", 1000)},
					{"Range": "bytes=0-1"},
					{"If-None-Match": "*"},
				}
				creds := badCreds(t, srv, "hdrcred")
				for _, e := range endpoints {
					for _, h := range headers {
						c := call{method: e.method, path: e.at("v", "g"), auth: bearer(serviceKey), header: h, body: []byte(e.body)}
						st, hdr, body := do(t, srv, c)
						n.Add(1)
						checkNo500(t, fmt.Sprintf("%s %s with %v", c.method, c.path, h), c.method, st, hdr, body)
					}
					if e.path == "/v1/login" || !strings.HasPrefix(e.path, "/v1/") {
						continue // no credentials needed
					}
					for _, cr := range creds {
						c := call{method: e.method, path: e.at("v", "g"), auth: cr.auth, body: []byte(e.body)}
						st, hdr, body := do(t, srv, c)
						n.Add(1)
						checkNo500(t, fmt.Sprintf("%s %s with %s credentials", c.method, c.path, cr.name), c.method, st, hdr, body)
					}
				}
			})

		}) // the group returns when its parallel subtests are done
		// The server is still well.
		srv.MustAPI(t, http.StatusOK, "GET", "/readyz", "", nil, nil)
		// (Group g may be gone: "methods" sends DELETE to /v1/groups/g too.)
		srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", serviceKey, map[string]any{"id": "after", "name": "After", "owner": "u"}, nil)
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/after", serviceKey, nil, nil)
		t.Logf("%d requests", n.Load())
	})
}

// TestMalformedRequests sends what no well-behaved client sends, over a raw
// connection: net/http refuses most of it before the API sees it, and
// nothing may yield a 5xx.
func TestMalformedRequests(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		addr := strings.TrimPrefix(srv.HTTPURL, "http://")
		auth := "Authorization: Bearer " + serviceKey + "\r\n"
		for _, raw := range []string{
			"GET /v1/users/%ZZ HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"GET /v1/users/%ZZ/tokens HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"GET /v1/users/a b HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"GET v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"GET * HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET http://x/v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"GET /v1/users/u HTTP/1.0\r\n" + auth + "\r\n",
			"GET /v1/users/u HTTP/9.9\r\nHost: x\r\n" + auth + "\r\n",
			"GET /v1/users/u\r\n\r\n",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: -1\r\n\r\n{}",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: abc\r\n\r\n{}",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: gzip\r\n\r\n{}",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
			"PUT /v1/users/u HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 100\r\n\r\n{}", // short body, then close
			"GET /v1/users/u HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01\x02\r\n\r\n",
			"GET /v1/users/u HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n",
			"GET /v1/users/u HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
			"GET /v1/users/u HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 5000) + "\r\n",
			"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", // a TLS hello (ended, so it is read)
			"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		} {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			if _, err := conn.Write([]byte(raw)); err != nil {
				conn.Close()
				t.Fatalf("write: %v", err)
			}
			if cw, ok := conn.(*net.TCPConn); ok && strings.Contains(raw, "Content-Length: 100\r\n") {
				// The body is short: end it. (Only here: net/http takes a
				// half-close for a client gone and cancels the request.)
				_ = cw.CloseWrite()
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			what := fmt.Sprintf("%.60q", raw)
			if err != nil && line == "" {
				continue // closed without an answer: fine
			}
			var proto string
			var st int
			if _, err := fmt.Sscanf(line, "%s %d", &proto, &st); err != nil {
				t.Errorf("%s: bad status line %q", what, line)
				continue
			}
			// net/http itself answers two protocol errors with a 5xx before
			// the API sees the request: an unknown Transfer-Encoding (501)
			// and an unsupported HTTP version (505). Those are the statuses
			// HTTP prescribes; anything else must stay below 500.
			if st >= 500 && !(st == 501 && strings.Contains(raw, "Transfer-Encoding: gzip")) &&
				!(st == 505 && (strings.Contains(raw, "HTTP/9.9") || strings.Contains(raw, "HTTP/2.0"))) {
				t.Errorf("%s: %s", what, strings.TrimSpace(line))
			}
		}
		srv.MustAPI(t, http.StatusOK, "GET", "/readyz", "", nil, nil)
	})
}

// The conversation list refuses what it cannot page by: bad limits,
// cursors that are not one it gave, bad updated_after; and GET /v1/unread
// as the service key needs the user named.
func TestConversationQueries(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		tok := srv.User(t, "q")
		srv.User(t, "r")
		for i := 0; i < 3; i++ {
			srv.MustAPI(t, http.StatusCreated, "POST", "/v1/messages", tok, map[string]any{"to": "r", "type": "text", "body": map[string]string{"text": "x"}}, nil)
		}
		for _, q := range []string{
			"limit=0", "limit=201", "limit=x", "limit=-1", "cursor=x", "cursor=%3D%3D", "cursor=dXx4fGQ6cTpy", "cursor=eHwxfGQ6cTpy",
			"cursor=cHwtMXxkOnE6cg", "cursor=cHwxfGQ6cjpx", "cursor=" + strings.Repeat("A", 400), "updated_after=yesterday", "updated_after=-5",
		} {
			st, body := srv.API(t, "GET", "/v1/conversations?"+q, tok, nil)
			wantError(t, "list with "+q, st, body, http.StatusBadRequest, "invalid")
		}
		st, body := srv.API(t, "GET", "/v1/unread", serviceKey, nil)
		wantError(t, "unread as the service key without user_id", st, body, http.StatusBadRequest, "invalid")
		var u struct {
			Total         int64            `json:"total"`
			Conversations map[string]int64 `json:"conversations"`
		}
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/unread?user_id=r", serviceKey, nil, &u)
		if u.Total != 3 || u.Conversations["d:q:r"] != 3 || len(u.Conversations) != 1 {
			t.Errorf("unread of r: %+v", u)
		}
		u.Total, u.Conversations = -1, nil
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/unread", tok, nil, &u)
		if u.Total != 0 || len(u.Conversations) != 0 {
			t.Errorf("unread of the sender: %+v", u)
		}
	})
}
