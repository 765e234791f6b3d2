package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
)

// The HTTP JSON bodies through the real server (handler stack, chat
// service, SQLite): whatever the body, the answer is never a 5xx (a panic
// would be a 500), every refusal is the one error body with the status of
// its code, and what a 2xx stored is strict JSON. One server per fuzz
// process, so an iteration is one request.

// fuzzStatus is the code table of docs/http-api.md ("Errors").
var fuzzStatus = map[string]int{
	"invalid": 400, "unauthorized": 401, "forbidden": 403, "not_member": 403, "muted": 403, "blocked": 403,
	"not_found": 404, "conflict": 409, "too_large": 413, "rate_limited": 429,
}

type fuzzEnv struct {
	srv   *testutil.Server
	alice string // alice's token; bob and carol exist, group "team" is alice's with bob
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	srv := testutil.StartServer(f, "sqlite")
	e := &fuzzEnv{srv: srv, alice: srv.User(f, "alice")}
	srv.User(f, "bob")
	srv.User(f, "carol")
	srv.MustAPI(f, http.StatusCreated, "POST", "/v1/groups", e.alice, map[string]any{"id": "team", "name": "Team", "members": []string{"bob"}}, nil)
	return e
}

// call sends body and checks what every answer must be; it returns the
// status and body of a 2xx (0 otherwise).
func (e *fuzzEnv) call(t *testing.T, method, path string, service bool, body []byte) (int, []byte) {
	t.Helper()
	auth := bearer(e.alice)
	if service {
		auth = bearer(serviceKey)
	}
	st, hdr, out := do(t, e.srv, call{method: method, path: path, auth: auth, body: body})
	what := method + " " + path
	switch {
	case st >= 500:
		t.Fatalf("%s with body %q: status %d: %s", what, body, st, out)
	case st >= 300:
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s with body %q: %d with Content-Type %q", what, body, st, ct)
		}
		code, _ := errorOf(t, what, out)
		if want, ok := fuzzStatus[code]; !ok || want != st {
			t.Fatalf("%s with body %q: status %d with code %q", what, body, st, code)
		}
		if t.Failed() {
			t.FailNow()
		}
		return 0, nil
	case !json.Valid(out):
		t.Fatalf("%s with body %q: %d with a body that is not JSON: %q", what, body, st, out)
	}
	return st, out
}

// strictStored fails unless stored (when not empty) is strict JSON; when
// canonical, also that it is its own canonical form (what the chat service
// re-encoded).
func strictStored(t *testing.T, what string, stored []byte, canonical bool) {
	t.Helper()
	if len(stored) == 0 {
		return
	}
	if err := chat.CheckJSON(stored); err != nil {
		t.Fatalf("stored %s %q is not strict JSON: %v", what, stored, err)
	}
	if !canonical {
		return
	}
	if c, err := chat.CanonicalJSON(stored); err != nil || !bytes.Equal(c, stored) {
		t.Fatalf("stored %s %q is not re-encoded (canonical %q, %v)", what, stored, c, err)
	}
}

func FuzzSendMessageBody(f *testing.F) {
	for _, s := range []string{
		`{"to":"bob","cid":"f1","type":"text","body":{"text":"hi"}}`,
		`{"to":"bob","to":"carol","type":"text","body":{"text":"hi"}}`,
		`{"group":"team","type":"location","body":{"lat":48.85,"lng":2.29},"ext":{"k":[1,2]}}`,
		`{"to":"bob","type":"location","body":{"lat":1e999999,"lng":0}}`,
		`{"from":"alice","to":"bob","type":"custom","body":{"a":{"b":[1,{"c":null}]}},"mentions":["bob"]}`,
		`{"group":"team","type":"system","body":{"event":"note"}}`,
		`{ "type" : "text" , "to":"bob", "body" : { "z" : [ 1 , 2.50 ] , "text" : "a\u003cb" } , "ext" : { "y":1,"x":{} } }`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, service bool) {
		st, out := e.call(t, "POST", "/v1/messages", service, body)
		if st == 0 {
			return
		}
		var ev struct {
			Conv string          `json:"conv"`
			Seq  int64           `json:"seq"`
			Body json.RawMessage `json:"body"`
			Ext  json.RawMessage `json:"ext"`
		}
		mustJSON(t, out, &ev)
		ms, err := e.srv.Store.Messages(context.Background(), ev.Conv, store.MsgQuery{After: ev.Seq - 1, Limit: 1})
		if err != nil || len(ms) != 1 || ms[0].Seq != ev.Seq {
			t.Fatalf("message %s/%d answered %d but not found: %v %v", ev.Conv, ev.Seq, st, ms, err)
		}
		strictStored(t, "body", ms[0].Body, true)
		strictStored(t, "ext", ms[0].Ext, true)
		if !sameJSON(t, ms[0].Body, ev.Body) {
			t.Fatalf("answered body %s, stored %s", ev.Body, ms[0].Body)
		}
	})
}

func FuzzPutUserBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"Zoe","avatar":"https://x/a.png","ext":{"level":3}}`,
		`{"name":"a","name":"b"}`, `{"ext":{"k":1,"k":2}}`, `{"ext":[1e999]}`, `{"Name":"a","name":"b"}`,
		`{"disabled":false,"ext":null}`, ``,
	} {
		f.Add([]byte(s))
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if st, _ := e.call(t, "PUT", "/v1/users/zoe", true, body); st == 0 {
			return
		}
		u, err := e.srv.Store.User(context.Background(), "zoe")
		if err != nil {
			t.Fatalf("user answered 2xx but not stored: %v", err)
		}
		strictStored(t, "user ext", u.Ext, false)
	})
}

func FuzzCreateGroupBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"G","members":["bob"],"join_policy":"open","ext":{"topic":"x"}}`,
		`{"name":"G","name":"H"}`, `{"name":"G","members":["bob"],"members":["carol"]}`,
		`{"name":"G","ext":{"a":{"a":1,"a":2}}}`, `{"id":"team","name":"again"}`, `{"name":"G","owner":"bob"}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, service bool) {
		st, out := e.call(t, "POST", "/v1/groups", service, body)
		if st == 0 {
			return
		}
		var g struct {
			ID string `json:"id"`
		}
		mustJSON(t, out, &g)
		stored, err := e.srv.Store.Group(context.Background(), g.ID)
		if err != nil {
			t.Fatalf("group %q answered %d but not stored: %v", g.ID, st, err)
		}
		strictStored(t, "group ext", stored.Ext, false)
	})
}

func FuzzPutDeviceBody(f *testing.F) {
	for _, s := range []string{
		`{"platform":"ios","token":"` + "80f1c3a07c2b4e5f9d6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60" + `","topic":"com.example.chat"}`,
		`{"platform":"android","token":"dXJ:APA91b_x-y.z"}`, `{"platform":"huawei","token":"tök"}`,
		`{"platform":"ios","platform":"android","token":"abc"}`, `{"platform":"ios","token":"` + "ABCDEF0123456789" + "ABCDEF0123456789" + "ABCDEF0123456789" + "ABCDEF0123456789" + `","topic":"com.exämple"}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, service bool) {
		path := "/v1/devices/phone"
		if service {
			path += "?user_id=alice"
		}
		st, out := e.call(t, "PUT", path, service, body)
		if st == 0 {
			return
		}
		var d struct {
			Platform string `json:"platform"`
			Token    string `json:"token"`
			Topic    string `json:"topic"`
		}
		mustJSON(t, out, &d)
		for _, s := range []string{d.Token, d.Topic} {
			if len(s) > 255 {
				t.Fatalf("registered %+v: longer than the column", d)
			}
			for i := 0; i < len(s); i++ {
				if s[i] <= ' ' || s[i] > '~' {
					t.Fatalf("registered %+v: not printable ASCII", d)
				}
			}
		}
		if d.Token == "" {
			t.Fatalf("registered an empty token: %+v", d)
		}
	})
}
