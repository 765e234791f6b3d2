package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
)

type memberResp struct {
	UserID   string `json:"user_id"`
	Role     string `json:"role"`
	JoinSeq  int64  `json:"join_seq"`
	JoinedAt int64  `json:"joined_at"`
}

type groupResp struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Avatar     string          `json:"avatar"`
	Owner      string          `json:"owner"`
	JoinPolicy string          `json:"join_policy"`
	Ext        json.RawMessage `json:"ext"`
	CreatedAt  int64           `json:"created_at"`
	Members    []memberResp    `json:"members"`
}

// roles maps member ids to roles.
func (g groupResp) roles() map[string]string {
	out := map[string]string{}
	for _, m := range g.Members {
		out[m.UserID] = m.Role
	}
	return out
}

type convResp struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Group   string `json:"group"`
	LastSeq int64  `json:"last_seq"`
	ReadSeq int64  `json:"read_seq"`
	Unread  int64  `json:"unread"`
	Member  bool   `json:"member"`
}

// groupConv returns the caller's conversation of group gid, failing when
// it is not listed.
func groupConv(t *testing.T, srv *testutil.Server, tok, gid string) convResp {
	t.Helper()
	var cs []convResp
	srv.MustAPI(t, http.StatusOK, "GET", "/v1/conversations", tok, nil, &cs)
	for _, c := range cs {
		if c.ID == "g:"+gid {
			return c
		}
	}
	t.Fatalf("conversation g:%s not listed: %+v", gid, cs)
	return convResp{}
}

func wantUnread0(t *testing.T, srv *testutil.Server, who, tok, gid string) {
	t.Helper()
	c := groupConv(t, srv, tok, gid)
	if c.Kind != "group" || c.Group != gid || c.Unread != 0 || c.ReadSeq != c.LastSeq || !c.Member {
		t.Errorf("%s's conversation of %s: %+v, want kind group, unread 0, member", who, gid, c)
	}
}

// newGroup creates a group as owner (a token) and returns it.
func newGroup(t *testing.T, srv *testutil.Server, owner string, in map[string]any) groupResp {
	t.Helper()
	var g groupResp
	srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", owner, in, &g)
	return g
}

func TestCreateGroup(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		own := srv.User(t, "own")
		m1 := srv.User(t, "m1")
		m2 := srv.User(t, "m2")

		t.Run("user token: caller owns", func(t *testing.T) {
			ext := `{"topic":"launch","n":[1,2,3]}`
			var g groupResp
			srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", own,
				fmt.Sprintf(`{"name":"Launch 🚀","avatar":"https://x/a.png","members":["m1","m2","m1","own"],"ext":%s}`, ext), &g)
			if !chat.ValidID(g.ID) || g.Name != "Launch 🚀" || g.Avatar != "https://x/a.png" || g.Owner != "own" || g.JoinPolicy != "invite" || g.CreatedAt == 0 {
				t.Fatalf("created %+v", g)
			}
			if !sameJSON(t, g.Ext, []byte(ext)) {
				t.Errorf("ext %s", g.Ext)
			}
			if r := g.roles(); len(r) != 3 || r["own"] != "owner" || r["m1"] != "member" || r["m2"] != "member" || len(g.Members) != 3 {
				t.Errorf("members %+v", g.Members)
			}
			// Everyone starts with nothing unread.
			for who, tok := range map[string]string{"own": own, "m1": m1, "m2": m2} {
				wantUnread0(t, srv, who, tok, g.ID)
			}
			// What GET shows is what was created.
			var got groupResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/"+g.ID, m2, nil, &got)
			if got.ID != g.ID || got.Owner != "own" || got.Name != g.Name || !sameJSON(t, got.Ext, []byte(ext)) || len(got.Members) != 3 {
				t.Errorf("GET %+v", got)
			}
			// Naming yourself as owner is fine.
			g = newGroup(t, srv, m1, map[string]any{"name": "mine", "owner": "m1"})
			if g.Owner != "m1" || len(g.Members) != 1 {
				t.Errorf("self-owned %+v", g)
			}
		})

		t.Run("explicit ids and policies", func(t *testing.T) {
			for _, id := range []string{"team.a-1@x_", strings.Repeat("g", 64), "G"} {
				g := newGroup(t, srv, own, map[string]any{"id": id, "name": id})
				if g.ID != id {
					t.Errorf("id %q became %q", id, g.ID)
				}
			}
			for _, p := range []string{"open", "approval", "invite"} {
				g := newGroup(t, srv, own, map[string]any{"name": p, "join_policy": p})
				if g.JoinPolicy != p {
					t.Errorf("policy %s became %s", p, g.JoinPolicy)
				}
			}
			for _, p := range []any{"closed", "OPEN", " open", "public", 5, true, []string{"open"}} {
				st, body := srv.API(t, "POST", "/v1/groups", own, map[string]any{"name": "p", "join_policy": p})
				wantError(t, fmt.Sprintf("join_policy %v", p), st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("duplicate id", func(t *testing.T) {
			newGroup(t, srv, own, map[string]any{"id": "dup", "name": "first", "members": []string{"m1"}})
			for _, tok := range []string{own, m2, serviceKey} {
				in := map[string]any{"id": "dup", "name": "second"}
				if tok == serviceKey {
					in["owner"] = "m2"
				}
				st, body := srv.API(t, "POST", "/v1/groups", tok, in)
				wantError(t, "duplicate", st, body, http.StatusConflict, "conflict")
			}
			var g groupResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/dup", own, nil, &g)
			if g.Name != "first" || g.Owner != "own" || len(g.Members) != 2 {
				t.Errorf("duplicate changed the group: %+v", g)
			}
		})

		t.Run("service key names the owner", func(t *testing.T) {
			var g groupResp
			srv.MustAPI(t, http.StatusCreated, "POST", "/v1/groups", serviceKey, map[string]any{"name": "svc", "owner": "m2", "members": []string{"m1"}}, &g)
			if g.Owner != "m2" || g.roles()["m2"] != "owner" || g.roles()["m1"] != "member" {
				t.Errorf("service-created %+v", g)
			}
			wantUnread0(t, srv, "m1", m1, g.ID)
			wantUnread0(t, srv, "m2", m2, g.ID)
			for _, in := range []map[string]any{{"name": "no owner"}, {"name": "empty owner", "owner": ""}, {"name": "members only", "members": []string{"m1"}}} {
				st, body := srv.API(t, "POST", "/v1/groups", serviceKey, in)
				wantError(t, fmt.Sprintf("service without owner %v", in), st, body, http.StatusBadRequest, "invalid")
			}
			st, body := srv.API(t, "POST", "/v1/groups", serviceKey, map[string]any{"name": "ghost", "owner": "ghost"})
			wantError(t, "service with unknown owner", st, body, http.StatusNotFound, "not_found")
		})

		t.Run("a user token cannot create for someone else", func(t *testing.T) {
			st, body := srv.API(t, "POST", "/v1/groups", m1, map[string]any{"id": "stolen", "name": "x", "owner": "own"})
			wantError(t, "owner other than caller", st, body, http.StatusForbidden, "forbidden")
			if st, _ := srv.API(t, "GET", "/v1/groups/stolen", serviceKey, nil); st != http.StatusNotFound {
				t.Errorf("refused group exists: %d", st)
			}
		})

		t.Run("members must exist", func(t *testing.T) {
			for _, ms := range [][]string{{"nobody"}, {"m1", "nobody"}, {"m1", "m2", "ghost-2"}} {
				st, body := srv.API(t, "POST", "/v1/groups", own, map[string]any{"id": "ghosts", "name": "x", "members": ms})
				wantError(t, fmt.Sprintf("members %v", ms), st, body, http.StatusNotFound, "not_found")
			}
			if st, _ := srv.API(t, "GET", "/v1/groups/ghosts", serviceKey, nil); st != http.StatusNotFound {
				t.Errorf("refused group exists: %d", st)
			}
		})

		t.Run("invalid ids", func(t *testing.T) {
			for _, id := range badBodyIDs {
				if id == "" {
					continue // no id: one is made up
				}
				st, body := srv.API(t, "POST", "/v1/groups", own, map[string]any{"id": id, "name": "x"})
				wantError(t, fmt.Sprintf("group id %q", id), st, body, http.StatusBadRequest, "invalid")
				st, body = srv.API(t, "POST", "/v1/groups", own, map[string]any{"name": "x", "members": []string{"m1", id}})
				wantError(t, fmt.Sprintf("member %q", id), st, body, http.StatusBadRequest, "invalid")
				st, body = srv.API(t, "POST", "/v1/groups", serviceKey, map[string]any{"name": "x", "owner": id})
				wantError(t, fmt.Sprintf("owner %q", id), st, body, http.StatusBadRequest, "invalid")
			}
			st, body := srv.API(t, "POST", "/v1/groups", own, map[string]any{"name": "x", "members": []string{""}})
			wantError(t, "empty member", st, body, http.StatusBadRequest, "invalid")
		})

		t.Run("limits", func(t *testing.T) {
			for _, c := range []struct {
				in   map[string]any
				st   int
				code string
			}{
				{map[string]any{"name": strings.Repeat("é", 100)}, 201, ""},
				{map[string]any{"name": strings.Repeat("é", 101)}, 400, "invalid"},
				{map[string]any{"name": "a", "avatar": strings.Repeat("a", 1024)}, 201, ""},
				{map[string]any{"name": "a", "avatar": strings.Repeat("a", 1025)}, 400, "invalid"},
				{map[string]any{"name": "a", "ext": map[string]string{"s": strings.Repeat("a", srv.Config.Chat.MaxExt)}}, 413, "too_large"},
			} {
				st, body := srv.API(t, "POST", "/v1/groups", own, c.in)
				if c.st < 300 {
					if st != c.st {
						t.Errorf("%.60v: %d %.200s", c.in, st, body)
					}
					continue
				}
				wantError(t, fmt.Sprintf("%.60v", c.in), st, body, c.st, c.code)
			}
		})

		t.Run("bad JSON", func(t *testing.T) {
			bodies := append([]string{"", `{"name":5}`, `{"members":"m1"}`, `{"members":[1]}`, `{"members":{"m1":true}}`,
				`{"id":5}`, `{"owner":["own"]}`, `{"join_policy":null,"name":[]}`}, badJSONBodies...)
			for _, b := range bodies {
				st, body := srv.API(t, "POST", "/v1/groups", own, b)
				wantError(t, fmt.Sprintf("create body %.40q", b), st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("credentials", func(t *testing.T) {
			checkUnauthorized(t, srv, badCreds(t, srv, "grpcred"), call{method: "POST", path: "/v1/groups", body: []byte(`{"name":"x","owner":"grpcred"}`)})
		})
	})
}

func TestGetGroup(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		own := srv.User(t, "own")
		mem := srv.User(t, "mem")
		out := srv.User(t, "out")
		newGroup(t, srv, own, map[string]any{"id": "inv", "name": "Invite", "members": []string{"mem"}})
		newGroup(t, srv, own, map[string]any{"id": "appr", "name": "Approval", "join_policy": "approval", "members": []string{"mem"}})
		newGroup(t, srv, own, map[string]any{"id": "open", "name": "Open", "join_policy": "open"})

		t.Run("members, the service key, and anyone for open groups", func(t *testing.T) {
			for _, c := range []struct{ who, tok, gid string }{
				{"owner", own, "inv"}, {"member", mem, "inv"}, {"service", serviceKey, "inv"},
				{"member", mem, "appr"}, {"outsider", out, "open"},
			} {
				var g groupResp
				srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/"+c.gid, c.tok, nil, &g)
				if g.ID != c.gid || g.Owner != "own" || g.roles()["own"] != "owner" {
					t.Errorf("%s GET %s: %+v", c.who, c.gid, g)
				}
				for _, m := range g.Members {
					if m.JoinSeq <= 0 || m.JoinedAt <= 0 {
						t.Errorf("%s GET %s: member %+v", c.who, c.gid, m)
					}
				}
			}
			var g groupResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/inv", mem, nil, &g)
			if r := g.roles(); len(g.Members) != 2 || r["mem"] != "member" {
				t.Errorf("members %+v", g.Members)
			}
		})

		t.Run("outsiders of closed groups", func(t *testing.T) {
			for _, gid := range []string{"inv", "appr"} {
				st, body := srv.API(t, "GET", "/v1/groups/"+gid, out, nil)
				wantError(t, "outsider GET "+gid, st, body, http.StatusForbidden, "")
			}
		})

		checkGetRefusals(t, srv, "/v1/groups", own, "nope", "open", "getgcred")
	})
}

func TestAddMembers(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		own := srv.User(t, "own")
		mem := srv.User(t, "mem")
		out := srv.User(t, "out")
		for _, u := range []string{"a1", "a2", "a3", "a4", "a5"} {
			srv.User(t, u)
		}
		a5 := srv.User(t, "a5")
		newGroup(t, srv, own, map[string]any{"id": "g", "name": "G", "members": []string{"mem"}})
		add := func(tok, gid string, in any) (int, []byte) {
			return srv.API(t, "POST", "/v1/groups/"+gid+"/members", tok, in)
		}
		added := func(tok, gid string, uids ...string) []string {
			t.Helper()
			var res struct {
				Added []string `json:"added"`
			}
			srv.MustAPI(t, http.StatusOK, "POST", "/v1/groups/"+gid+"/members", tok, map[string][]string{"user_ids": uids}, &res)
			if res.Added == nil {
				t.Fatalf("added is null, want a list")
			}
			return res.Added
		}
		members := func(gid string) map[string]string {
			t.Helper()
			var g groupResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/"+gid, serviceKey, nil, &g)
			return g.roles()
		}

		t.Run("owner adds", func(t *testing.T) {
			if got := added(own, "g", "a1", "a2", "a1"); !slices.Equal(got, []string{"a1", "a2"}) {
				t.Errorf("added %v", got)
			}
			if r := members("g"); len(r) != 4 || r["a1"] != "member" || r["a2"] != "member" {
				t.Errorf("members %v", r)
			}
			// Already members are skipped.
			if got := added(own, "g", "a1", "own", "a3"); !slices.Equal(got, []string{"a3"}) {
				t.Errorf("added %v, want [a3]", got)
			}
			if got := added(own, "g", "a1", "mem"); len(got) != 0 {
				t.Errorf("added %v, want []", got)
			}
			if r := members("g"); len(r) != 5 {
				t.Errorf("members %v", r)
			}
		})

		t.Run("a member added later has nothing unread", func(t *testing.T) {
			// Some history first.
			srv.MustAPI(t, http.StatusCreated, "POST", "/v1/messages", own, map[string]any{"group": "g", "type": "text", "body": map[string]string{"text": "before a5"}}, nil)
			added(own, "g", "a5")
			wantUnread0(t, srv, "a5", a5, "g")
		})

		t.Run("service key adds", func(t *testing.T) {
			if got := added(serviceKey, "g", "a4"); !slices.Equal(got, []string{"a4"}) {
				t.Errorf("added %v", got)
			}
		})

		t.Run("a plain member may invite unless approval", func(t *testing.T) {
			newGroup(t, srv, own, map[string]any{"id": "inv2", "name": "I", "members": []string{"mem"}})
			if got := added(mem, "inv2", "a1"); !slices.Equal(got, []string{"a1"}) {
				t.Errorf("added %v", got)
			}
			newGroup(t, srv, own, map[string]any{"id": "appr", "name": "A", "join_policy": "approval", "members": []string{"mem"}})
			st, body := add(mem, "appr", map[string][]string{"user_ids": {"a1"}})
			wantError(t, "member adds to approval group", st, body, http.StatusForbidden, "forbidden")
		})

		t.Run("non-members cannot add", func(t *testing.T) {
			for _, uids := range [][]string{{"a2"}, {"out"}} {
				st, body := add(out, "g", map[string][]string{"user_ids": uids})
				wantError(t, fmt.Sprintf("outsider adds %v", uids), st, body, http.StatusForbidden, "not_member")
			}
			if _, ok := members("g")["out"]; ok {
				t.Error("outsider added itself")
			}
		})

		t.Run("unknown users and groups", func(t *testing.T) {
			for _, uids := range [][]string{{"nobody"}, {"a2", "nobody"}} {
				newGroup(t, srv, own, map[string]any{"id": "u" + fmt.Sprint(len(uids)), "name": "U"})
				st, body := add(own, "u"+fmt.Sprint(len(uids)), map[string][]string{"user_ids": uids})
				wantError(t, fmt.Sprintf("add %v", uids), st, body, http.StatusNotFound, "not_found")
				if r := members("u" + fmt.Sprint(len(uids))); len(r) != 1 {
					t.Errorf("a refused add added someone: %v", r)
				}
			}
			for _, tok := range []string{own, serviceKey} {
				st, body := add(tok, "nogroup", map[string][]string{"user_ids": {"a1"}})
				wantError(t, "add to unknown group", st, body, http.StatusNotFound, "not_found")
			}
		})

		t.Run("empty list", func(t *testing.T) {
			for _, b := range []string{`{"user_ids":[]}`, `{}`, `{"user_ids":null}`, `null`} {
				st, body := add(own, "g", b)
				wantError(t, "add "+b, st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("invalid ids", func(t *testing.T) {
			for _, id := range badBodyIDs {
				st, body := add(own, "g", map[string][]string{"user_ids": {"a1", id}})
				wantError(t, fmt.Sprintf("add %q", id), st, body, http.StatusBadRequest, "invalid")
			}
			for _, id := range badPathIDs {
				st, body := add(own, id, map[string][]string{"user_ids": {"a1"}})
				wantError(t, "add to group "+id, st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("bad JSON", func(t *testing.T) {
			bodies := append([]string{"", `{"user_ids":"a1"}`, `{"user_ids":[1]}`, `{"user_ids":[["a1"]]}`, `{"user_ids":`,
				`{"user_ids":{"a1":1}}`}, badJSONBodies...)
			for _, b := range bodies {
				st, body := add(own, "g", b)
				wantError(t, fmt.Sprintf("add body %.40q", b), st, body, http.StatusBadRequest, "invalid")
			}
		})

		t.Run("credentials", func(t *testing.T) {
			checkUnauthorized(t, srv, badCreds(t, srv, "addcred"), call{method: "POST", path: "/v1/groups/g/members", body: []byte(`{"user_ids":["a1"]}`)})
		})
	})
}

func TestRemoveMember(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *testutil.Server) {
		own := srv.User(t, "own")
		toks := map[string]string{}
		for _, u := range []string{"k1", "k2", "k3", "k4", "k5", "out"} {
			toks[u] = srv.User(t, u)
		}
		newGroup(t, srv, own, map[string]any{"id": "g", "name": "G", "members": []string{"k1", "k2", "k3", "k4", "k5"}})
		del := func(tok, gid, uid string) (int, []byte) {
			return srv.API(t, "DELETE", "/v1/groups/"+gid+"/members/"+uid, tok, nil)
		}
		members := func() map[string]string {
			t.Helper()
			var g groupResp
			srv.MustAPI(t, http.StatusOK, "GET", "/v1/groups/g", serviceKey, nil, &g)
			return g.roles()
		}

		t.Run("owner kicks", func(t *testing.T) {
			st, body := del(own, "g", "k1")
			if st != http.StatusNoContent || len(body) != 0 {
				t.Fatalf("kick: %d %q", st, body)
			}
			if _, ok := members()["k1"]; ok {
				t.Error("k1 still a member")
			}
			// The kicked member lost access, and kicking again finds nobody.
			st, body = srv.API(t, "GET", "/v1/groups/g", toks["k1"], nil)
			wantError(t, "kicked member reads the group", st, body, http.StatusForbidden, "")
			st, body = del(own, "g", "k1")
			wantError(t, "kick again", st, body, http.StatusNotFound, "not_found")
			c := groupConv(t, srv, toks["k1"], "g")
			if c.Member || c.Unread != 0 {
				t.Errorf("kicked member's conversation %+v", c)
			}
		})

		t.Run("member leaves", func(t *testing.T) {
			st, body := del(toks["k2"], "g", "k2")
			if st != http.StatusNoContent {
				t.Fatalf("leave: %d %s", st, body)
			}
			if _, ok := members()["k2"]; ok {
				t.Error("k2 still a member")
			}
			st, body = del(toks["k2"], "g", "k2")
			wantError(t, "leave again", st, body, http.StatusForbidden, "not_member")
		})

		t.Run("member cannot kick", func(t *testing.T) {
			for _, target := range []string{"k4", "own"} {
				st, body := del(toks["k3"], "g", target)
				wantError(t, "k3 kicks "+target, st, body, http.StatusForbidden, "forbidden")
			}
			if r := members(); r["k4"] == "" || r["own"] != "owner" {
				t.Errorf("members %v", r)
			}
		})

		t.Run("owner cannot leave or be kicked", func(t *testing.T) {
			for _, tok := range []string{own, serviceKey} {
				st, body := del(tok, "g", "own")
				wantError(t, "remove owner", st, body, http.StatusForbidden, "forbidden")
			}
			if members()["own"] != "owner" {
				t.Error("owner gone")
			}
		})

		t.Run("service key kicks", func(t *testing.T) {
			if st, body := del(serviceKey, "g", "k5"); st != http.StatusNoContent {
				t.Fatalf("service kick: %d %s", st, body)
			}
		})

		t.Run("not a member", func(t *testing.T) {
			for _, uid := range []string{"out", "nobody"} {
				st, body := del(own, "g", uid)
				wantError(t, "kick non-member "+uid, st, body, http.StatusNotFound, "not_found")
			}
			// An outsider acting on the group is refused first.
			st, body := del(toks["out"], "g", "k3")
			wantError(t, "outsider kicks", st, body, http.StatusForbidden, "not_member")
			st, body = del(toks["out"], "g", "out")
			wantError(t, "outsider leaves", st, body, http.StatusForbidden, "not_member")
			for _, tok := range []string{own, serviceKey} {
				st, body := del(tok, "nogroup", "k3")
				wantError(t, "unknown group", st, body, http.StatusNotFound, "not_found")
			}
			if members()["k3"] == "" {
				t.Error("k3 removed")
			}
		})

		t.Run("invalid ids", func(t *testing.T) {
			for _, id := range badPathIDs {
				st, body := del(own, "g", id)
				wantError(t, "kick "+id, st, body, http.StatusBadRequest, "invalid")
				st, body = del(own, id, "k3")
				wantError(t, "kick from group "+id, st, body, http.StatusBadRequest, "invalid")
			}
			// Dot segments are refused, not redirected elsewhere (a 307 keeps
			// DELETE: .../members/.. would become DELETE /v1/groups/g).
			for _, p := range []string{"/v1/groups/g/members/..", "/v1/groups/g/members/.", "/v1/groups/g/members//k3", "/v1/groups/x/../g/members/k3"} {
				st, hdr, body := do(t, srv, call{method: "DELETE", path: p, auth: bearer(own)})
				wantError(t, "DELETE "+p, st, body, http.StatusBadRequest, "invalid")
				if loc := hdr.Get("Location"); loc != "" {
					t.Errorf("DELETE %s redirects to %s", p, loc)
				}
			}
			if members()["k3"] == "" {
				t.Error("k3 removed")
			}
		})

		t.Run("credentials", func(t *testing.T) {
			checkUnauthorized(t, srv, badCreds(t, srv, "delcred"), call{method: "DELETE", path: "/v1/groups/g/members/k3"})
			if members()["k3"] == "" {
				t.Error("k3 removed")
			}
		})
	})
}
