package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/internal/token"
)

const serviceKey = testutil.ServiceKey

// eachServer runs f, in parallel with the other tests, against a fresh
// server of each backend.
func eachServer(t *testing.T, f func(t *testing.T, srv *testutil.Server)) {
	t.Parallel()
	testutil.EachServer(t, f)
}

// apiError is the error body of every refusal.
type apiError struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// errorOf checks that body is exactly {"error":{"code":"...","message":"..."}}
// with both non-empty, and returns code and message.
func errorOf(t testing.TB, what string, body []byte) (code, msg string) {
	t.Helper()
	var e apiError
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%s: body %q is not the error format (%v)", what, body, err)
		return "", ""
	}
	for _, leak := range []string{"goroutine ", ".go:", "panic", "sql:", "Error 1", "struct {"} {
		if strings.Contains(e.Error.Message, leak) {
			t.Errorf("%s: error message leaks internals (%q): %s", what, leak, e.Error.Message)
		}
	}
	return e.Error.Code, e.Error.Message
}

// wantError checks status, error format and (when not empty) code, and
// returns the message.
func wantError(t testing.TB, what string, st int, body []byte, wantSt int, wantCode string) string {
	t.Helper()
	if st != wantSt {
		t.Errorf("%s: status %d, want %d: %s", what, st, wantSt, body)
		return ""
	}
	code, msg := errorOf(t, what, body)
	if wantCode != "" && code != "" && code != wantCode {
		t.Errorf("%s: code %q, want %q (%s)", what, code, wantCode, msg)
	}
	return msg
}

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// call is one raw request: any method, any Authorization value (absent
// when auth is nil), extra headers, and a body sent with a length, or
// chunked.
type call struct {
	method, path string
	auth         *string
	header       map[string]string
	body         []byte
	chunked      bool
}

func bearer(tok string) *string { s := "Bearer " + tok; return &s }
func rawAuth(v string) *string  { return &v }

// do sends c without following redirects.
func do(t testing.TB, srv *testutil.Server, c call) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if c.body != nil {
		rd = bytes.NewReader(c.body)
		if c.chunked {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
	}
	req, err := http.NewRequest(c.method, srv.HTTPURL+c.path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	if c.auth != nil {
		req.Header.Set("Authorization", *c.auth)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", c.method, c.path, err)
	}
	testutil.CheckResponse(t, req, resp.StatusCode, resp.Header, out)
	return resp.StatusCode, resp.Header, out
}

// badPathIDs are ids, as written in a URL path, that are not
// [A-Za-z0-9_.@-]{1,64} once decoded.
var badPathIDs = []string{
	"a%20b", "a:b", strings.Repeat("a", 65), "%C3%A9", "a%2Fb", "a%00b", "a+b", "a*b", "a%25b",
	"%F0%9F%98%80", "a%0Ab", "a~b", "a,b", "a;b", "a%22b",
}

// badBodyIDs are ids, as sent in JSON, that are invalid.
var badBodyIDs = []string{"", "a b", "a:b", strings.Repeat("a", 65), "é", "a/b", "a\x00b", "😀", "a\nb", " a", "a+b"}

// cred is an Authorization header value that must not authenticate (nil:
// no header at all).
type cred struct {
	name string
	auth *string
}

// badCreds returns credentials that must all get 401. They are built for
// user subject, which exists, so that only the credential is at fault.
func badCreds(t testing.TB, srv *testutil.Server, subject string) []cred {
	t.Helper()
	good := srv.User(t, subject)
	s, err := token.NewSigner([]byte(srv.Config.Auth.JWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	other, err := token.NewSigner([]byte(strings.Repeat("x", 40)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mint := func(s *token.Signer, sub string, at time.Time, ttl time.Duration) string {
		tok, _, err := s.Mint(sub, at, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// Flip one character in the middle of the signature.
	sig := strings.LastIndex(good, ".") + 10
	flip := byte('A')
	if good[sig] == 'A' {
		flip = 'B'
	}
	tampered := good[:sig] + string(flip) + good[sig+1:]
	return []cred{
		{"missing", nil},
		{"empty", rawAuth("")},
		{"scheme only", rawAuth("Bearer")},
		{"scheme and space", rawAuth("Bearer   ")},
		{"basic", rawAuth("Basic " + base64.StdEncoding.EncodeToString([]byte(subject+":pw")))},
		{"service key without scheme", rawAuth(serviceKey)},
		{"token without scheme", rawAuth(good)},
		{"garbage", bearer("not-a-token")},
		{"three dots", bearer("a.b.c")},
		{"wrong service key", bearer(serviceKey + "x")},
		{"service key prefix", bearer(serviceKey[:len(serviceKey)-1])},
		{"unknown user", bearer(mint(s, "ghost-"+subject, now, time.Hour))},
		{"expired", bearer(mint(s, subject, now.Add(-3*time.Hour), time.Hour))},
		{"issued in the future", bearer(mint(s, subject, now.Add(time.Hour), 2*time.Hour))},
		{"foreign key", bearer(mint(other, subject, now, time.Hour))},
		{"alg none", bearer(unsignedJWT(subject, now))},
		{"tampered signature", bearer(tampered)},
		{"token with junk", bearer(good + "x")},
		{"huge", bearer(strings.Repeat("A", 16<<10))},
	}
}

// unsignedJWT is an "alg":"none" token for sub.
func unsignedJWT(sub string, now time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	h := enc([]byte(`{"alg":"none","typ":"JWT"}`))
	p := enc(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, now.Unix(), now.Add(time.Hour).Unix()))
	return h + "." + p + "."
}

// checkUnauthorized sends c with every bad credential and expects 401 in
// the error format, with a WWW-Authenticate challenge.
func checkUnauthorized(t *testing.T, srv *testutil.Server, creds []cred, c call) {
	t.Helper()
	for _, cr := range creds {
		c.auth = cr.auth
		st, hdr, body := do(t, srv, c)
		what := fmt.Sprintf("%s %s with %s credentials", c.method, c.path, cr.name)
		wantError(t, what, st, body, http.StatusUnauthorized, "unauthorized")
		if st == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", what, hdr.Get("WWW-Authenticate"))
		}
	}
}

// checkGetRefusals runs the refusals every GET {coll}/{id} shares: 404 for
// the unknown id (with tok and with the service key), 400 for each of
// badPathIDs, and 401 for every bad credential (built for user credUser) on
// GET {coll}/{known}.
func checkGetRefusals(t *testing.T, srv *testutil.Server, coll, tok, unknown, known, credUser string) {
	t.Helper()
	t.Run("unknown", func(t *testing.T) {
		for _, auth := range []string{tok, serviceKey} {
			st, body := srv.API(t, "GET", coll+"/"+unknown, auth, nil)
			wantError(t, "GET unknown", st, body, http.StatusNotFound, "not_found")
		}
	})
	t.Run("invalid ids", func(t *testing.T) {
		for _, id := range badPathIDs {
			st, body := srv.API(t, "GET", coll+"/"+id, tok, nil)
			wantError(t, "GET "+coll+"/"+id, st, body, http.StatusBadRequest, "invalid")
		}
	})
	t.Run("credentials", func(t *testing.T) {
		checkUnauthorized(t, srv, badCreds(t, srv, credUser), call{method: "GET", path: coll + "/" + known})
	})
}

// mustJSON decodes body into v or fails.
func mustJSON(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

// sameJSON reports whether a and b are the same JSON value (numbers
// compared as written).
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	norm := func(x []byte) string {
		dec := json.NewDecoder(bytes.NewReader(x))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON %q: %v", x, err)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	return norm(a) == norm(b)
}

// tokenResp is what the token endpoints return.
type tokenResp struct {
	Token      string `json:"token"`
	ExpiresAt  int64  `json:"expires_at"`
	ServerTime int64  `json:"server_time"`
}

// checkExpiry checks that expires_at (Unix ms) is about now+ttl, that
// server_time is about now, and that the token's own exp and sub claims
// agree.
func checkExpiry(t testing.TB, tr tokenResp, uid string, ttl time.Duration) {
	t.Helper()
	exp := time.UnixMilli(tr.ExpiresAt)
	if d := time.Since(time.UnixMilli(tr.ServerTime)); d < -10*time.Second || d > 10*time.Second {
		t.Errorf("server_time %d is %v off", tr.ServerTime, d)
	}
	want := time.Now().Add(ttl)
	if d := exp.Sub(want); d < -10*time.Second || d > 10*time.Second {
		t.Errorf("expires_at %v, want about %v (off by %v)", exp, want, d)
	}
	parts := strings.Split(tr.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tr.Token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var claims struct {
		Sub string `json:"sub"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}
	mustJSON(t, raw, &claims)
	if claims.Sub != uid {
		t.Errorf("sub = %q, want %q", claims.Sub, uid)
	}
	if got := time.Duration(claims.Exp-claims.Iat) * time.Second; got != ttl.Truncate(time.Second) {
		t.Errorf("exp - iat = %v, want %v", got, ttl)
	}
	if claims.Exp != exp.Unix() {
		t.Errorf("exp claim %d != expires_at %d", claims.Exp, exp.Unix())
	}
}
