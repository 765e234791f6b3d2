package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/testutil"
)

// The permission matrix: every endpoint and MQTT kind asked by each kind of
// caller, each answered with the documented status and error code. The
// callers are the service key (naming a user where one is implied), the
// group's owner, an admin, a plain member, a user outside the group, the
// peer of a 1:1 conversation, and no credentials at all.
//
// Each case builds its own fresh world (a group g{n} with those roles, a
// 1:1 conversation between the member and the peer, messages in both) so
// that a case that changes state, such as a kick or a dissolve, cannot
// change another's answer.

// world is one case's fresh state: ids by name ("gid", "conv", "dconv",
// "gmsg", "dmsg", "own", "adm", "mem", "out", "peer") and tokens by role.
type world struct {
	ids    map[string]string
	tokens map[string]string
}

// role names a caller of the matrix.
const (
	asService  = "service"
	asOwner    = "owner"
	asAdmin    = "admin"
	asMember   = "member"
	asOutsider = "outsider"
	asPeer     = "peer"
	asNobody   = "nobody"
)

var roles = []string{asService, asOwner, asAdmin, asMember, asOutsider, asPeer, asNobody}

// want is one expected answer: the HTTP status and, for a refusal, its code.
type want struct {
	status int
	code   string
}

func ok(st int) want { return want{status: st} }
func refused(code string) want {
	st := map[string]int{"invalid": 400, "unauthorized": 401, "forbidden": 403, "not_member": 403, "muted": 403,
		"blocked": 403, "not_found": 404, "conflict": 409}[code]
	return want{status: st, code: code}
}

// httpCase is one endpoint: path and body are templates over the world's
// ids ({gid}, {conv}, ...); {self} is the caller's own user id.
type httpCase struct {
	name, method, path, body string
	// who answers what; roles absent from the map get 401 if nobody,
	// else the case's other.
	want  map[string]want
	other want
	// prep, when set, changes the fresh world before the call.
	prep func(t *testing.T, srv *testutil.Server, w *world)
}

var seq atomic.Int64

// newWorld creates the users and a group, with a message from the member
// in the group and one from the peer to the member.
func newWorld(t *testing.T, srv *testutil.Server) *world {
	t.Helper()
	n := seq.Add(1)
	w := &world{ids: map[string]string{}, tokens: map[string]string{}}
	for role, name := range map[string]string{asOwner: "own", asAdmin: "adm", asMember: "mem", asOutsider: "out", asPeer: "peer"} {
		uid := fmt.Sprintf("%s%d", name, n)
		w.ids[name] = uid
		w.tokens[role] = srv.User(t, uid)
	}
	gid := fmt.Sprintf("g%d", n)
	w.ids["gid"], w.ids["conv"] = gid, "g:"+gid
	srv.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey, map[string]any{"id": gid, "name": "G", "owner": w.ids["own"],
		"members": []string{w.ids["adm"], w.ids["mem"]}}, nil)
	srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+gid+"/members/"+w.ids["adm"], testutil.ServiceKey, map[string]string{"role": "admin"}, nil)
	var m struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	}
	srv.MustAPI(t, 201, "POST", "/v1/messages", w.tokens[asMember], map[string]any{"group": gid, "type": "text", "body": map[string]string{"text": "hello group"}}, &m)
	w.ids["gmsg"], w.ids["gseq"] = m.ID, fmt.Sprint(m.Seq)
	srv.MustAPI(t, 201, "POST", "/v1/messages", w.tokens[asMember], map[string]any{"to": w.ids["peer"], "type": "text", "body": map[string]string{"text": "hello peer"}}, &m)
	w.ids["dmsg"] = m.ID
	a, b := w.ids["mem"], w.ids["peer"]
	if a > b {
		a, b = b, a
	}
	w.ids["dconv"] = "d:" + a + ":" + b
	// The peer blocked the outsider.
	srv.MustAPI(t, 204, "PUT", "/v1/blocks/"+w.ids["out"], w.tokens[asPeer], nil, nil)
	return w
}

// expand fills a template with the world's ids and the caller's own id.
func (w *world) expand(s, role string) string {
	self := map[string]string{asOwner: "own", asAdmin: "adm", asMember: "mem", asOutsider: "out", asPeer: "peer"}[role]
	r := []string{"{self}", w.ids[self]}
	for k, v := range w.ids {
		r = append(r, "{"+k+"}", v)
	}
	return strings.NewReplacer(r...).Replace(s)
}

// call makes the case's request as role: the service key names the member
// with ?user_id= where the endpoint acts for a user.
func (w *world) call(t *testing.T, srv *testutil.Server, c httpCase, role string) (int, []byte) {
	t.Helper()
	path, body := w.expand(c.path, role), w.expand(c.body, role)
	tok := w.tokens[role]
	if role == asService {
		tok = testutil.ServiceKey
		// Where a user is implied, the service key names one: the member.
		// Where none is, the parameter is ignored.
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "user_id=" + url.QueryEscape(w.ids["mem"])
	}
	var b any
	if body != "" {
		b = body
	}
	return srv.API(t, c.method, path, tok, b)
}

func (c httpCase) expect(role string) want {
	if w, ok := c.want[role]; ok {
		return w
	}
	if role == asNobody {
		return refused("unauthorized")
	}
	return c.other
}

// checkAnswer compares an answer with what was expected.
func checkAnswer(t *testing.T, what string, st int, body []byte, w want) {
	t.Helper()
	if st != w.status {
		t.Errorf("%s: status %d, want %d: %.200s", what, st, w.status, body)
		return
	}
	if w.code == "" {
		return
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != w.code {
		t.Errorf("%s: %s, want code %s", what, body, w.code)
	}
}

// httpMatrix is every endpoint that acts on a conversation, a message or a
// group, with what each caller gets.
var httpMatrix = []httpCase{
	{name: "list conversations", method: "GET", path: "/v1/conversations", other: ok(200)},
	{name: "search", method: "GET", path: "/v1/messages/search?q=hello", other: ok(200)},
	{name: "search a conversation", method: "GET", path: "/v1/messages/search?q=hello&conv={dconv}", other: refused("not_found"),
		want: map[string]want{asService: ok(200), asMember: ok(200), asPeer: ok(200)}},
	{name: "unread", method: "GET", path: "/v1/unread", other: ok(200)},
	{name: "group history", method: "GET", path: "/v1/conversations/{conv}/messages", other: ok(200),
		want: map[string]want{asOutsider: refused("not_found"), asPeer: refused("not_found")}},
	{name: "direct history", method: "GET", path: "/v1/conversations/{dconv}/messages", other: refused("not_found"),
		want: map[string]want{asService: ok(200), asMember: ok(200), asPeer: ok(200)}},
	{name: "mark group read", method: "POST", path: "/v1/conversations/{conv}/read", body: `{"seq":1}`, other: ok(200),
		want: map[string]want{asOutsider: refused("not_found"), asPeer: refused("not_found")}},
	{name: "pin group", method: "PATCH", path: "/v1/conversations/{conv}", body: `{"pinned":true}`, other: ok(200),
		want: map[string]want{asOutsider: refused("not_found"), asPeer: refused("not_found")}},
	{name: "send to group", method: "POST", path: "/v1/messages", body: `{"group":"{gid}","type":"text","body":{"text":"x"}}`, other: ok(201),
		want: map[string]want{asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "send 1:1 to the peer", method: "POST", path: "/v1/messages", body: `{"to":"{peer}","type":"text","body":{"text":"x"}}`, other: ok(201),
		want: map[string]want{asOutsider: refused("blocked")}},
	{name: "send to a muted-all group", method: "POST", path: "/v1/messages", body: `{"group":"{gid}","type":"text","body":{"text":"x"}}`,
		other: refused("not_member"), want: map[string]want{asService: refused("muted"), asMember: refused("muted"), asOwner: ok(201), asAdmin: ok(201)},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+w.ids["gid"], w.tokens[asOwner], map[string]bool{"mute_all": true}, nil)
		}},
	{name: "send to a muted member's group", method: "POST", path: "/v1/messages", body: `{"group":"{gid}","type":"text","body":{"text":"x"}}`,
		other: ok(201), want: map[string]want{asService: refused("muted"), asMember: refused("muted"), asOutsider: refused("not_member"), asPeer: refused("not_member")},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+w.ids["gid"]+"/members/"+w.ids["mem"], w.tokens[asAdmin], map[string]int64{"muted_until": 99999999999999}, nil)
		}},
	{name: "friend request to the peer", method: "POST", path: "/v1/friends/requests", body: `{"to":"{peer}"}`, other: ok(201),
		want: map[string]want{asPeer: refused("invalid"), asOutsider: refused("blocked")}},
	{name: "answer the member's friend request", method: "POST", path: "/v1/friends/requests/{mem}", body: `{"accept":true}`, other: refused("not_found"),
		want: map[string]want{asPeer: ok(200), asMember: refused("invalid"), asService: refused("invalid")},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 201, "POST", "/v1/friends/requests", w.tokens[asMember], map[string]string{"to": w.ids["peer"]}, nil)
		}},
	{name: "unfriend the member", method: "DELETE", path: "/v1/friends/{mem}", other: refused("not_found"),
		want: map[string]want{asPeer: ok(204), asMember: refused("invalid"), asService: refused("invalid")},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 201, "POST", "/v1/friends/requests", w.tokens[asMember], map[string]string{"to": w.ids["peer"]}, nil)
			srv.MustAPI(t, 200, "POST", "/v1/friends/requests/"+w.ids["mem"], w.tokens[asPeer], map[string]bool{"accept": true}, nil)
		}},
	{name: "list friends", method: "GET", path: "/v1/friends", other: ok(200)},
	{name: "list friend requests", method: "GET", path: "/v1/friends/requests", other: ok(200)},
	{name: "block the member", method: "PUT", path: "/v1/blocks/{mem}", other: ok(204), want: map[string]want{asMember: refused("invalid"), asService: refused("invalid")}},
	{name: "unblock the outsider", method: "DELETE", path: "/v1/blocks/{out}", other: refused("not_found"),
		want: map[string]want{asPeer: ok(204), asOutsider: refused("invalid")}},
	{name: "list blocks", method: "GET", path: "/v1/blocks", other: ok(200)},
	{name: "recall a group message", method: "POST", path: "/v1/messages/{gmsg}/recall", other: ok(200),
		want: map[string]want{asOutsider: refused("not_found"), asPeer: refused("not_found")}},
	{name: "recall a 1:1 message", method: "POST", path: "/v1/messages/{dmsg}/recall", other: refused("not_found"),
		want: map[string]want{asService: ok(200), asMember: ok(200), asPeer: refused("forbidden")}},
	{name: "edit a group message", method: "PATCH", path: "/v1/messages/{gmsg}", body: `{"body":{"text":"edited"}}`, other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asMember: ok(200), asOutsider: refused("not_found"), asPeer: refused("not_found")}},
	{name: "edit a 1:1 message", method: "PATCH", path: "/v1/messages/{dmsg}", body: `{"body":{"text":"edited"}}`, other: refused("not_found"),
		want: map[string]want{asService: ok(200), asMember: ok(200), asPeer: refused("forbidden")}},
	{name: "get group", method: "GET", path: "/v1/groups/{gid}", other: ok(200),
		want: map[string]want{asOutsider: refused("forbidden"), asPeer: refused("forbidden")}},
	{name: "update group", method: "PATCH", path: "/v1/groups/{gid}", body: `{"notice":"read the rules"}`, other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asOwner: ok(200), asAdmin: ok(200), asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "transfer group", method: "POST", path: "/v1/groups/{gid}/transfer", body: `{"user_id":"{mem}"}`, other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asOwner: ok(200), asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "dissolve group", method: "DELETE", path: "/v1/groups/{gid}", other: refused("forbidden"),
		want: map[string]want{asService: ok(204), asOwner: ok(204), asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "members", method: "GET", path: "/v1/groups/{gid}/members", other: ok(200),
		want: map[string]want{asOutsider: refused("forbidden"), asPeer: refused("forbidden")}},
	{name: "join an invite-only group", method: "POST", path: "/v1/groups/{gid}/join", other: refused("forbidden"),
		want: map[string]want{asService: refused("conflict"), asOwner: refused("conflict"), asAdmin: refused("conflict"), asMember: refused("conflict")}},
	{name: "join an open group", method: "POST", path: "/v1/groups/{gid}/join", other: refused("conflict"),
		want: map[string]want{asOutsider: ok(200), asPeer: ok(200)},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+w.ids["gid"], w.tokens[asOwner], map[string]string{"join_policy": "open"}, nil)
		}},
	{name: "ask to join an approval group", method: "POST", path: "/v1/groups/{gid}/join", body: `{"message":"let me in"}`, other: refused("conflict"),
		want: map[string]want{asOutsider: ok(202), asPeer: ok(202)},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+w.ids["gid"], w.tokens[asOwner], map[string]string{"join_policy": "approval"}, nil)
		}},
	{name: "list join requests", method: "GET", path: "/v1/groups/{gid}/requests", other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asOwner: ok(200), asAdmin: ok(200), asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "approve a join request", method: "POST", path: "/v1/groups/{gid}/requests/{out}", body: `{"approve":true}`, other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asOwner: ok(200), asAdmin: ok(200), asOutsider: refused("not_member"), asPeer: refused("not_member")},
		prep: func(t *testing.T, srv *testutil.Server, w *world) {
			srv.MustAPI(t, 200, "PATCH", "/v1/groups/"+w.ids["gid"], w.tokens[asOwner], map[string]string{"join_policy": "approval"}, nil)
			srv.MustAPI(t, 202, "POST", "/v1/groups/"+w.ids["gid"]+"/join", w.tokens[asOutsider], nil, nil)
		}},
	{name: "add members", method: "POST", path: "/v1/groups/{gid}/members", body: `{"user_ids":["{out}"]}`, other: ok(200),
		want: map[string]want{asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "kick member", method: "DELETE", path: "/v1/groups/{gid}/members/{mem}", other: refused("forbidden"),
		want: map[string]want{asService: ok(204), asOwner: ok(204), asAdmin: ok(204), asMember: ok(204),
			asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "mute member", method: "PATCH", path: "/v1/groups/{gid}/members/{mem}", body: `{"muted_until":99999999999999}`, other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asOwner: ok(200), asAdmin: ok(200), asOutsider: refused("not_member"), asPeer: refused("not_member")}},
	{name: "promote member", method: "PATCH", path: "/v1/groups/{gid}/members/{mem}", body: `{"role":"admin"}`, other: refused("forbidden"),
		want: map[string]want{asService: ok(200), asOwner: ok(200), asOutsider: refused("not_member"), asPeer: refused("not_member")}},
}

func TestPermissionMatrixHTTP(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		for _, c := range httpMatrix {
			for _, role := range roles {
				w := newWorld(t, srv)
				if c.prep != nil {
					c.prep(t, srv, w)
				}
				st, body := w.call(t, srv, c, role)
				checkAnswer(t, fmt.Sprintf("%s %s (%s) as %s", c.method, c.path, c.name, role), st, body, c.expect(role))
			}
		}
	})
}

// mqttCase is one MQTT kind published by each user role on a topic (a
// template as above) with the MQTT 5 PUBACK reason code each gets.
type mqttCase struct {
	name, topic, payload string
	want                 map[string]byte
	other                byte
}

var mqttMatrix = []mqttCase{
	{name: "msg to group", topic: "im/g/{gid}", payload: `{"cid":"c","type":"text","body":{"text":"x"}}`, other: 0,
		want: map[string]byte{asOutsider: 0x87, asPeer: 0x87}},
	{name: "read in group", topic: "im/g/{gid}", payload: `{"kind":"read","seq":1}`, other: 0,
		want: map[string]byte{asOutsider: 0x87, asPeer: 0x87}},
	{name: "read in 1:1", topic: "im/u/{peer}", payload: `{"kind":"read","seq":1}`, other: 0x87,
		want: map[string]byte{asMember: 0}},
	{name: "recall in group", topic: "im/g/{gid}", payload: `{"kind":"recall","id":"{gmsg}"}`, other: 0,
		want: map[string]byte{asOutsider: 0x87, asPeer: 0x87}},
	{name: "recall in 1:1", topic: "im/u/{peer}", payload: `{"kind":"recall","id":"{dmsg}"}`, other: 0x87,
		want: map[string]byte{asMember: 0}},
	{name: "edit in group", topic: "im/g/{gid}", payload: `{"kind":"edit","id":"{gmsg}","body":{"text":"e"}}`, other: 0x87,
		want: map[string]byte{asMember: 0}},
	{name: "send 1:1 to the peer", topic: "im/u/{peer}", payload: `{"cid":"c","type":"text","body":{"text":"x"}}`, other: 0,
		want: map[string]byte{asOutsider: 0x87}},
	{name: "bad payload", topic: "im/g/{gid}", payload: `{"kind":"msg","type":"text","body":{"text":1}}`, other: 0x99},
}

func TestPermissionMatrixMQTT(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		for _, c := range mqttMatrix {
			for _, role := range []string{asOwner, asAdmin, asMember, asOutsider, asPeer} {
				w := newWorld(t, srv)
				uid := w.ids[map[string]string{asOwner: "own", asAdmin: "adm", asMember: "mem", asOutsider: "out", asPeer: "peer"}[role]]
				cl := connectRaw(t, srv, 5, uid, "m", w.tokens[role])
				cl.Write(publish(w.expand(c.topic, role), 1, 7, w.expand(c.payload, role)))
				code, ok := c.want[role]
				if !ok {
					code = c.other
				}
				if ack := cl.Expect(packets.Puback, wait); ack.ReasonCode != code {
					t.Errorf("%s on %s as %s: PUBACK 0x%02x, want 0x%02x", c.name, c.topic, role, ack.ReasonCode, code)
				}
				cl.Close()
			}
		}
	})
}
