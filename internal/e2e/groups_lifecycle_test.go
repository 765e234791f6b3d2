package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// apiError is the error code of an error body ("" when none).
func apiError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// expect calls the API and fails unless the answer has status st and, for
// an error, code.
func expect(t *testing.T, srv *testutil.Server, st int, code, method, path, tok string, body any) []byte {
	t.Helper()
	got, out := srv.API(t, method, path, tok, body)
	if got != st || (code != "" && apiError(t, out) != code) {
		t.Fatalf("%s %s: %d %s, want %d %s", method, path, got, out, st, code)
	}
	return out
}

type groupView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Notice     string `json:"notice"`
	Owner      string `json:"owner"`
	JoinPolicy string `json:"join_policy"`
	MuteAll    bool   `json:"mute_all"`
	Members    []struct {
		UserID string `json:"user_id"`
		Role   string `json:"role"`
	} `json:"members"`
}

func (g groupView) role(uid string) string {
	for _, m := range g.Members {
		if m.UserID == uid {
			return m.Role
		}
	}
	return ""
}

// memberPages reads GET /v1/groups/{gid}/members page by page (limit n),
// following X-Next-Cursor, and returns the user ids in order and the
// number of pages.
func memberPages(t *testing.T, srv *testutil.Server, tok, gid string, n int) ([]string, int) {
	t.Helper()
	var ids []string
	cursor, pages := "", 0
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/groups/%s/members?limit=%d&cursor=%s", srv.HTTPURL, gid, n, cursor), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		st, hdr, body := srv.Do(t, req)
		if st != 200 {
			t.Fatalf("members page: %d %s", st, body)
		}
		var page []struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page) > n {
			t.Fatalf("page of %d members, limit %d", len(page), n)
		}
		pages++
		for _, m := range page {
			ids = append(ids, m.UserID)
		}
		cursor = hdr.Get("X-Next-Cursor")
		if cursor == "" {
			return ids, pages
		}
	}
}

// systemEvents lists the events of the system messages in a history.
func systemEvents(t *testing.T, h []msg) []string {
	t.Helper()
	var out []string
	for _, m := range h {
		if m.Type != "system" {
			continue
		}
		var b struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(m.Body, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Event)
	}
	return out
}

// A group's whole life, over HTTP and as connected devices see it: every
// change is a group event to the right topics and a system message in
// history, and live subscriptions follow membership.
func TestGroupLifecycle(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		users := []string{"olga", "adam", "bob", "carol", "dave", "erin", "finn", "gus"}
		tok := map[string]string{}
		dev := map[string]*testutil.Client{}
		for _, u := range users {
			tok[u] = srv.User(t, u)
		}
		srv.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey,
			map[string]any{"id": "life", "name": "Life", "owner": "olga", "members": []string{"adam", "bob"}}, nil)
		for _, u := range users {
			dev[u] = srv.Connect(t, u, "d", tok[u])
		}
		o, a, b, c, d, e, f, g := dev["olga"], dev["adam"], dev["bob"], dev["carol"], dev["dave"], dev["erin"], dev["finn"], dev["gus"]
		ev := func(event string, more ...any) map[string]any {
			m := map[string]any{"kind": "group", "group": "life", "event": event}
			for i := 0; i+1 < len(more); i += 2 {
				m[more[i].(string)] = more[i+1]
			}
			return m
		}

		// Invite: a plain member may add under "invite"; the joiners' devices
		// are subscribed before their "joined" events arrive.
		srv.MustAPI(t, 200, "POST", "/v1/groups/life/members", tok["bob"], map[string]any{"user_ids": []string{"carol", "dave"}}, nil)
		for _, cl := range []*testutil.Client{o, c, d} {
			cl.Await(t, wait, ev("joined", "user", "carol", "by", "bob"))
			cl.Await(t, wait, ev("joined", "user", "dave", "by", "bob"))
		}
		// Under "invite", joining by oneself is forbidden.
		expect(t, srv, 403, "forbidden", "POST", "/v1/groups/life/join", tok["gus"], nil)

		// Promote adam.
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/life/members/adam", tok["olga"], map[string]any{"role": "admin"}, nil)
		b.Await(t, wait, ev("role", "user", "adam", "by", "olga"))

		// Settings by an admin: the event carries the changed fields only.
		var gv groupView
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/life", tok["adam"],
			map[string]any{"name": "Life", "notice": "be kind", "join_policy": "approval"}, &gv)
		if gv.Notice != "be kind" || gv.JoinPolicy != "approval" || gv.Name != "Life" || len(gv.Members) != 5 {
			t.Fatalf("PATCH answer %+v", gv)
		}
		up := c.Await(t, wait, ev("updated", "by", "adam"))
		if data, _ := up["data"].(map[string]any); len(data) != 2 || data["notice"] != "be kind" || data["join_policy"] != "approval" {
			t.Fatalf("updated event %v, want data {notice, join_policy}", up)
		}
		// No change: no event, no message (the seq does not move).
		before := len(history(t, srv, tok["olga"], "g:life", 0))
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/life", tok["olga"], map[string]any{"notice": "be kind"}, &gv)
		if n := len(history(t, srv, tok["olga"], "g:life", 0)); n != before {
			t.Fatalf("a PATCH that changed nothing stored a message (%d -> %d)", before, n)
		}
		expect(t, srv, 403, "forbidden", "PATCH", "/v1/groups/life", tok["bob"], map[string]any{"notice": "mine"})
		expect(t, srv, 403, "not_member", "PATCH", "/v1/groups/life", tok["gus"], map[string]any{"notice": "mine"})
		// Under "approval" a plain member no longer adds.
		expect(t, srv, 403, "forbidden", "POST", "/v1/groups/life/members", tok["bob"], map[string]any{"user_ids": []string{"gus"}})

		// Join by request: the owner's and admins' inboxes are told, once.
		expect(t, srv, 202, "", "POST", "/v1/groups/life/join", tok["erin"], map[string]any{"message": "let me in"})
		for _, cl := range []*testutil.Client{o, a} {
			r := cl.Await(t, wait, ev("requested", "user", "erin"))
			if r["data"].(map[string]any)["message"] != "let me in" {
				t.Fatalf("requested event %v", r)
			}
		}
		expect(t, srv, 202, "", "POST", "/v1/groups/life/join", tok["erin"], nil) // again: idempotent
		expect(t, srv, 202, "", "POST", "/v1/groups/life/join", tok["finn"], nil)
		// erin's repeat was no second request: olga's next one is finn's.
		awaitOn(t, o, "im/u/olga", ev("requested", "user", "finn"), ev("requested", "user", "erin"))
		var reqs []struct {
			UserID    string `json:"user_id"`
			Message   string `json:"message"`
			CreatedAt int64  `json:"created_at"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/groups/life/requests", tok["adam"], nil, &reqs)
		if len(reqs) != 2 || reqs[0].UserID != "erin" || reqs[0].Message != "let me in" || reqs[1].UserID != "finn" || reqs[0].CreatedAt == 0 {
			t.Fatalf("requests %+v", reqs)
		}
		expect(t, srv, 403, "forbidden", "GET", "/v1/groups/life/requests", tok["bob"], nil)
		expect(t, srv, 409, "conflict", "POST", "/v1/groups/life/join", tok["bob"], nil)

		// Approve erin: she joins, and her device sees its own "joined".
		var mem struct {
			UserID  string `json:"user_id"`
			Role    string `json:"role"`
			JoinSeq int64  `json:"join_seq"`
		}
		srv.MustAPI(t, 200, "POST", "/v1/groups/life/requests/erin", tok["olga"], map[string]any{"approve": true}, &mem)
		if mem.UserID != "erin" || mem.Role != "member" || mem.JoinSeq == 0 {
			t.Fatalf("approved membership %+v", mem)
		}
		e.Await(t, wait, ev("joined", "user", "erin", "by", "olga"))
		// Reject finn: his inbox is told; he is no member.
		expect(t, srv, 204, "", "POST", "/v1/groups/life/requests/finn", tok["adam"], map[string]any{"approve": false})
		f.Await(t, wait, ev("rejected", "user", "finn", "by", "adam"))
		srv.MustAPI(t, 200, "GET", "/v1/groups/life/requests", tok["olga"], nil, &reqs)
		if len(reqs) != 0 {
			t.Fatalf("requests after answers: %+v", reqs)
		}
		expect(t, srv, 404, "not_found", "POST", "/v1/groups/life/requests/finn", tok["olga"], map[string]any{"approve": true})
		expect(t, srv, 403, "forbidden", "GET", "/v1/groups/life/members", tok["finn"], nil)

		// Members, paged two at a time: owner, admin, then by join time.
		ids, pages := memberPages(t, srv, tok["bob"], "life", 2)
		if want := []string{"olga", "adam", "bob", "carol", "dave", "erin"}; !slices.Equal(ids, want) || pages != 3 {
			t.Fatalf("paged members %v in %d pages, want %v in 3", ids, pages, want)
		}

		// Mute one: bob's send is refused.
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/life/members/bob", tok["adam"], map[string]any{"muted_until": time.Now().Add(time.Hour).UnixMilli()}, nil)
		c.Await(t, wait, ev("muted", "user", "bob", "by", "adam"))
		b.MustPublish(t, "im/g/life", 1, `{"cid":"b1","type":"text","body":{"text":"hey"}}`)
		b.Await(t, wait, map[string]any{"kind": "error", "cid": "b1", "code": "muted"})

		// Mute all: owner and admins still speak, members do not.
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/life", tok["olga"], map[string]any{"mute_all": true}, nil)
		c.Await(t, wait, ev("updated", "by", "olga", "data", map[string]any{"mute_all": true}))
		c.MustPublish(t, "im/g/life", 1, `{"cid":"c1","type":"text","body":{"text":"hello?"}}`)
		c.Await(t, wait, map[string]any{"kind": "error", "cid": "c1", "code": "muted"})
		a.MustPublish(t, "im/g/life", 1, `{"cid":"a1","type":"text","body":{"text":"admins speak"}}`)
		o.MustPublish(t, "im/g/life", 1, `{"cid":"o1","type":"text","body":{"text":"owners too"}}`)
		c.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:life", "cid": "a1"})
		c.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:life", "cid": "o1"})
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/life", tok["olga"], map[string]any{"mute_all": false}, nil)
		c.Await(t, wait, ev("updated", "data", map[string]any{"mute_all": false}))

		// Transfer to adam: olga becomes an admin, adam the owner.
		expect(t, srv, 403, "forbidden", "POST", "/v1/groups/life/transfer", tok["adam"], map[string]any{"user_id": "adam"})
		expect(t, srv, 404, "not_found", "POST", "/v1/groups/life/transfer", tok["olga"], map[string]any{"user_id": "gus"})
		srv.MustAPI(t, 200, "POST", "/v1/groups/life/transfer", tok["olga"], map[string]any{"user_id": "adam"}, &gv)
		if gv.Owner != "adam" || gv.role("adam") != "owner" || gv.role("olga") != "admin" {
			t.Fatalf("after transfer %+v", gv)
		}
		b.Await(t, wait, ev("transferred", "user", "adam", "by", "olga"))
		expect(t, srv, 403, "forbidden", "DELETE", "/v1/groups/life", tok["olga"], nil)

		// Kick dave: his inbox is told, then nothing more from the group
		// reaches his connected device.
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/life/members/dave", tok["adam"], nil, nil)
		d.Await(t, wait, ev("kicked", "user", "dave", "by", "adam"))
		o.MustPublish(t, "im/g/life", 1, `{"cid":"o2","type":"text","body":{"text":"after the kick"}}`)
		c.Await(t, wait, map[string]any{"kind": "msg", "cid": "o2"})
		quietOn(t, d, "im/g/life", 200*time.Millisecond)

		// carol leaves.
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/life/members/carol", tok["carol"], nil, nil)
		c.Await(t, wait, ev("left", "user", "carol"))
		o.Await(t, wait, ev("left", "user", "carol"))

		// Dissolve: every member's device gets the system message on the
		// group topic and the event on its inbox; afterwards the group is
		// gone but for history.
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/life", tok["adam"], nil, nil)
		for _, cl := range []*testutil.Client{o, a, b, e} {
			awaitOn(t, cl, "im/g/life", map[string]any{"kind": "msg", "conv": "g:life", "type": "system"}, nil)
			awaitOn(t, cl, "im/g/life", ev("dissolved", "by", "adam"), nil)
			awaitOn(t, cl, "im/u/"+cl.ID[:len(cl.ID)-2], ev("dissolved", "by", "adam"), nil)
		}
		o.MustPublish(t, "im/g/life", 1, `{"cid":"o3","type":"text","body":{"text":"anyone?"}}`)
		o.Await(t, wait, map[string]any{"kind": "error", "cid": "o3", "code": "not_found"})
		expect(t, srv, 404, "not_found", "POST", "/v1/messages", testutil.ServiceKey,
			map[string]any{"group": "life", "type": "system", "body": map[string]any{"text": "x"}})
		expect(t, srv, 404, "not_found", "GET", "/v1/groups/life", tok["olga"], nil)
		expect(t, srv, 404, "not_found", "GET", "/v1/groups/life", testutil.ServiceKey, nil)
		expect(t, srv, 404, "not_found", "POST", "/v1/groups/life/join", tok["gus"], nil)
		// Nothing of the group reaches a former member's connected device.
		g.MustPublish(t, "im/u/bob", 1, "still here")
		b.Await(t, wait, map[string]any{"conv": "d:bob:gus", "from": "gus"})
		quietOn(t, b, "im/g/life", 200*time.Millisecond)

		// The history tells the whole story, to a former member.
		h := history(t, srv, tok["olga"], "g:life", 0)
		want := []string{"created", "joined", "role", "updated", "joined", "muted", "updated", "updated",
			"transferred", "kicked", "left", "dissolved"}
		if got := systemEvents(t, h); !slices.Equal(got, want) {
			t.Fatalf("system messages %v, want %v", got, want)
		}
		cv := convs(t, srv, tok["bob"])["g:life"]
		if cv.Member || cv.Unread != 0 || cv.LastSeq != h[len(h)-1].Seq {
			t.Fatalf("bob's conversation after dissolve: %+v (last seq %d)", cv, h[len(h)-1].Seq)
		}
		// dave, kicked earlier, sees history only up to his kick.
		if hd := history(t, srv, tok["dave"], "g:life", 0); systemEvents(t, hd)[len(systemEvents(t, hd))-1] != "kicked" {
			t.Fatalf("dave's history ends with %v", systemEvents(t, hd))
		}
		// A new device of a former member is not subscribed to the group.
		b2 := srv.Connect(t, "bob", "d2", tok["bob"])
		g.MustPublish(t, "im/u/bob", 1, "second device")
		b2.Await(t, wait, map[string]any{"conv": "d:bob:gus", "body": map[string]any{"text": "second device"}})
	})
}

// Who may call each new group endpoint: the service key, the owner, an
// admin, a plain member, a non-member.
func TestGroupAdminPermissions(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		sk := testutil.ServiceKey
		tok := map[string]string{}
		for _, u := range []string{"own", "adm", "mem", "out", "req"} {
			tok[u] = srv.User(t, u)
		}
		n := 0
		// fresh makes a group with own (owner), adm (admin) and mem.
		fresh := func(policy string) string {
			n++
			gid := fmt.Sprintf("p%d", n)
			srv.MustAPI(t, 201, "POST", "/v1/groups", sk, map[string]any{"id": gid, "name": gid, "owner": "own",
				"members": []string{"adm", "mem"}, "join_policy": policy}, nil)
			srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+gid+"/members/adm", sk, map[string]any{"role": "admin"}, nil)
			return gid
		}
		g := fresh("approval")
		// PATCH: owner, admins, service.
		for _, who := range []string{"own", "adm"} {
			expect(t, srv, 200, "", "PATCH", "/v1/groups/"+g, tok[who], map[string]any{"notice": "by " + who})
		}
		expect(t, srv, 200, "", "PATCH", "/v1/groups/"+g, sk, map[string]any{"notice": "by service"})
		expect(t, srv, 403, "forbidden", "PATCH", "/v1/groups/"+g, tok["mem"], map[string]any{"notice": "x"})
		expect(t, srv, 403, "not_member", "PATCH", "/v1/groups/"+g, tok["out"], map[string]any{"notice": "x"})
		expect(t, srv, 404, "not_found", "PATCH", "/v1/groups/nope", sk, map[string]any{"notice": "x"})
		// Validation as at creation.
		long := make([]rune, 1001)
		for i := range long {
			long[i] = 'é'
		}
		expect(t, srv, 400, "invalid", "PATCH", "/v1/groups/"+g, sk, map[string]any{"notice": string(long)})
		expect(t, srv, 200, "", "PATCH", "/v1/groups/"+g, sk, map[string]any{"notice": string(long[:1000])})
		expect(t, srv, 400, "invalid", "PATCH", "/v1/groups/"+g, sk, map[string]any{"name": " "})
		expect(t, srv, 400, "invalid", "PATCH", "/v1/groups/"+g, sk, map[string]any{"join_policy": "closed"})
		expect(t, srv, 400, "invalid", "PATCH", "/v1/groups/"+g, sk, `{"ext":{"a":1,"a":2}}`)

		// Join requests: listed and answered by owner, admins, service.
		expect(t, srv, 202, "", "POST", "/v1/groups/"+g+"/join", tok["out"], map[string]any{"message": "hi"})
		expect(t, srv, 202, "", "POST", "/v1/groups/"+g+"/join?user_id=req", sk, nil)
		expect(t, srv, 409, "conflict", "POST", "/v1/groups/"+g+"/join", tok["mem"], nil)
		expect(t, srv, 400, "invalid", "POST", "/v1/groups/"+g+"/join", tok["out"], map[string]any{"message": string(long[:201])})
		for _, who := range []string{"own", "adm"} {
			expect(t, srv, 200, "", "GET", "/v1/groups/"+g+"/requests", tok[who], nil)
		}
		expect(t, srv, 200, "", "GET", "/v1/groups/"+g+"/requests", sk, nil)
		expect(t, srv, 403, "forbidden", "GET", "/v1/groups/"+g+"/requests", tok["mem"], nil)
		expect(t, srv, 403, "not_member", "GET", "/v1/groups/"+g+"/requests", tok["out"], nil)
		expect(t, srv, 403, "forbidden", "POST", "/v1/groups/"+g+"/requests/out", tok["mem"], map[string]any{"approve": true})
		expect(t, srv, 403, "not_member", "POST", "/v1/groups/"+g+"/requests/out", tok["req"], map[string]any{"approve": true})
		expect(t, srv, 400, "invalid", "POST", "/v1/groups/"+g+"/requests/out", tok["own"], map[string]any{})
		expect(t, srv, 200, "", "POST", "/v1/groups/"+g+"/requests/out", tok["adm"], map[string]any{"approve": true})
		expect(t, srv, 204, "", "POST", "/v1/groups/"+g+"/requests/req", sk, map[string]any{"approve": false})
		expect(t, srv, 404, "not_found", "POST", "/v1/groups/"+g+"/requests/req", tok["own"], map[string]any{"approve": true})
		// Policies: open joins at once, invite refuses.
		open := fresh("open")
		var m struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		}
		srv.MustAPI(t, 200, "POST", "/v1/groups/"+open+"/join", tok["out"], nil, &m)
		if m.UserID != "out" || m.Role != "member" {
			t.Fatalf("open join: %+v", m)
		}
		expect(t, srv, 403, "forbidden", "POST", "/v1/groups/"+fresh("invite")+"/join", tok["out"], nil)
		expect(t, srv, 404, "not_found", "POST", "/v1/groups/nope/join", tok["out"], nil)

		// Members: members and the service; anyone for an open group.
		for _, tk := range []string{tok["own"], tok["adm"], tok["mem"], sk} {
			expect(t, srv, 200, "", "GET", "/v1/groups/"+g+"/members", tk, nil)
		}
		expect(t, srv, 200, "", "GET", "/v1/groups/"+open+"/members", tok["req"], nil)
		expect(t, srv, 403, "forbidden", "GET", "/v1/groups/"+g+"/members", tok["req"], nil)
		for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=%25%25", "cursor=bm9wZQ"} {
			expect(t, srv, 400, "invalid", "GET", "/v1/groups/"+g+"/members?"+q, tok["own"], nil)
		}

		// Transfer: the owner and the service only.
		for _, who := range []string{"adm", "mem"} {
			expect(t, srv, 403, "forbidden", "POST", "/v1/groups/"+g+"/transfer", tok[who], map[string]any{"user_id": "mem"})
		}
		expect(t, srv, 403, "not_member", "POST", "/v1/groups/"+g+"/transfer", tok["req"], map[string]any{"user_id": "mem"})
		expect(t, srv, 404, "not_found", "POST", "/v1/groups/"+g+"/transfer", tok["own"], map[string]any{"user_id": "req"})
		expect(t, srv, 200, "", "POST", "/v1/groups/"+g+"/transfer", tok["own"], map[string]any{"user_id": "mem"})
		expect(t, srv, 200, "", "POST", "/v1/groups/"+g+"/transfer", sk, map[string]any{"user_id": "own"})

		// Dissolve: the owner and the service only.
		for _, who := range []string{"adm", "mem"} {
			expect(t, srv, 403, "forbidden", "DELETE", "/v1/groups/"+g, tok[who], nil)
		}
		expect(t, srv, 403, "not_member", "DELETE", "/v1/groups/"+g, tok["req"], nil)
		expect(t, srv, 204, "", "DELETE", "/v1/groups/"+g, tok["own"], nil)
		expect(t, srv, 404, "not_found", "DELETE", "/v1/groups/"+g, tok["own"], nil)
		other := fresh("invite")
		expect(t, srv, 204, "", "DELETE", "/v1/groups/"+other, sk, nil)
		for _, p := range []string{"/members", "/requests"} {
			expect(t, srv, 404, "not_found", "GET", "/v1/groups/"+other+p, sk, nil)
		}
	})
}

// chat.max_groups_per_user: refusals name the user, on create, add, join
// and approve.
func TestGroupsPerUserCap(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.Chat.MaxGroupsPerUser = 2 })
		sk := testutil.ServiceKey
		for _, u := range []string{"ann", "ben", "cat"} {
			srv.User(t, u)
		}
		mk := func(id, owner string, policy string, members ...string) (int, []byte) {
			return srv.API(t, "POST", "/v1/groups", sk, map[string]any{"id": id, "name": id, "owner": owner, "members": members, "join_policy": policy})
		}
		if st, out := mk("g1", "ann", "invite", "ben"); st != 201 {
			t.Fatalf("g1: %d %s", st, out)
		}
		if st, out := mk("g2", "ann", "invite"); st != 201 {
			t.Fatalf("g2: %d %s", st, out)
		}
		// ann is in two groups: a third with her as a member is refused.
		st, out := mk("g3", "cat", "invite", "ann")
		if st != 403 || apiError(t, out) != "forbidden" || !strings.Contains(string(out), "ann") {
			t.Fatalf("create over the cap: %d %s", st, out)
		}
		if st, out := mk("g4", "cat", "open"); st != 201 {
			t.Fatalf("g4: %d %s", st, out)
		}
		st, out = srv.API(t, "POST", "/v1/groups/g4/members", sk, map[string]any{"user_ids": []string{"ann"}})
		if st != 403 || !strings.Contains(string(out), "ann") {
			t.Fatalf("add over the cap: %d %s", st, out)
		}
		st, out = srv.API(t, "POST", "/v1/groups/g4/join?user_id=ann", sk, nil)
		if st != 403 || !strings.Contains(string(out), "ann") {
			t.Fatalf("join over the cap: %d %s", st, out)
		}
		// Approval: the request is taken, the approval refused.
		if st, out := mk("g5", "cat", "approval"); st != 201 {
			t.Fatalf("g5: %d %s", st, out)
		}
		expect(t, srv, 202, "", "POST", "/v1/groups/g5/join?user_id=ann", sk, nil)
		st, out = srv.API(t, "POST", "/v1/groups/g5/requests/ann", sk, map[string]any{"approve": true})
		if st != 403 || !strings.Contains(string(out), "ann") {
			t.Fatalf("approve over the cap: %d %s", st, out)
		}
		// Once one of ann's groups is gone she may join again.
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/g2", sk, nil, nil)
		expect(t, srv, 200, "", "POST", "/v1/groups/g4/join?user_id=ann", sk, nil)
	})
}

// awaitOn returns the first event received on topic that matches want,
// skipping others; it fails on an event matching bad (when not nil) first.
func awaitOn(t *testing.T, cl *testutil.Client, topic string, want, bad map[string]any) map[string]any {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m := cl.Next(t, time.Until(deadline))
		ev := m.Event(t)
		if bad != nil && testutil.Matches(ev, bad) {
			t.Fatalf("%s: unexpected %v on %s", cl.ID, ev, m.Topic)
		}
		if m.Topic == topic && testutil.Matches(ev, want) {
			return ev
		}
	}
}

// quietOn fails if anything arrives on topic within d. Use it only after
// awaiting a later event, so that d bounds rather than guesses.
func quietOn(t *testing.T, cl *testutil.Client, topic string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-cl.Msgs:
			if m.Topic == topic {
				t.Fatalf("%s: unexpected %s on %s", cl.ID, m.Payload, topic)
			}
		case <-deadline:
			return
		}
	}
}
