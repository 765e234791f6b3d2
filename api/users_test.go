package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/testutil"
)

// userResp is the public view of a user.
type userResp struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Avatar    string          `json:"avatar"`
	Ext       json.RawMessage `json:"ext"`
	Disabled  bool            `json:"disabled"`
	CreatedAt int64           `json:"created_at"`
	UpdatedAt int64           `json:"updated_at"`
}

// badJSONBodies are bodies every JSON endpoint must refuse with 400.
var badJSONBodies = []string{
	`{"name":`, `{`, `}`, `[]`, `[{}]`, `"str"`, `5`, `true`, `{"a":1}}`, `{"a":1}]`, `{} {}`, `{}x`,
	`{'a':1}`, `{"a":1,}`, "\xff\xfe{}", "{\"name\":\"\xff\"}", "\ufeff{}", `{"a":01}`, `{"a":NaN}`,
	// Not UTF-8 inside raw JSON fields (MySQL refuses such text: was a 503).
	"{\"ext\":\"\xff\"}", "{\"ext\":{\"\xc3\x28\":1}}", "{\"name\":\"x\",\"ext\":[\"\xed\xa0\x80\"]}",
	strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
}

func TestPutUser(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {

		t.Run("create then partial updates keep fields", func(t *testing.T) {
			ext := `{"level":3,"tags":["a","ü"],"nested":{"ok":true,"n":null},"big":12345678901234567890,"f":1.5}`
			in := fmt.Sprintf(`{"name":"Zoë 🚀","avatar":"https://cdn.example/z.png","ext":%s}`, ext)
			st, hdr, body := do(t, srv, call{method: "PUT", path: "/v1/users/zoe", auth: bearer(serviceKey), body: []byte(in)})
			if st != http.StatusCreated {
				t.Fatalf("create: %d %s", st, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var u userResp
			mustJSON(t, body, &u)
			if u.ID != "zoe" || u.Name != "Zoë 🚀" || u.Avatar != "https://cdn.example/z.png" || u.Disabled || u.CreatedAt == 0 || u.UpdatedAt < u.CreatedAt {
				t.Fatalf("created %+v", u)
			}
			if !sameJSON(t, u.Ext, []byte(ext)) {
				t.Errorf("ext %s, want %s", u.Ext, ext)
			}
			for _, secret := range []string{"password", "hash", "tokens_after"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("response mentions %q: %s", secret, body)
				}
			}

			// Only the name: avatar and ext stay.
			var u2 userResp
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/zoe", serviceKey, map[string]any{"name": "Zoe"}, &u2)
			if u2.Name != "Zoe" || u2.Avatar != u.Avatar || !sameJSON(t, u2.Ext, []byte(ext)) || u2.CreatedAt != u.CreatedAt {
				t.Errorf("after name update %+v", u2)
			}
			// Only the avatar.
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/zoe", serviceKey, map[string]any{"avatar": ""}, &u2)
			if u2.Name != "Zoe" || u2.Avatar != "" || !sameJSON(t, u2.Ext, []byte(ext)) {
				t.Errorf("after avatar update %+v", u2)
			}
			// An empty body and {} change nothing but are updates.
			for _, b := range []string{"", "{}", "  \n", `{"unknown":1}`} {
				st, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/zoe", auth: bearer(serviceKey), body: []byte(b)})
				if st != http.StatusOK {
					t.Fatalf("PUT %q: %d %s", b, st, body)
				}
			}
			// What GET returns is what was stored.
			var g userResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/zoe", serviceKey, nil, &g)
			if g.Name != "Zoe" || g.Avatar != "" || !sameJSON(t, g.Ext, []byte(ext)) || g.CreatedAt != u.CreatedAt || g.Disabled {
				t.Errorf("GET %+v", g)
			}
		})

		t.Run("ext roundtrip and clear", func(t *testing.T) {
			for i, ext := range []string{
				`{"a":1}`, `[1,"two",{"three":3}]`, `"just a string"`, `42`, `true`,
				`{"unicode":"日本語 ✓ \u0000 \ud83d\ude00","esc":"\"\\/"}`,
				`{"deep":{"deeper":{"deepest":[[[{"x":-0.000001}]]]}}}`,
			} {
				uid := fmt.Sprintf("ext%d", i)
				var u userResp
				srv.MustAPI(t, http.StatusCreated, "PUT", "/v1/users/"+uid, serviceKey, fmt.Sprintf(`{"ext":%s}`, ext), &u)
				if !sameJSON(t, u.Ext, []byte(ext)) {
					t.Errorf("PUT ext %s: got %s", ext, u.Ext)
				}
				srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/"+uid, serviceKey, nil, &u)
				if !sameJSON(t, u.Ext, []byte(ext)) {
					t.Errorf("GET ext %s: got %s", ext, u.Ext)
				}
			}
			var u userResp
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/ext0", serviceKey, `{"ext":null}`, &u)
			if string(u.Ext) != "null" {
				t.Errorf("ext after null: %s", u.Ext)
			}
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/ext0", serviceKey, nil, &u)
			if string(u.Ext) != "null" {
				t.Errorf("GET ext after null: %s", u.Ext)
			}
		})

		t.Run("valid ids", func(t *testing.T) {
			for _, id := range []string{"a", "A-Z_0.9@x", strings.Repeat("z", 64), "user@example.com", "%2E", "%2E%2E", "..x"} {
				st, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/" + id, auth: bearer(serviceKey), body: []byte(`{"name":"n"}`)})
				if st != http.StatusCreated {
					t.Errorf("PUT %s: %d %s", id, st, body)
				}
			}
		})

		t.Run("limits", func(t *testing.T) {
			for i, c := range []struct {
				body string
				st   int
				code string
			}{
				{fmt.Sprintf(`{"name":%q}`, strings.Repeat("é", 100)), 201, ""},
				{fmt.Sprintf(`{"name":%q}`, strings.Repeat("é", 101)), 400, "invalid"},
				{fmt.Sprintf(`{"avatar":%q}`, strings.Repeat("a", 1024)), 201, ""},
				{fmt.Sprintf(`{"avatar":%q}`, strings.Repeat("a", 1025)), 400, "invalid"},
				{fmt.Sprintf(`{"ext":{"s":%q}}`, strings.Repeat("a", 4000)), 201, ""},
				{fmt.Sprintf(`{"ext":{"s":%q}}`, strings.Repeat("a", 4100)), 413, "too_large"},
				{`{"password":"1234567"}`, 400, "invalid"},
				{fmt.Sprintf(`{"password":%q}`, strings.Repeat("p", 73)), 400, "invalid"},
				{fmt.Sprintf(`{"password":%q}`, strings.Repeat("p", 72)), 201, ""},
				{`{"password":""}`, 201, ""},
			} {
				uid := fmt.Sprintf("lim%d", i)
				st, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/" + uid, auth: bearer(serviceKey), body: []byte(c.body)})
				if c.st < 300 {
					if st != c.st {
						t.Errorf("%.60s: %d %s", c.body, st, body)
					}
					continue
				}
				wantError(t, fmt.Sprintf("%.60s", c.body), st, body, c.st, c.code)
				// A refused create creates nothing.
				st, _ = srv.API(t, "GET", "/v1/users/"+uid, serviceKey, nil)
				if st != http.StatusNotFound {
					t.Errorf("%.60s: refused, yet GET %s = %d", c.body, uid, st)
				}
			}
		})

		t.Run("bad JSON", func(t *testing.T) {
			srv.User(t, "badjson")
			bodies := append([]string{`{"name":5}`, `{"avatar":true}`, `{"disabled":"yes"}`, `{"disabled":1}`,
				`{"password":1}`, `{"name":["a"]}`, `{"name":{}}`}, badJSONBodies...)
			for _, b := range bodies {
				st, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/badjson", auth: bearer(serviceKey), body: []byte(b)})
				wantError(t, fmt.Sprintf("PUT body %.40q", b), st, body, http.StatusBadRequest, "invalid")
			}
			var u userResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/badjson", serviceKey, nil, &u)
			if u.Name != "Badjson" {
				t.Errorf("refused updates changed the user: %+v", u)
			}
		})

		t.Run("messages name the field, not Go types", func(t *testing.T) {
			for b, want := range map[string]string{
				`[]`:             "JSON object",
				`{"name":5}`:     `"name" must be a string`,
				`{"name":`:       "invalid JSON",
				`{"a":1}}`:       "trailing",
				"\xff":           "UTF-8",
				`{"disabled":1}`: `"disabled" must be a boolean`,
			} {
				_, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/msgs", auth: bearer(serviceKey), body: []byte(b)})
				if _, msg := errorOf(t, b, body); !strings.Contains(msg, want) {
					t.Errorf("PUT %q: message %q, want it to contain %q", b, msg, want)
				}
			}
		})

		t.Run("invalid ids", func(t *testing.T) {
			for _, id := range badPathIDs {
				st, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/" + id, auth: bearer(serviceKey), body: []byte(`{"name":"x"}`)})
				wantError(t, "PUT /v1/users/"+id, st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("dot ids are refused, not redirected", func(t *testing.T) {
			for _, p := range []string{"/v1/users/.", "/v1/users/..", "/v1/users//x", "/v1/users/x/../y", "/v1/users/./x"} {
				st, hdr, body := do(t, srv, call{method: "PUT", path: p, auth: bearer(serviceKey), body: []byte(`{}`)})
				wantError(t, "PUT "+p, st, body, http.StatusBadRequest, "invalid")
				if loc := hdr.Get("Location"); loc != "" {
					t.Errorf("PUT %s redirects to %s", p, loc)
				}
			}
		})

		t.Run("credentials", func(t *testing.T) {
			creds := badCreds(t, srv, "putcred")
			checkUnauthorized(t, srv, creds, call{method: "PUT", path: "/v1/users/putcred-new", body: []byte(`{"name":"x"}`)})
			// A user token is not the service key, not even for itself.
			tok := srv.User(t, "putself")
			for _, target := range []string{"putself", "someone-else", "brand-new"} {
				st, body := srv.API(t, "PUT", "/v1/users/"+target, tok, map[string]any{"name": "hacked", "disabled": false})
				wantError(t, "PUT with user token", st, body, http.StatusForbidden, "forbidden")
			}
			var u userResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/putself", serviceKey, nil, &u)
			if u.Name == "hacked" {
				t.Error("user token changed its own user")
			}
			if st, _ := srv.API(t, "GET", "/v1/users/brand-new", serviceKey, nil); st != http.StatusNotFound {
				t.Errorf("user token created a user: %d", st)
			}
			// The auth scheme is case-insensitive (RFC 7235).
			st, _, body := do(t, srv, call{method: "PUT", path: "/v1/users/lowercase", auth: rawAuth("bearer " + serviceKey), body: []byte(`{}`)})
			if st != http.StatusCreated {
				t.Errorf("lowercase bearer: %d %s", st, body)
			}
		})
	})
}

func TestGetUser(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		alice := srv.User(t, "alice")
		srv.User(t, "bob")

		t.Run("any user and the service key read users", func(t *testing.T) {
			for _, tok := range []string{alice, serviceKey} {
				for _, uid := range []string{"alice", "bob"} {
					var u userResp
					srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/"+uid, tok, nil, &u)
					if u.ID != uid || u.Name != strings.ToUpper(uid[:1])+uid[1:] {
						t.Errorf("GET %s: %+v", uid, u)
					}
				}
			}
			// A body on GET is ignored.
			st, body := srv.API(t, "GET", "/v1/users/bob", alice, "{junk")
			if st != http.StatusOK {
				t.Errorf("GET with body: %d %s", st, body)
			}
		})

		t.Run("a password never shows", func(t *testing.T) {
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/bob", serviceKey, map[string]string{"password": "bobs secret"}, nil)
			st, body := srv.API(t, "GET", "/v1/users/bob", alice, nil)
			if st != http.StatusOK || strings.Contains(string(body), "password") || strings.Contains(string(body), "$2a$") {
				t.Errorf("GET: %d %s", st, body)
			}
		})

		checkGetRefusals(t, srv, "/v1/users", alice, "nobody", "alice", "getcred")
	})
}

func TestMintToken(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		srv.User(t, "alice")
		cfg := srv.Config.Auth

		t.Run("default ttl", func(t *testing.T) {
			for _, body := range []any{nil, "", "{}", `{"ttl_seconds":0}`, `{"ttl_seconds":null}`} {
				var tr tokenResp
				srv.MustAPI(t, http.StatusOK, "POST", "/v1/users/alice/tokens", serviceKey, body, &tr)
				checkExpiry(t, tr, "alice", cfg.TokenTTL)
			}
		})

		t.Run("ttl_seconds honoured and the token works", func(t *testing.T) {
			srv.User(t, "x")
			for _, secs := range []int64{1, 60, 3600, int64(cfg.MaxTTL / time.Second)} {
				var tr tokenResp
				srv.MustAPI(t, http.StatusOK, "POST", "/v1/users/alice/tokens", serviceKey, map[string]int64{"ttl_seconds": secs}, &tr)
				checkExpiry(t, tr, "alice", time.Duration(secs)*time.Second)
				if secs < 10 {
					continue // may be expired by now on a slow machine
				}
				var u userResp
				srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/x", tr.Token, nil, &u)
				if u.ID != "x" {
					t.Errorf("GET /v1/users/x with the token: %+v", u)
				}
			}
		})

		t.Run("ttl out of range", func(t *testing.T) {
			maxS := int64(cfg.MaxTTL / time.Second)
			for _, b := range []string{
				`{"ttl_seconds":-1}`, `{"ttl_seconds":-9223372036854775808}`,
				fmt.Sprintf(`{"ttl_seconds":%d}`, maxS+1),
				`{"ttl_seconds":9223372036854775807}`,
				// Overflows time.Duration to exactly one hour.
				fmt.Sprintf(`{"ttl_seconds":%d}`, int64(3600)+1<<55),
				`{"ttl_seconds":9223372036854775808}`, `{"ttl_seconds":1e999}`,
			} {
				st, body := srv.API(t, "POST", "/v1/users/alice/tokens", serviceKey, b)
				wantError(t, "mint "+b, st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("bad JSON", func(t *testing.T) {
			bodies := append([]string{`{"ttl_seconds":"60"}`, `{"ttl_seconds":1.5}`, `{"ttl_seconds":1e3}`,
				`{"ttl_seconds":[60]}`, `{"ttl_seconds":true}`, `{"ttl_seconds":`}, badJSONBodies...)
			for _, b := range bodies {
				st, body := srv.API(t, "POST", "/v1/users/alice/tokens", serviceKey, b)
				wantError(t, fmt.Sprintf("mint body %.40q", b), st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("unknown and disabled users", func(t *testing.T) {
			st, body := srv.API(t, "POST", "/v1/users/nobody/tokens", serviceKey, nil)
			wantError(t, "mint unknown", st, body, http.StatusNotFound, "not_found")
			srv.User(t, "off")
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/off", serviceKey, map[string]bool{"disabled": true}, nil)
			st, body = srv.API(t, "POST", "/v1/users/off/tokens", serviceKey, nil)
			wantError(t, "mint disabled", st, body, http.StatusForbidden, "forbidden")
		})

		t.Run("invalid ids", func(t *testing.T) {
			for _, id := range badPathIDs {
				st, body := srv.API(t, "POST", "/v1/users/"+id+"/tokens", serviceKey, nil)
				wantError(t, "mint "+id, st, body, http.StatusBadRequest, "invalid")
			}
			for _, p := range []string{"/v1/users/./tokens", "/v1/users/../tokens", "/v1/users//tokens"} {
				st, _, body := do(t, srv, call{method: "POST", path: p, auth: bearer(serviceKey)})
				if st == http.StatusOK || st >= 300 && st < 400 {
					t.Errorf("POST %s: %d %s", p, st, body)
				}
			}
		})

		t.Run("credentials", func(t *testing.T) {
			checkUnauthorized(t, srv, badCreds(t, srv, "mintcred"), call{method: "POST", path: "/v1/users/alice/tokens"})
			// A user token cannot mint, not even for itself.
			tok := srv.User(t, "mintself")
			for _, uid := range []string{"mintself", "alice"} {
				st, body := srv.API(t, "POST", "/v1/users/"+uid+"/tokens", tok, nil)
				wantError(t, "mint with user token", st, body, http.StatusForbidden, "forbidden")
			}
		})
	})
}

func TestLogin(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		srv.MustAPI(t, http.StatusCreated, "PUT", "/v1/users/pat", serviceKey, map[string]string{"name": "Pat", "password": "correct horse"}, nil)
		srv.User(t, "nopass")
		login := func(uid, pw string) (int, []byte) {
			return srv.API(t, "POST", "/v1/login", "", map[string]string{"user_id": uid, "password": pw})
		}

		t.Run("password login", func(t *testing.T) {
			st, body := login("pat", "correct horse")
			if st != http.StatusOK {
				t.Fatalf("login: %d %s", st, body)
			}
			var tr tokenResp
			mustJSON(t, body, &tr)
			checkExpiry(t, tr, "pat", srv.Config.Auth.TokenTTL)
			var u userResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/pat", tr.Token, nil, &u)
			// Login ignores whatever Authorization comes along.
			st, _, body = do(t, srv, call{method: "POST", path: "/v1/login", auth: bearer("junk"),
				body: []byte(`{"user_id":"pat","password":"correct horse"}`)})
			if st != http.StatusOK {
				t.Errorf("login with junk bearer: %d %s", st, body)
			}
		})

		t.Run("wrong credentials look alike", func(t *testing.T) {
			cases := [][2]string{
				{"pat", "wrong horse"}, {"pat", ""}, {"pat", "correct horse "}, {"pat", "Correct horse"},
				{"pat", strings.Repeat("x", 100)}, {"nobody", "correct horse"}, {"nopass", ""}, {"nopass", "anything at all"},
			}
			msgs := make([]string, len(cases))
			t.Run("cases", func(t *testing.T) { // returns when its parallel cases are done
				for i, c := range cases {
					t.Run(fmt.Sprint(i), func(t *testing.T) {
						t.Parallel() // bcrypt is slow
						st, body := login(c[0], c[1])
						msgs[i] = wantError(t, fmt.Sprintf("login %s/%q", c[0], c[1]), st, body, http.StatusUnauthorized, "unauthorized")
					})
				}
			})
			for _, m := range msgs[1:] {
				if m != msgs[0] {
					t.Errorf("messages differ: %q vs %q", m, msgs[0])
				}
			}
		})

		t.Run("password change and removal", func(t *testing.T) {
			srv.MustAPI(t, http.StatusCreated, "PUT", "/v1/users/chg", serviceKey, map[string]string{"password": "first password"}, nil)
			if st, body := login("chg", "first password"); st != http.StatusOK {
				t.Fatalf("login: %d %s", st, body)
			}
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/chg", serviceKey, map[string]string{"password": "second password"}, nil)
			if st, _ := login("chg", "first password"); st != http.StatusUnauthorized {
				t.Errorf("old password: %d", st)
			}
			if st, body := login("chg", "second password"); st != http.StatusOK {
				t.Errorf("new password: %d %s", st, body)
			}
			// A profile update without password keeps it.
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/chg", serviceKey, map[string]string{"name": "Changed"}, nil)
			if st, body := login("chg", "second password"); st != http.StatusOK {
				t.Errorf("after name update: %d %s", st, body)
			}
			srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/chg", serviceKey, map[string]string{"password": ""}, nil)
			for _, pw := range []string{"second password", ""} {
				if st, _ := login("chg", pw); st != http.StatusUnauthorized {
					t.Errorf("after removal, %q: %d", pw, st)
				}
			}
		})

		t.Run("invalid user ids", func(t *testing.T) {
			for _, id := range badBodyIDs {
				st, body := login(id, "correct horse")
				wantError(t, fmt.Sprintf("login %q", id), st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("bad JSON", func(t *testing.T) {
			bodies := append([]string{"", `{"user_id":5}`, `{"user_id":"pat","password":5}`, `{"password":["x"]}`,
				`{"user_id":null,"password":null}`, `null`, `{}`}, badJSONBodies...)
			for _, b := range bodies {
				st, body := srv.API(t, "POST", "/v1/login", "", b)
				wantError(t, fmt.Sprintf("login body %.40q", b), st, body, http.StatusBadRequest, "invalid")
			}
		})
	})
}

func TestDisabledUser(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		srv.MustAPI(t, http.StatusCreated, "PUT", "/v1/users/dan", serviceKey, map[string]string{"password": "dans password"}, nil)
		var tr tokenResp
		srv.MustAPI(t, http.StatusOK, "POST", "/v1/users/dan/tokens", serviceKey, nil, &tr)
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/dan", tr.Token, nil, nil)
		c := srv.Connect(t, "dan", "phone", tr.Token)

		var u userResp
		srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/dan", serviceKey, map[string]bool{"disabled": true}, &u)
		if !u.Disabled {
			t.Fatalf("not disabled: %+v", u)
		}
		// Existing tokens stop working everywhere.
		for _, p := range []string{"/v1/users/dan", "/v1/conversations"} {
			st, hdr, body := do(t, srv, call{method: "GET", path: p, auth: bearer(tr.Token)})
			wantError(t, "GET "+p+" with a disabled user's token", st, body, http.StatusUnauthorized, "unauthorized")
			if !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("WWW-Authenticate = %q", hdr.Get("WWW-Authenticate"))
			}
		}
		st, body := srv.API(t, "POST", "/v1/groups", tr.Token, map[string]string{"name": "g"})
		wantError(t, "create group", st, body, http.StatusUnauthorized, "unauthorized")
		// No new ones.
		st, body = srv.API(t, "POST", "/v1/login", "", map[string]string{"user_id": "dan", "password": "dans password"})
		wantError(t, "login while disabled", st, body, http.StatusUnauthorized, "unauthorized")
		st, body = srv.API(t, "POST", "/v1/users/dan/tokens", serviceKey, nil)
		wantError(t, "mint while disabled", st, body, http.StatusForbidden, "forbidden")
		// Live MQTT sessions are closed, and the token cannot reconnect.
		testutil.Eventually(t, 10*time.Second, func() error {
			if c.IsConnected() {
				return fmt.Errorf("dan/phone still connected")
			}
			return nil
		})
		if c2, err := srv.Dial("dan", "tablet", tr.Token); err == nil {
			c2.Disconnect(0)
			t.Error("a disabled user connected over MQTT")
		}
		// Others still see the user, flagged.
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/dan", serviceKey, nil, &u)
		if !u.Disabled {
			t.Errorf("GET: %+v", u)
		}
		// Disabling again is harmless; an unrelated update keeps it disabled.
		srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/dan", serviceKey, map[string]bool{"disabled": true}, nil)
		srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/dan", serviceKey, map[string]string{"name": "Dan"}, &u)
		if !u.Disabled {
			t.Errorf("name update re-enabled: %+v", u)
		}

		// Enabled again: the password works again and new tokens work.
		srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/dan", serviceKey, map[string]bool{"disabled": false}, &u)
		if u.Disabled {
			t.Fatalf("still disabled: %+v", u)
		}
		var tr2 tokenResp
		srv.MustAPI(t, http.StatusOK, "POST", "/v1/login", "", map[string]string{"user_id": "dan", "password": "dans password"}, &tr2)
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/dan", tr2.Token, nil, nil)
		srv.MustAPI(t, http.StatusOK, "POST", "/v1/users/dan/tokens", serviceKey, nil, &tr2)
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/dan", tr2.Token, nil, nil)

		// A user created disabled cannot log in.
		srv.MustAPI(t, http.StatusCreated, "PUT", "/v1/users/born-off", serviceKey, map[string]any{"password": "some password", "disabled": true}, nil)
		st, body = srv.API(t, "POST", "/v1/login", "", map[string]string{"user_id": "born-off", "password": "some password"})
		wantError(t, "login created disabled", st, body, http.StatusUnauthorized, "unauthorized")
	})
}

// POST /v1/token renews a user's token: a fresh one of the default lifetime
// for the same user, which authenticates; the service key has its own way;
// a bad or revoked token gets 401.
func TestRenewToken(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		tok := srv.User(t, "ren")
		var tr tokenResp
		srv.MustAPI(t, http.StatusOK, "POST", "/v1/token", tok, nil, &tr)
		checkExpiry(t, tr, "ren", srv.Config.Auth.TokenTTL)
		srv.MustAPI(t, http.StatusOK, "GET", "/v1/users/ren", tr.Token, nil, nil)
		st, body := srv.API(t, "POST", "/v1/token", serviceKey, nil)
		wantError(t, "renew with the service key", st, body, http.StatusForbidden, "forbidden")
		for _, c := range badCreds(t, srv, "ren") {
			var auth string
			if c.auth != nil {
				auth = *c.auth
			}
			st, _, body := do(t, srv, call{method: "POST", path: "/v1/token", auth: c.auth})
			wantError(t, "renew with "+c.name+" "+auth, st, body, http.StatusUnauthorized, "unauthorized")
		}
		// Disabling revokes: neither the old nor the renewed token renews.
		srv.MustAPI(t, http.StatusOK, "PUT", "/v1/users/ren", serviceKey, map[string]bool{"disabled": true}, nil)
		for _, tk := range []string{tok, tr.Token} {
			st, body := srv.API(t, "POST", "/v1/token", tk, nil)
			wantError(t, "renew of a disabled user", st, body, http.StatusUnauthorized, "")
		}
	})
}
