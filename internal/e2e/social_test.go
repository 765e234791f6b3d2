package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

type errorResp struct {
	Error struct{ Code, Message string } `json:"error"`
}

// wantCode calls the API and checks the status and the error code.
func wantCode(t *testing.T, srv *testutil.Server, status int, code, method, path, tok string, body any) {
	t.Helper()
	var e errorResp
	srv.MustAPI(t, status, method, path, tok, body, &e)
	if e.Error.Code != code {
		t.Errorf("%s %s: code %q (%s), want %q", method, path, e.Error.Code, e.Error.Message, code)
	}
}

type friendReq struct {
	UserID    string `json:"user_id"`
	Message   string `json:"message"`
	CreatedAt int64  `json:"created_at"`
}

type friendLists struct {
	Incoming []friendReq `json:"incoming"`
	Outgoing []friendReq `json:"outgoing"`
}

type friendItem struct {
	UserID string `json:"user_id"`
	Since  int64  `json:"since"`
}

func friendsOf(t *testing.T, srv *testutil.Server, tok string) []string {
	t.Helper()
	var fs []friendItem
	srv.MustAPI(t, 200, "GET", "/v1/friends", tok, nil, &fs)
	out := []string{}
	for _, f := range fs {
		if f.Since == 0 {
			t.Errorf("friend %+v without since", f)
		}
		out = append(out, f.UserID)
	}
	return out
}

// Friend requests, answers and unfriending over HTTP, each told to every
// device of both users as a friend event naming the other party.
func TestFriends(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb, tc := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		a, b, b2 := srv.Connect(t, "alice", "a", ta), srv.Connect(t, "bob", "b", tb), srv.Connect(t, "bob", "b2", tb)
		c := srv.Connect(t, "carol", "c", tc)

		wantCode(t, srv, 400, "invalid", "POST", "/v1/friends/requests", ta, map[string]any{"to": "alice"})
		wantCode(t, srv, 404, "not_found", "POST", "/v1/friends/requests", ta, map[string]any{"to": "nobody"})
		wantCode(t, srv, 400, "invalid", "POST", "/v1/friends/requests", ta, map[string]any{"to": "bob", "message": strings.Repeat("é", 201)})
		wantCode(t, srv, 400, "invalid", "POST", "/v1/friends/requests", ta, map[string]any{"to": "b:c"})

		var res struct {
			UserID    string `json:"user_id"`
			Status    string `json:"status"`
			Message   string `json:"message"`
			CreatedAt int64  `json:"created_at"`
			Since     int64  `json:"since"`
		}
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", ta, map[string]any{"to": "bob", "message": "hi, it's alice"}, &res)
		if res.UserID != "bob" || res.Status != "pending" || res.Message != "hi, it's alice" || res.CreatedAt == 0 {
			t.Fatalf("request: %+v", res)
		}
		want := map[string]any{"kind": "friend", "event": "request", "by": "alice", "message": "hi, it's alice"}
		b.Await(t, wait, with(want, "user", "alice"))
		b2.Await(t, wait, with(want, "user", "alice"))
		a.Await(t, wait, with(want, "user", "bob"))
		// A repeat changes nothing and tells nobody.
		srv.MustAPI(t, 200, "POST", "/v1/friends/requests", ta, map[string]any{"to": "bob", "message": "again"}, &res)
		if res.Status != "pending" || res.Message != "hi, it's alice" {
			t.Fatalf("repeat: %+v", res)
		}
		var lists friendLists
		srv.MustAPI(t, 200, "GET", "/v1/friends/requests", tb, nil, &lists)
		if len(lists.Incoming) != 1 || lists.Incoming[0].UserID != "alice" || lists.Incoming[0].Message != "hi, it's alice" || len(lists.Outgoing) != 0 {
			t.Fatalf("bob's requests: %+v", lists)
		}
		srv.MustAPI(t, 200, "GET", "/v1/friends/requests", ta, nil, &lists)
		if len(lists.Outgoing) != 1 || lists.Outgoing[0].UserID != "bob" || len(lists.Incoming) != 0 {
			t.Fatalf("alice's requests: %+v", lists)
		}

		// Accepting: both are friends, both are told.
		wantCode(t, srv, 404, "not_found", "POST", "/v1/friends/requests/carol", tb, map[string]any{"accept": true})
		wantCode(t, srv, 400, "invalid", "POST", "/v1/friends/requests/alice", tb, map[string]any{})
		var f friendItem
		srv.MustAPI(t, 200, "POST", "/v1/friends/requests/alice", tb, map[string]any{"accept": true}, &f)
		if f.UserID != "alice" || f.Since == 0 {
			t.Fatalf("accept: %+v", f)
		}
		acc := map[string]any{"kind": "friend", "event": "accepted", "by": "bob"}
		// bob's next event after the request is this one: the repeat sent none.
		if ev := b.Next(t, wait).Event(t); !testutil.Matches(ev, with(acc, "user", "alice")) {
			t.Fatalf("bob's event after the repeated request: %v, want the acceptance", ev)
		}
		a.Await(t, wait, with(acc, "user", "bob"))
		b2.Await(t, wait, with(acc, "user", "alice"))
		if got := friendsOf(t, srv, ta); strings.Join(got, ",") != "bob" {
			t.Fatalf("alice's friends: %v", got)
		}
		if got := friendsOf(t, srv, tb); strings.Join(got, ",") != "alice" {
			t.Fatalf("bob's friends: %v", got)
		}
		srv.MustAPI(t, 200, "GET", "/v1/friends/requests", tb, nil, &lists)
		if len(lists.Incoming)+len(lists.Outgoing) != 0 {
			t.Fatalf("requests left after accepting: %+v", lists)
		}
		wantCode(t, srv, 409, "conflict", "POST", "/v1/friends/requests", tb, map[string]any{"to": "alice"})

		// Rejecting removes the request and tells both.
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", tc, map[string]any{"to": "alice"}, nil)
		a.Await(t, wait, map[string]any{"kind": "friend", "event": "request", "user": "carol", "by": "carol"})
		srv.MustAPI(t, 204, "POST", "/v1/friends/requests/carol", ta, map[string]any{"accept": false}, nil)
		rej := map[string]any{"kind": "friend", "event": "rejected", "by": "alice"}
		c.Await(t, wait, with(rej, "user", "alice"))
		a.Await(t, wait, with(rej, "user", "carol"))
		wantCode(t, srv, 404, "not_found", "POST", "/v1/friends/requests/carol", ta, map[string]any{"accept": true})
		if got := friendsOf(t, srv, tc); len(got) != 0 {
			t.Fatalf("carol's friends: %v", got)
		}

		// Asking someone who asked you first is a yes.
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", tc, map[string]any{"to": "bob"}, nil)
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", tb, map[string]any{"to": "carol"}, &res)
		if res.Status != "friends" || res.UserID != "carol" || res.Since == 0 {
			t.Fatalf("crossing request: %+v", res)
		}
		c.Await(t, wait, map[string]any{"kind": "friend", "event": "accepted", "user": "bob", "by": "bob"})
		b.Await(t, wait, map[string]any{"kind": "friend", "event": "accepted", "user": "carol", "by": "bob"})

		// Unfriending tells both; a second time is not_found.
		srv.MustAPI(t, 204, "DELETE", "/v1/friends/alice", tb, nil, nil)
		rm := map[string]any{"kind": "friend", "event": "removed", "by": "bob"}
		a.Await(t, wait, with(rm, "user", "bob"))
		b.Await(t, wait, with(rm, "user", "alice"))
		wantCode(t, srv, 404, "not_found", "DELETE", "/v1/friends/bob", ta, nil)
		if got := friendsOf(t, srv, tb); strings.Join(got, ",") != "carol" {
			t.Fatalf("bob's friends: %v", got)
		}
	})
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{k: v}
	for mk, mv := range m {
		out[mk] = mv
	}
	return out
}

// Who may act on whose friends and blocks: a user token acts as its user
// (a ?user_id= of someone else does not change that), the service key for
// the user it names, nobody without a token.
func TestSocialPermissions(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.User(t, "carol")
		key := testutil.ServiceKey
		for _, p := range []struct{ method, path string }{
			{"POST", "/v1/friends/requests"}, {"GET", "/v1/friends/requests"}, {"POST", "/v1/friends/requests/bob"},
			{"GET", "/v1/friends"}, {"DELETE", "/v1/friends/bob"}, {"PUT", "/v1/blocks/bob"}, {"DELETE", "/v1/blocks/bob"}, {"GET", "/v1/blocks"},
		} {
			wantCode(t, srv, 401, "unauthorized", p.method, p.path, "", `{"to":"bob","accept":true}`)
			wantCode(t, srv, 400, "invalid", p.method, p.path, key, `{"to":"bob","accept":true}`)
			wantCode(t, srv, 404, "not_found", p.method, p.path+"?user_id=nobody", key, `{"to":"bob","accept":true}`)
		}
		// The service key acts for alice.
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests?user_id=alice", key, map[string]any{"to": "bob"}, nil)
		var lists friendLists
		srv.MustAPI(t, 200, "GET", "/v1/friends/requests?user_id=bob", key, nil, &lists)
		if len(lists.Incoming) != 1 || lists.Incoming[0].UserID != "alice" {
			t.Fatalf("bob's requests: %+v", lists)
		}
		// alice cannot answer for bob: with her token, ?user_id=bob still
		// means alice, who has no request from herself.
		wantCode(t, srv, 400, "invalid", "POST", "/v1/friends/requests/alice?user_id=bob", ta, map[string]any{"accept": true})
		srv.MustAPI(t, 200, "GET", "/v1/friends/requests?user_id=bob", ta, nil, &lists)
		if len(lists.Outgoing) != 1 || len(lists.Incoming) != 0 {
			t.Fatalf("alice's view with ?user_id=bob: %+v", lists)
		}
		// carol cannot answer a request that is bob's.
		wantCode(t, srv, 404, "not_found", "POST", "/v1/friends/requests/alice", srv.User(t, "carol"), map[string]any{"accept": true})
		srv.MustAPI(t, 200, "POST", "/v1/friends/requests/alice?user_id=bob", key, map[string]any{"accept": true}, nil)
		if got := friendsOf(t, srv, tb); strings.Join(got, ",") != "alice" {
			t.Fatalf("bob's friends: %v", got)
		}
		var fs []friendItem
		srv.MustAPI(t, 200, "GET", "/v1/friends?user_id=alice", key, nil, &fs)
		if len(fs) != 1 || fs[0].UserID != "bob" {
			t.Fatalf("alice's friends via the service key: %+v", fs)
		}
		// Blocks: the service key blocks for bob; alice's token sees only hers.
		srv.MustAPI(t, 204, "PUT", "/v1/blocks/carol?user_id=bob", key, nil, nil)
		var bs []struct {
			UserID    string `json:"user_id"`
			CreatedAt int64  `json:"created_at"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/blocks?user_id=bob", ta, nil, &bs)
		if len(bs) != 0 {
			t.Fatalf("alice read bob's blocks: %+v", bs)
		}
		srv.MustAPI(t, 200, "GET", "/v1/blocks", tb, nil, &bs)
		if len(bs) != 1 || bs[0].UserID != "carol" || bs[0].CreatedAt == 0 {
			t.Fatalf("bob's blocks: %+v", bs)
		}
		wantCode(t, srv, 404, "not_found", "DELETE", "/v1/blocks/carol", ta, nil)
		srv.MustAPI(t, 204, "DELETE", "/v1/blocks/carol?user_id=bob", key, nil, nil)
	})
}

// A block refuses the blocked user's 1:1 sends to the blocker on every door
// (MQTT 5 PUBACK 0x87, MQTT 3.1.1 acknowledged with the error event, HTTP
// 403, the service key sending as them too) with code blocked, and their
// friend requests; nothing refused is stored. The blocker may still send.
func TestBlocks(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		b := srv.Connect(t, "bob", "v3", tb)
		a := srv.Connect(t, "alice", "a", ta)
		b.MustPublish(t, "im/u/alice", 1, `{"cid":"before","type":"text","body":{"text":"before"}}`)
		a.Await(t, wait, map[string]any{"kind": "msg", "cid": "before"})

		wantCode(t, srv, 400, "invalid", "PUT", "/v1/blocks/alice", ta, nil)
		wantCode(t, srv, 404, "not_found", "PUT", "/v1/blocks/nobody", ta, nil)
		wantCode(t, srv, 404, "not_found", "DELETE", "/v1/blocks/bob", ta, nil)
		// Blocking drops the pending request between them.
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", tb, map[string]any{"to": "alice"}, nil)
		srv.MustAPI(t, 204, "PUT", "/v1/blocks/bob", ta, nil, nil)
		srv.MustAPI(t, 204, "PUT", "/v1/blocks/bob", ta, nil, nil) // idempotent
		var lists friendLists
		srv.MustAPI(t, 200, "GET", "/v1/friends/requests", ta, nil, &lists)
		if len(lists.Incoming) != 0 {
			t.Fatalf("request survived the block: %+v", lists)
		}
		wantCode(t, srv, 403, "blocked", "POST", "/v1/friends/requests", tb, map[string]any{"to": "alice"})

		v5 := connectRaw(t, srv, 5, "bob", "v5", tb)
		v5.Write(publish("im/u/alice", 1, 7, `{"cid":"v5","type":"text","body":{"text":"blocked v5"}}`))
		if ack := v5.Expect(packets.Puback, wait); ack.ReasonCode != 0x87 {
			t.Fatalf("MQTT 5 blocked send: PUBACK 0x%02x, want 0x87", ack.ReasonCode)
		}
		b.Await(t, wait, map[string]any{"kind": "error", "cid": "v5", "code": "blocked", "device": "v5"})
		b.MustPublish(t, "im/u/alice", 1, `{"cid":"v3","type":"text","body":{"text":"blocked v3"}}`) // acknowledged
		b.Await(t, wait, map[string]any{"kind": "error", "cid": "v3", "code": "blocked", "device": "v3"})
		wantCode(t, srv, 403, "blocked", "POST", "/v1/messages", tb, map[string]any{"to": "alice", "type": "text", "body": map[string]string{"text": "http"}})
		wantCode(t, srv, 403, "blocked", "POST", "/v1/messages", testutil.ServiceKey, map[string]any{"from": "bob", "to": "alice", "type": "text", "body": map[string]string{"text": "backend"}})
		// Notes to self and the blocker's own sends pass.
		b.MustPublish(t, "im/u/bob", 1, `{"cid":"self","type":"text","body":{"text":"note"}}`)
		b.Await(t, wait, map[string]any{"kind": "msg", "cid": "self"})
		a.MustPublish(t, "im/u/bob", 1, `{"cid":"from-a","type":"text","body":{"text":"from alice"}}`)
		b.Await(t, wait, map[string]any{"kind": "msg", "cid": "from-a"})
		if texts := historyTexts(t, srv, ta, "d:alice:bob"); strings.Join(texts, ",") != "before,from alice" {
			t.Fatalf("stored %q", texts)
		}

		var bs []struct {
			UserID string `json:"user_id"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/blocks", ta, nil, &bs)
		if len(bs) != 1 || bs[0].UserID != "bob" {
			t.Fatalf("alice's blocks: %+v", bs)
		}
		// Unblocking applies at once.
		srv.MustAPI(t, 204, "DELETE", "/v1/blocks/bob", ta, nil, nil)
		b.MustPublish(t, "im/u/alice", 1, `{"cid":"after","type":"text","body":{"text":"after"}}`)
		a.Await(t, wait, map[string]any{"kind": "msg", "cid": "after"})
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", tb, map[string]any{"to": "alice"}, nil)
	})
}

// chat.direct_policy, each value: who may send 1:1, on both doors.
func TestDirectPolicy(t *testing.T) {
	for _, policy := range []string{config.DirectAnyone, config.DirectFriends, config.DirectFriendsOrSharedGroup} {
		t.Run(policy, func(t *testing.T) {
			testutil.EachBackend(t, func(t *testing.T, backend string) {
				srv := testutil.StartServer(t, backend, func(c *config.Config) { c.Chat.DirectPolicy = policy })
				ta, tb, td := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "dave")
				srv.User(t, "carol")
				// alice–bob are friends, alice–carol share a group, alice–dave
				// shared one that was left.
				srv.MustAPI(t, 201, "POST", "/v1/friends/requests", ta, map[string]any{"to": "bob"}, nil)
				srv.MustAPI(t, 200, "POST", "/v1/friends/requests/alice", tb, map[string]any{"accept": true}, nil)
				group(t, srv, "g", "alice", "carol", "dave")
				srv.MustAPI(t, 204, "DELETE", "/v1/groups/g/members/dave", td, nil, nil)
				a := srv.Connect(t, "alice", "a", ta)
				v5 := connectRaw(t, srv, 5, "alice", "v5", ta)
				allowed := map[string]bool{
					"bob":   true,
					"carol": policy != config.DirectFriends,
					"dave":  policy == config.DirectAnyone,
				}
				var id uint16
				for _, to := range []string{"bob", "carol", "dave"} {
					id++
					cid := "v5-" + to
					v5.Write(publish("im/u/"+to, 1, id, fmt.Sprintf(`{"cid":%q,"type":"text","body":{"text":"hi"}}`, cid)))
					ack := v5.Expect(packets.Puback, wait)
					st, body := srv.API(t, "POST", "/v1/messages", ta, map[string]any{"to": to, "type": "text", "body": map[string]string{"text": "http"}})
					if allowed[to] {
						if ack.ReasonCode != 0 || st != 201 {
							t.Errorf("to %s: PUBACK 0x%02x, HTTP %d %s; want both to pass", to, ack.ReasonCode, st, body)
						}
						a.Await(t, wait, map[string]any{"kind": "msg", "cid": cid})
						continue
					}
					if ack.ReasonCode != 0x87 || st != 403 || !strings.Contains(string(body), `"forbidden"`) {
						t.Errorf("to %s: PUBACK 0x%02x, HTTP %d %s; want 0x87 and 403 forbidden", to, ack.ReasonCode, st, body)
					}
					a.Await(t, wait, map[string]any{"kind": "error", "cid": cid, "code": "forbidden"})
				}
				// The other way round is the same policy; notes to self always pass.
				want := 201
				if policy != config.DirectAnyone {
					want = 403
				}
				srv.MustAPI(t, want, "POST", "/v1/messages", td, map[string]any{"to": "alice", "type": "text", "body": map[string]string{"text": "x"}}, nil)
				srv.MustAPI(t, 201, "POST", "/v1/messages", td, map[string]any{"to": "dave", "type": "text", "body": map[string]string{"text": "note"}}, nil)
				if policy == config.DirectAnyone {
					return
				}
				// Changes apply at once: unfriending closes, a join opens.
				srv.MustAPI(t, 204, "DELETE", "/v1/friends/bob", ta, nil, nil)
				srv.MustAPI(t, 403, "POST", "/v1/messages", tb, map[string]any{"to": "alice", "type": "text", "body": map[string]string{"text": "x"}}, nil)
				srv.MustAPI(t, 200, "POST", "/v1/groups/g/members", ta, map[string]any{"user_ids": []string{"dave"}}, nil)
				want = 201
				if policy == config.DirectFriends {
					want = 403
				}
				srv.MustAPI(t, want, "POST", "/v1/messages", td, map[string]any{"to": "alice", "type": "text", "body": map[string]string{"text": "back in g"}}, nil)
			})
		})
	}
}

// Presence is visible between friends who share no conversation.
func TestFriendsPresence(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.Connect(t, "bob", "phone", tb)
		type presence map[string]struct {
			Online bool `json:"online"`
		}
		var pres presence
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=bob", ta, nil, &pres)
		if _, ok := pres["bob"]; ok {
			t.Fatalf("a stranger's presence shown: %+v", pres)
		}
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", ta, map[string]any{"to": "bob"}, nil)
		pres = nil
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=bob", ta, nil, &pres)
		if _, ok := pres["bob"]; ok {
			t.Fatalf("presence shown on a mere request: %+v", pres)
		}
		srv.MustAPI(t, 200, "POST", "/v1/friends/requests/alice", tb, map[string]any{"accept": true}, nil)
		pres = nil
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=bob", ta, nil, &pres)
		if !pres["bob"].Online {
			t.Fatalf("a friend's presence: %+v", pres)
		}
		pres = nil
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=alice", tb, nil, &pres)
		if _, ok := pres["alice"]; !ok {
			t.Fatalf("friendship is symmetric: %+v", pres)
		}
		srv.MustAPI(t, 204, "DELETE", "/v1/friends/bob", ta, nil, nil)
		pres = nil
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=bob", ta, nil, &pres)
		if _, ok := pres["bob"]; ok {
			t.Fatalf("presence after unfriending: %+v", pres)
		}
	})
}

// Friend requests are rate-limited per user (not for the service key), and
// the caps on pending requests, friends and blocks hold.
func TestSocialLimits(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.Limits.FriendRequestsPerHour, c.Limits.FriendRequestBurst = 0.01, 3
			c.Chat.MaxFriendRequests, c.Chat.MaxFriends, c.Chat.MaxBlocks = 2, 1, 1
		})
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		for _, u := range []string{"u1", "u2", "u3"} {
			srv.User(t, u)
		}
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", ta, map[string]any{"to": "u1"}, nil)
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests", ta, map[string]any{"to": "u2"}, nil)
		wantCode(t, srv, 403, "forbidden", "POST", "/v1/friends/requests", ta, map[string]any{"to": "u3"}) // max_friend_requests
		wantCode(t, srv, 429, "rate_limited", "POST", "/v1/friends/requests", ta, map[string]any{"to": "u3"})
		srv.MustAPI(t, 200, "POST", "/v1/friends/requests/alice?user_id=u1", testutil.ServiceKey, map[string]any{"accept": true}, nil)
		// alice has max_friends (1): u2 cannot accept hers, bob cannot ask.
		wantCode(t, srv, 403, "forbidden", "POST", "/v1/friends/requests/alice?user_id=u2", testutil.ServiceKey, map[string]any{"accept": true})
		srv.MustAPI(t, 201, "POST", "/v1/friends/requests?user_id=bob", testutil.ServiceKey, map[string]any{"to": "u3"}, nil)
		srv.MustAPI(t, 204, "PUT", "/v1/blocks/u3", tb, nil, nil)
		srv.MustAPI(t, 204, "PUT", "/v1/blocks/u3", tb, nil, nil) // a repeat is within the cap
		wantCode(t, srv, 403, "forbidden", "PUT", "/v1/blocks/u2", tb, nil)
	})
}
