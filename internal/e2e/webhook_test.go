package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/push/gorush/gorushtest"
	"github.com/mqim/mqim/webhook"
)

const hookSecret = "e2e-webhook-secret-0123456789"

// hookReceiver is a product backend's webhook endpoint: it verifies every
// request's signature (refusing, and counting, a bad one) and records the
// events in arrival order.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []webhook.Envelope
	badSig int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !webhook.Verify([]byte(hookSecret), r.Header.Get(webhook.HeaderTimestamp), body, r.Header.Get(webhook.HeaderSignature)) {
			h.badSig++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e webhook.Envelope
		if err := json.Unmarshal(body, &e); err != nil || e.ID == "" || e.TS == 0 {
			h.badSig++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.events = append(h.events, e)
	}))
	t.Cleanup(h.Close)
	return h
}

// of returns the events of one type received so far, with their data.
func (h *hookReceiver) of(typ string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, e := range h.events {
		if e.Type == typ {
			var d map[string]any
			_ = json.Unmarshal(e.Data, &d)
			out = append(out, d)
		}
	}
	return out
}

// await waits for an event of typ whose data matches want.
func (h *hookReceiver) await(t *testing.T, typ string, want map[string]any) map[string]any {
	t.Helper()
	var got map[string]any
	testutil.Eventually(t, wait, func() error {
		for _, d := range h.of(typ) {
			if testutil.Matches(d, want) {
				got = d
				return nil
			}
		}
		return fmt.Errorf("no %s event matching %v; have %v", typ, want, h.types())
	})
	return got
}

func (h *hookReceiver) types() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ts []string
	for _, e := range h.events {
		ts = append(ts, e.Type)
	}
	return ts
}

// hookServer starts mqim with the receiver configured (and fast retries).
func hookServer(t *testing.T, backend string, h *hookReceiver, mut ...func(*config.Config)) *testutil.Server {
	t.Helper()
	return testutil.StartServer(t, backend, append([]func(*config.Config){func(c *config.Config) {
		c.Webhooks = []config.Webhook{{URL: h.URL, Secret: hookSecret}}
		c.Webhook.Backoff, c.Webhook.MaxBackoff, c.Webhook.Timeout = 5*time.Millisecond, 20*time.Millisecond, 5*time.Second
	}}, mut...)...)
}

// do2xx makes a request that must succeed (any 2xx).
func do2xx(t *testing.T, srv *testutil.Server, method, path, tok string, body any) {
	t.Helper()
	if st, out := srv.API(t, method, path, tok, body); st/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, st, out)
	}
}

// Every kind of event reaches the receiver, signed, with the event JSON
// clients get as data.
func TestWebhookEvents(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		h := newHookReceiver(t)
		srv := hookServer(t, backend, h)
		ta, tb, tc := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		bob := srv.Connect(t, "bob", "phone", tb)
		h.await(t, "user.online", map[string]any{"user": "bob", "device": "phone"})

		// Messages: created (HTTP and MQTT), read, recalled, edited.
		m1 := sendText(t, srv, ta, "bob", "hello")
		created := h.await(t, "message.created", map[string]any{"id": m1.ID})
		live := bob.Await(t, wait, map[string]any{"kind": "msg", "id": m1.ID})
		if fmt.Sprint(created) != fmt.Sprint(live) {
			t.Fatalf("data %v is not the event clients got %v", created, live)
		}
		srv.MustAPI(t, 200, "POST", "/v1/conversations/d:alice:bob/read", tb, map[string]any{"seq": 1}, nil)
		h.await(t, "conversation.read", map[string]any{"kind": "read", "conv": "d:alice:bob", "user": "bob", "seq": float64(1)})
		bob.MustPublish(t, "im/u/alice", 1, `{"cid":"b-1","type":"text","body":{"text":"hi alice"}}`)
		h.await(t, "message.created", map[string]any{"kind": "msg", "from": "bob", "cid": "b-1", "body": map[string]any{"text": "hi alice"}})
		m3 := sendText(t, srv, ta, "bob", "typo")
		edit(t, srv, 200, ta, m3.ID, map[string]any{"text": "fixed"})
		h.await(t, "message.edited", map[string]any{"kind": "edit", "id": m3.ID, "by": "alice", "body": map[string]any{"text": "fixed"}})
		recall(t, srv, 200, ta, m1.ID)
		h.await(t, "message.recalled", map[string]any{"kind": "recall", "id": m1.ID, "by": "alice"})
		// Recall and edit records are not message.created.
		for _, d := range h.of("message.created") {
			if d["type"] == "recall" || d["type"] == "edit" {
				t.Fatalf("a %s record as message.created", d["type"])
			}
		}

		// Groups.
		srv.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey,
			map[string]any{"id": "team", "name": "Team", "owner": "alice", "members": []string{"bob"}, "join_policy": "approval"}, nil)
		h.await(t, "group.created", map[string]any{"kind": "group", "group": "team", "event": "created"})
		h.await(t, "message.created", map[string]any{"type": "system", "to": "team"}) // the stored system message
		do2xx(t, srv, "PATCH", "/v1/groups/team", ta, map[string]any{"name": "Team 2"})
		h.await(t, "group.updated", map[string]any{"group": "team", "by": "alice"})
		do2xx(t, srv, "POST", "/v1/groups/team/join", tc, nil)
		h.await(t, "group.requested", map[string]any{"group": "team", "user": "carol"})
		do2xx(t, srv, "POST", "/v1/groups/team/requests/carol", ta, map[string]any{"approve": false})
		h.await(t, "group.rejected", map[string]any{"group": "team", "user": "carol"})
		do2xx(t, srv, "POST", "/v1/groups/team/members", ta, map[string]any{"user_ids": []string{"carol"}})
		h.await(t, "group.joined", map[string]any{"group": "team", "user": "carol"})
		do2xx(t, srv, "PATCH", "/v1/groups/team/members/bob", ta, map[string]any{"role": "admin"})
		h.await(t, "group.role", map[string]any{"group": "team", "user": "bob"})
		do2xx(t, srv, "PATCH", "/v1/groups/team/members/carol", ta, map[string]any{"muted_until": time.Now().Add(time.Hour).UnixMilli()})
		h.await(t, "group.muted", map[string]any{"group": "team", "user": "carol"})
		st, _ := srv.API(t, "DELETE", "/v1/groups/team/members/carol", ta, nil)
		if st/100 != 2 {
			t.Fatalf("kick: %d", st)
		}
		h.await(t, "group.kicked", map[string]any{"group": "team", "user": "carol"})
		do2xx(t, srv, "POST", "/v1/groups/team/transfer", ta, map[string]any{"user_id": "bob"})
		h.await(t, "group.transferred", map[string]any{"group": "team", "user": "bob"})
		if st, _ := srv.API(t, "DELETE", "/v1/groups/team/members/alice", ta, nil); st/100 != 2 {
			t.Fatalf("leave: %d", st)
		}
		h.await(t, "group.left", map[string]any{"group": "team", "user": "alice"})
		if st, _ := srv.API(t, "DELETE", "/v1/groups/team", tb, nil); st/100 != 2 {
			t.Fatalf("dissolve: %d", st)
		}
		h.await(t, "group.dissolved", map[string]any{"group": "team", "by": "bob"})
		// One webhook per event, though it went to the group topic and inboxes.
		if n := len(h.of("group.dissolved")); n != 1 {
			t.Fatalf("%d group.dissolved events", n)
		}

		// Friends.
		do2xx(t, srv, "POST", "/v1/friends/requests", tc, map[string]any{"to": "alice", "message": "hi!"})
		h.await(t, "friend.request", map[string]any{"kind": "friend", "event": "request", "user": "alice", "by": "carol", "message": "hi!"})
		do2xx(t, srv, "POST", "/v1/friends/requests/carol", ta, map[string]any{"accept": true})
		h.await(t, "friend.accepted", map[string]any{"user": "carol", "by": "alice"})
		if st, _ := srv.API(t, "DELETE", "/v1/friends/carol", ta, nil); st/100 != 2 {
			t.Fatalf("unfriend: %d", st)
		}
		h.await(t, "friend.removed", map[string]any{"user": "carol", "by": "alice"})
		do2xx(t, srv, "POST", "/v1/friends/requests", tb, map[string]any{"to": "carol"})
		do2xx(t, srv, "POST", "/v1/friends/requests/bob", tc, map[string]any{"accept": false})
		h.await(t, "friend.rejected", map[string]any{"user": "bob", "by": "carol"})

		bob.Disconnect(50)
		h.await(t, "user.offline", map[string]any{"user": "bob", "device": "phone"})
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.badSig != 0 {
			t.Fatalf("%d requests with a bad signature", h.badSig)
		}
		seen := map[string]bool{}
		for _, e := range h.events {
			if seen[e.ID] {
				t.Fatalf("event id %s delivered twice", e.ID)
			}
			seen[e.ID] = true
		}
	})
}

// A reconnect with the same client id takes the session over: the device
// stays online, so the old connection's end is no user.offline.
func TestWebhookPresenceTakeover(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		h := newHookReceiver(t)
		srv := hookServer(t, backend, h, func(c *config.Config) { c.Webhook.Workers = 1 })
		tb := srv.User(t, "bob")
		old := srv.Connect(t, "bob", "phone", tb)
		h.await(t, "user.online", map[string]any{"user": "bob", "device": "phone"})
		cur := srv.Connect(t, "bob", "phone", tb) // takeover
		testutil.Eventually(t, wait, func() error {
			if old.IsConnected() {
				return fmt.Errorf("old connection still up")
			}
			return nil
		})
		tab := srv.Connect(t, "bob", "tab", tb)
		h.await(t, "user.online", map[string]any{"device": "tab"})
		tab.Disconnect(50)
		h.await(t, "user.offline", map[string]any{"device": "tab"})
		cur.Disconnect(50)
		h.await(t, "user.offline", map[string]any{"device": "phone"})
		var phone []string
		for _, typ := range h.types() {
			if strings.HasPrefix(typ, "user.") {
				phone = append(phone, typ)
			}
		}
		// phone online, tab online, tab offline, phone offline: the takeover added nothing.
		if strings.Join(phone, ",") != "user.online,user.online,user.offline,user.offline" {
			t.Fatalf("presence events: %v", phone)
		}
		if n := len(h.of("user.online")); n != 2 {
			t.Fatalf("user.online %d times: %v", n, h.of("user.online"))
		}
	})
}

// moderator is a before_send endpoint answering by the message's text.
func moderator(t *testing.T, seen chan<- map[string]any) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify([]byte(hookSecret), r.Header.Get(webhook.HeaderTimestamp), body, r.Header.Get(webhook.HeaderSignature)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req map[string]any
		_ = json.Unmarshal(body, &req)
		select {
		case seen <- req:
		default:
		}
		text, _ := req["body"].(map[string]any)["text"].(string)
		switch {
		case strings.Contains(text, "spam"):
			_, _ = w.Write([]byte(`{"allow":false,"reason":"no spam here"}`))
		case strings.Contains(text, "darn"):
			_, _ = w.Write([]byte(`{"allow":true,"body":{"text":"d*rn","extra":1}}`))
		case strings.Contains(text, "broken"):
			_, _ = w.Write([]byte(`{"allow":true,"body":{"txt":"no text field"}}`))
		case strings.Contains(text, "slow"):
			<-r.Context().Done() // never answers before mqim gives up
		default:
			_, _ = w.Write([]byte(`{"allow":true}`))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func beforeSendServer(t *testing.T, backend string, failClosed bool, seen chan map[string]any) *testutil.Server {
	m := moderator(t, seen)
	return testutil.StartServer(t, backend, func(c *config.Config) {
		c.BeforeSend = config.BeforeSend{URL: m.URL, Secret: hookSecret, Timeout: 300 * time.Millisecond, FailClosed: failClosed}
	})
}

// before_send refuses and rewrites over HTTP, MQTT 3.1.1 and MQTT 5;
// system messages skip it, the service key's sends do not.
func TestBeforeSend(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		seen := make(chan map[string]any, 100)
		srv := beforeSendServer(t, backend, false, seen)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		group(t, srv, "g", "alice", "bob")
		bob := srv.Connect(t, "bob", "phone", tb)

		// HTTP.
		st, out := srv.API(t, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "cid": "h1", "type": "text", "body": map[string]any{"text": "buy spam"}})
		if st != 403 || apiError(t, out) != "forbidden" || !strings.Contains(string(out), "no spam here") {
			t.Fatalf("refusal: %d %s", st, out)
		}
		for len(seen) > 0 {
			<-seen
		}
		var m msg
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "cid": "h2", "type": "text", "body": map[string]any{"text": "darn it"}, "mentions": []string{"bob"}}, &m)
		if string(m.Body) != `{"extra":1,"text":"d*rn"}` {
			t.Fatalf("rewritten body %s", m.Body)
		}
		req := <-seen
		if req["from"] != "alice" || req["to"] != "bob" || req["type"] != "text" || req["cid"] != "h2" || fmt.Sprint(req["mentions"]) != "[bob]" {
			t.Fatalf("before_send request %v", req)
		}
		bob.Await(t, wait, map[string]any{"kind": "msg", "cid": "h2", "body": map[string]any{"text": "d*rn", "extra": float64(1)}})
		st, out = srv.API(t, "POST", "/v1/messages", ta, map[string]any{"group": "g", "type": "text", "body": map[string]any{"text": "broken"}})
		if st != 403 || !strings.Contains(string(out), "invalid") {
			t.Fatalf("invalid rewrite: %d %s", st, out)
		}
		// Edits are checked too.
		plain := sendText(t, srv, ta, "bob", "plain")
		if st, out := srv.API(t, "PATCH", "/v1/messages/"+plain.ID, ta, map[string]any{"body": map[string]any{"text": "spam now"}}); st != 403 || !strings.Contains(string(out), "no spam here") {
			t.Fatalf("edit refusal: %d %s", st, out)
		}
		for len(seen) > 0 {
			<-seen
		}
		if c := edit(t, srv, 200, ta, plain.ID, map[string]any{"text": "darn edit"}); string(c.Message.Body) != `{"extra":1,"text":"d*rn"}` {
			t.Fatalf("edit rewritten to %s", c.Message.Body)
		}
		if req := <-seen; req["edit"] != plain.ID || req["to"] != "bob" {
			t.Fatalf("edit's before_send request %v", req)
		}
		// The service key's sends are checked; system messages are not.
		st, _ = srv.API(t, "POST", "/v1/messages", testutil.ServiceKey, map[string]any{"from": "alice", "group": "g", "type": "text", "body": map[string]any{"text": "spam from the backend"}})
		if st != 403 {
			t.Fatalf("service-key send of spam: %d", st)
		}
		srv.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey, map[string]any{"group": "g", "type": "system", "body": map[string]any{"text": "spam by the system"}}, nil)

		// MQTT 3.1.1: the error event carries the reason; a rewrite is delivered.
		a := srv.Connect(t, "alice", "laptop", ta)
		a.MustPublish(t, "im/u/bob", 1, `{"cid":"m1","type":"text","body":{"text":"spam spam"}}`)
		a.Await(t, wait, map[string]any{"kind": "error", "cid": "m1", "code": "forbidden", "message": "no spam here"})
		a.MustPublish(t, "im/g/g", 1, `{"cid":"m2","type":"text","body":{"text":"darn"}}`)
		bob.Await(t, wait, map[string]any{"kind": "msg", "cid": "m2", "body": map[string]any{"text": "d*rn", "extra": float64(1)}})

		// MQTT 5: PUBACK 0x87 for a refusal, success for a rewrite.
		c := connectRaw(t, srv, 5, "alice", "v5", ta)
		c.Write(publish("im/u/bob", 1, 3, `{"cid":"v1","type":"text","body":{"text":"spam"}}`))
		if ack := c.Expect(packets.Puback, wait); ack.PacketID != 3 || ack.ReasonCode != 0x87 {
			t.Fatalf("MQTT 5 refusal: id %d code 0x%02x", ack.PacketID, ack.ReasonCode)
		}
		c.Write(publish("im/u/bob", 1, 4, `{"cid":"v2","type":"text","body":{"text":"darn"}}`))
		if ack := c.Expect(packets.Puback, wait); ack.PacketID != 4 || ack.ReasonCode != 0 {
			t.Fatalf("MQTT 5 rewrite: id %d code 0x%02x", ack.PacketID, ack.ReasonCode)
		}
		bob.Await(t, wait, map[string]any{"kind": "msg", "cid": "v2", "body": map[string]any{"text": "d*rn", "extra": float64(1)}})

		// What was stored is what the hook allowed.
		var texts []string
		for _, m := range history(t, srv, tb, "g:g", 0) {
			texts = append(texts, string(m.Body))
		}
		if joined := strings.Join(texts, "|"); strings.Contains(joined, "broken") || strings.Contains(joined, "backend") || !strings.Contains(joined, "spam by the system") {
			t.Fatalf("group history %s", joined)
		}
	})
}

// A hook that does not answer in time: fail-open allows, fail-closed
// refuses as unavailable (HTTP 503, MQTT 5 PUBACK 0x80).
func TestBeforeSendTimeout(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		for _, failClosed := range []bool{false, true} {
			srv := beforeSendServer(t, backend, failClosed, make(chan map[string]any, 100))
			ta := srv.User(t, "alice")
			srv.User(t, "bob")
			st, out := srv.API(t, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]any{"text": "slow one"}})
			c := connectRaw(t, srv, 5, "alice", "v5", ta)
			c.Write(publish("im/u/bob", 1, 9, `{"cid":"s1","type":"text","body":{"text":"slow"}}`))
			ack := c.Expect(packets.Puback, wait)
			if failClosed {
				if st != 503 || apiError(t, out) != "unavailable" || ack.ReasonCode != 0x80 {
					t.Fatalf("fail-closed: HTTP %d %s, PUBACK 0x%02x", st, out, ack.ReasonCode)
				}
			} else if st != 201 || ack.ReasonCode != 0 {
				t.Fatalf("fail-open: HTTP %d %s, PUBACK 0x%02x", st, out, ack.ReasonCode)
			}
		}
	})
}

// Devices on platforms gorush does not serve get push.requested events,
// with the same mute and mention rules.
func TestWebhookPush(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		h := newHookReceiver(t)
		g := gorushtest.Start(t)
		srv := hookServer(t, backend, h, func(c *config.Config) {
			c.Webhooks[0].Events = []string{"push.requested"}
			c.Push.GorushURL = g.URL
		})
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "mi", "xiaomi", "d//igwEhgBGCI2TG6lWqlK+abc=")
		group(t, srv, "team", "alice", "bob")
		a := srv.Connect(t, "alice", "laptop", ta)
		a.MustPublish(t, "im/u/bob", 1, `{"cid":"p1","type":"text","body":{"text":"ping"}}`)
		ev := a.Await(t, wait, map[string]any{"kind": "msg", "cid": "p1"})
		p := h.await(t, "push.requested", map[string]any{"user": "bob", "platform": "xiaomi", "token": "d//igwEhgBGCI2TG6lWqlK+abc=",
			"title": "Alice", "text": "ping", "collapse_id": "d:alice:bob",
			"data": map[string]any{"conv": "d:alice:bob", "id": ev["id"], "seq": float64(1)}})
		if p["badge"] != float64(1) {
			t.Fatalf("badge: %v", p)
		}
		// Muted: nothing, unless mentioned.
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/g:team", tb, map[string]any{"muted": true}, nil)
		a.MustPublish(t, "im/g/team", 1, `{"cid":"p2","type":"text","body":{"text":"muted, no push"}}`)
		a.MustPublish(t, "im/g/team", 1, `{"cid":"p3","type":"text","body":{"text":"@bob look"},"mentions":["bob"]}`)
		h.await(t, "push.requested", map[string]any{"title": "Group team", "text": "Alice: @bob look"})
		pushSettled(t, srv, 3)
		for _, d := range h.of("push.requested") {
			if d["text"] == "Alice: muted, no push" {
				t.Fatalf("pushed a muted conversation: %v", d)
			}
		}
		if n := len(h.of("push.requested")); n != 2 {
			t.Fatalf("%d push.requested events", n)
		}
		if got := g.Received(); len(got) != 0 {
			t.Fatalf("gorush got a vendor platform's push: %+v", got)
		}
	})
}

// pushSettled waits until the planner decided on n messages and the
// webhook receiver 0 has been given everything.
func pushSettled(t *testing.T, srv *testutil.Server, n int64) {
	t.Helper()
	testutil.Eventually(t, wait, func() error {
		if got := srv.Planner.Planned.Load(); got < n {
			return fmt.Errorf("planned %d of %d", got, n)
		}
		if s := srv.Webhooks.Stats(0); s.Delivered+s.Failed+s.Dropped < s.Queued {
			return fmt.Errorf("webhook: %+v", s)
		}
		return nil
	})
}

// With push.via webhook every platform goes out as push.requested and
// gorush is never called.
func TestWebhookPushViaWebhook(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		h := newHookReceiver(t)
		g := gorushtest.Start(t)
		srv := hookServer(t, backend, h, func(c *config.Config) {
			c.Push.GorushURL = g.URL
			c.Push.Via = config.PushViaWebhook
			c.Push.IOSTopic = "com.example.im"
		})
		if srv.Push != nil {
			t.Fatal("gorush dispatcher built with push.via webhook")
		}
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "iphone", "ios", apnsToken("bob-iphone"))
		device(t, srv, tb, "pixel", "android", "fcm-bob")
		a := srv.Connect(t, "alice", "laptop", ta)
		a.MustPublish(t, "im/u/bob", 1, "via the product")
		h.await(t, "push.requested", map[string]any{"platform": "ios", "token": apnsToken("bob-iphone"), "topic": "com.example.im", "text": "via the product"})
		h.await(t, "push.requested", map[string]any{"platform": "android", "token": "fcm-bob"})
		pushSettled(t, srv, 1)
		if got := g.Received(); len(got) != 0 {
			t.Fatalf("gorush called with push.via webhook: %+v", got)
		}
	})
}

// The webhook counters are in /metrics, labelled by receiver index.
func TestWebhookMetrics(t *testing.T) {
	h := newHookReceiver(t)
	srv := hookServer(t, "sqlite", h)
	tb := srv.User(t, "bob")
	srv.Connect(t, "bob", "phone", tb)
	h.await(t, "user.online", map[string]any{"user": "bob"})
	testutil.Eventually(t, wait, func() error {
		_, out := srv.API(t, "GET", "/metrics", testutil.ServiceKey, nil)
		for _, want := range []string{`mqim_webhook_delivered_total{receiver="0"} 1`, `mqim_webhook_dropped_total{receiver="0"} 0`,
			`mqim_webhook_receiver_info{host="` + strings.TrimPrefix(h.URL, "http://") + `",receiver="0"} 1`} {
			if !strings.Contains(string(out), want) {
				return fmt.Errorf("no %s in /metrics", want)
			}
		}
		if strings.Contains(string(out), hookSecret) {
			t.Fatal("the secret is in /metrics")
		}
		return nil
	})
}
