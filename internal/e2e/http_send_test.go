package e2e

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/internal/testutil"
)

// POST /v1/messages is the same pipeline as an MQTT send: same seq, same
// delivery and echo, same rules.
func TestHTTPSendSamePipeline(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, _, tc, a, b := pairInGroup(t, srv)

		var m msg
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "cid": "h1", "type": "text", "body": map[string]string{"text": "over http"}}, &m)
		if m.Seq != 1 || m.From != "alice" || m.ID == "" {
			t.Fatalf("sent %+v", m)
		}
		b.Await(t, wait, map[string]any{"kind": "msg", "id": m.ID, "seq": 1})
		a.Await(t, wait, map[string]any{"kind": "msg", "id": m.ID, "cid": "h1"})
		a.MustPublish(t, "im/u/bob", 1, "then mqtt")
		b.Await(t, wait, map[string]any{"seq": 2})

		// The service key sends as a named user, and as the system to a group.
		srv.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey, map[string]any{"from": "bob", "to": "alice", "type": "text", "body": map[string]string{"text": "backend says"}}, &m)
		a.Await(t, wait, map[string]any{"from": "bob", "seq": 3})
		srv.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey, map[string]any{"group": "g", "type": "system", "body": map[string]string{"text": "maintenance at 5"}}, &m)
		b.Await(t, wait, map[string]any{"conv": "g:g", "type": "system", "id": m.ID})

		// The same rules: non-members, system from users, impersonation.
		for _, tc := range []struct {
			name, tok string
			body      map[string]any
			status    int
			code      string
		}{
			{"non-member", tc, map[string]any{"group": "g", "type": "text", "body": map[string]string{"text": "x"}}, 403, "not_member"},
			{"system from user", ta, map[string]any{"group": "g", "type": "system", "body": map[string]string{"text": "x"}}, 403, "forbidden"},
			{"impersonation", ta, map[string]any{"from": "bob", "to": "carol", "type": "text", "body": map[string]string{"text": "x"}}, 403, "forbidden"},
			{"service without from", testutil.ServiceKey, map[string]any{"to": "carol", "type": "text", "body": map[string]string{"text": "x"}}, 400, "invalid"},
			{"unknown type", ta, map[string]any{"to": "bob", "type": "nope", "body": map[string]string{}}, 400, "invalid"},
			{"both targets", ta, map[string]any{"to": "bob", "group": "g", "type": "text", "body": map[string]string{"text": "x"}}, 400, "invalid"},
			{"unknown user", ta, map[string]any{"to": "nobody", "type": "text", "body": map[string]string{"text": "x"}}, 404, "not_found"},
		} {
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			srv.MustAPI(t, tc.status, "POST", "/v1/messages", tc.tok, tc.body, &e)
			if e.Error.Code != tc.code {
				t.Errorf("%s: code %q, want %q", tc.name, e.Error.Code, tc.code)
			}
		}
	})
}

// A persistent session subscribed to a group the user has since left (while
// offline) loses that subscription at its next session, and a group joined
// while offline is added.
func TestSessionSubscriptionsFollowMembership(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		group(t, srv, "old", "alice", "bob")
		group(t, srv, "new", "alice")
		persistent := func(o *mqtt.ClientOptions) { o.SetCleanSession(false) }
		b := srv.Connect(t, "bob", "phone", tb, persistent)
		b.Disconnect(100)
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/old/members/bob", ta, nil, nil)
		srv.MustAPI(t, 200, "POST", "/v1/groups/new/members", ta, map[string]any{"user_ids": []string{"bob"}}, nil)
		b2 := srv.Connect(t, "bob", "phone", tb, persistent)
		a := srv.Connect(t, "alice", "a", ta)
		a.MustPublish(t, "im/g/old", 1, "old group")
		a.MustPublish(t, "im/g/new", 1, "new group")
		b2.Await(t, wait, map[string]any{"conv": "g:new", "type": "text"})
		a.Await(t, wait, map[string]any{"conv": "g:old", "type": "text"}) // delivery to the old group has happened
		b2.Quiet(t, 200*time.Millisecond, map[string]any{"conv": "g:old", "type": "text"})
	})
}

// The HTTP door has the MQTT payload bound too.
func TestHTTPSendSizeLimit(t *testing.T) {
	srv := testutil.StartServer(t, "sqlite")
	ta := srv.User(t, "alice")
	srv.User(t, "bob")
	big := map[string]any{"to": "bob", "type": "custom", "body": map[string]string{"blob": strings.Repeat("x", 70<<10)}}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	srv.MustAPI(t, 413, "POST", "/v1/messages", ta, big, &e)
	if e.Error.Code != "too_large" {
		t.Fatalf("code %q", e.Error.Code)
	}
}
