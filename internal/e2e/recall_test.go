package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/push/gorush/gorushtest"
)

// sent is a message stored by sendText.
type sent struct {
	ID  string `json:"id"`
	Seq int64  `json:"seq"`
	TS  int64  `json:"ts"`
}

// sendText sends a text over HTTP, to a user or (with a "g:" prefix) a group.
func sendText(t *testing.T, srv *testutil.Server, tok, to, text string) sent {
	t.Helper()
	in := map[string]any{"type": "text", "body": map[string]string{"text": text}}
	if gid, ok := strings.CutPrefix(to, "g:"); ok {
		in["group"] = gid
	} else {
		in["to"] = to
	}
	var m sent
	srv.MustAPI(t, 201, "POST", "/v1/messages", tok, in, &m)
	return m
}

// change is the answer of a recall or an edit.
type change struct {
	Message struct {
		ID       string          `json:"id"`
		Body     json.RawMessage `json:"body"`
		Recalled bool            `json:"recalled"`
		EditedAt int64           `json:"edited_at"`
	} `json:"message"`
	Record *struct {
		ID   string          `json:"id"`
		Seq  int64           `json:"seq"`
		Type string          `json:"type"`
		From string          `json:"from"`
		Body json.RawMessage `json:"body"`
	} `json:"record"`
}

func recall(t *testing.T, srv *testutil.Server, want int, tok, id string) change {
	t.Helper()
	var c change
	var v any
	if want == 200 {
		v = &c
	}
	srv.MustAPI(t, want, "POST", "/v1/messages/"+id+"/recall", tok, nil, v)
	return c
}

func edit(t *testing.T, srv *testutil.Server, want int, tok, id string, body any) change {
	t.Helper()
	var c change
	var v any
	if want == 200 {
		v = &c
	}
	srv.MustAPI(t, want, "PATCH", "/v1/messages/"+id, tok, map[string]any{"body": body}, v)
	return c
}

// histMsg is a message as history shows it, with the change fields.
type histMsg struct {
	ID       string          `json:"id"`
	Seq      int64           `json:"seq"`
	From     string          `json:"from"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	Recalled bool            `json:"recalled"`
	EditedAt int64           `json:"edited_at"`
}

func fullHistory(t *testing.T, srv *testutil.Server, tok, conv string, after int64) []histMsg {
	t.Helper()
	var page []histMsg
	srv.MustAPI(t, 200, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=200", conv, after), tok, nil, &page)
	return page
}

// convLast is a conversation of the list with its last message.
type convLast struct {
	ID          string   `json:"id"`
	LastSeq     int64    `json:"last_seq"`
	Unread      int64    `json:"unread"`
	LastMessage *histMsg `json:"last_message"`
}

func convWithLast(t *testing.T, srv *testutil.Server, tok, id string) convLast {
	t.Helper()
	var list []convLast
	srv.MustAPI(t, 200, "GET", "/v1/conversations", tok, nil, &list)
	for _, c := range list {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("conversation %s not in the list", id)
	return convLast{}
}

// next returns the next event a client receives.
func next(t *testing.T, c *testutil.Client) map[string]any {
	t.Helper()
	return c.Next(t, wait).Event(t)
}

// A sender recalls inside the window over MQTT and over HTTP: every device
// of both users gets the recall event (and no msg event for the record),
// history keeps the message in place, recalled and without its body, and
// shows the records; catch-up carries them, they count as unread, and the
// conversation's last message stays the (recalled) last message. A second
// recall is a no-op; the peer may not recall; a recall on another topic
// finds nothing.
func TestRecallBySender(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb, tc := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		a1, a2 := srv.Connect(t, "alice", "a1", ta), srv.Connect(t, "alice", "a2", ta)
		b1, b2 := srv.Connect(t, "bob", "b1", tb), srv.Connect(t, "bob", "b2", tb)
		devices := []*testutil.Client{a1, a2, b1, b2}
		m1 := sendText(t, srv, ta, "bob", "oops")
		m2 := sendText(t, srv, ta, "bob", "oops again")
		sendText(t, srv, ta, "carol", "hi carol") // a conversation with carol exists
		for _, c := range devices {
			c.Await(t, wait, map[string]any{"kind": "msg", "seq": 2, "conv": "d:alice:bob"})
		}
		a1.Await(t, wait, map[string]any{"kind": "msg", "conv": "d:alice:carol"})
		a2.Await(t, wait, map[string]any{"kind": "msg", "conv": "d:alice:carol"})

		// Over MQTT, on the conversation's topic.
		a1.MustPublish(t, "im/u/bob", 1, fmt.Sprintf(`{"kind":"recall","id":%q}`, m1.ID))
		for _, c := range devices {
			ev := next(t, c)
			if !testutil.Matches(ev, map[string]any{"kind": "recall", "conv": "d:alice:bob", "id": m1.ID, "by": "alice", "seq": 3}) || ev["ts"] == nil {
				t.Fatalf("%s: next event %v, want the recall event at seq 3", c.ID, ev)
			}
		}
		// Over HTTP.
		res := recall(t, srv, 200, ta, m2.ID)
		if !res.Message.Recalled || string(res.Message.Body) != "null" || res.Record == nil || res.Record.Seq != 4 ||
			res.Record.Type != "recall" || res.Record.From != "alice" || string(res.Record.Body) != fmt.Sprintf(`{"id":%q}`, m2.ID) {
			t.Fatalf("HTTP recall answered %+v", res)
		}
		for _, c := range devices {
			if ev := next(t, c); !testutil.Matches(ev, map[string]any{"kind": "recall", "id": m2.ID, "by": "alice", "seq": 4}) {
				t.Fatalf("%s: next event %v, want the recall event at seq 4", c.ID, ev)
			}
		}
		// Again: a no-op, no record, no event (the next event is the next message).
		if again := recall(t, srv, 200, ta, m2.ID); again.Record != nil || !again.Message.Recalled {
			t.Fatalf("second recall answered %+v, want the recalled message and no record", again)
		}
		a1.MustPublish(t, "im/u/bob", 1, fmt.Sprintf(`{"kind":"recall","id":%q}`, m2.ID))
		// bob may not recall alice's message; nor may anyone recall it on another topic.
		recall(t, srv, 403, tb, m1.ID)
		b1.MustPublish(t, "im/u/alice", 1, fmt.Sprintf(`{"kind":"recall","id":%q,"cid":"r-bob"}`, m1.ID))
		b1.Await(t, wait, map[string]any{"kind": "error", "cid": "r-bob", "code": "forbidden", "device": "b1"})
		a1.MustPublish(t, "im/u/carol", 1, fmt.Sprintf(`{"kind":"recall","id":%q,"cid":"r-wrong"}`, m1.ID))
		a1.Await(t, wait, map[string]any{"kind": "error", "cid": "r-wrong", "code": "not_found"})
		recall(t, srv, 404, tc, m1.ID)         // carol is not in the conversation
		recall(t, srv, 404, ta, "01NOSUCHMSG") // no such message
		// A record cannot be recalled.
		recall(t, srv, 403, ta, res.Record.ID)
		sendText(t, srv, ta, "bob", "marker")
		if ev := next(t, b2); !testutil.Matches(ev, map[string]any{"kind": "error", "cid": "r-bob"}) { // to all of bob's devices
			t.Fatalf("b2: next event %v, want bob's error", ev)
		}
		for _, c := range []*testutil.Client{b1, b2} {
			if ev := next(t, c); !testutil.Matches(ev, map[string]any{"kind": "msg", "seq": 5, "type": "text"}) {
				t.Fatalf("%s: next event %v, want the marker message at seq 5 (no event for a no-op)", c.ID, ev)
			}
		}

		// History: in place, recalled, no body; the records are messages.
		h := fullHistory(t, srv, tb, "d:alice:bob", 0)
		if len(h) != 5 {
			t.Fatalf("history has %d messages, want 5: %+v", len(h), h)
		}
		for _, m := range h[:2] {
			if !m.Recalled || string(m.Body) != "null" || m.Type != "text" {
				t.Errorf("history shows %+v, want recalled with a null body", m)
			}
		}
		if h[2].Type != "recall" || h[2].From != "alice" || h[3].Type != "recall" || string(h[2].Body) != fmt.Sprintf(`{"id":%q}`, m1.ID) {
			t.Errorf("records in history: %+v %+v", h[2], h[3])
		}
		// A device that was away catches up the records.
		if got := fullHistory(t, srv, tb, "d:alice:bob", 2); len(got) != 3 || got[0].Type != "recall" || got[1].Type != "recall" {
			t.Errorf("catch-up after seq 2 = %+v, want the two records and the marker", got)
		}

		// Unread counts the records; the last message is the last content one.
		recall(t, srv, 200, ta, sendText(t, srv, ta, "bob", "last").ID)
		c := convWithLast(t, srv, tb, "d:alice:bob")
		if c.LastSeq != 7 || c.Unread != 7 || c.LastMessage == nil || c.LastMessage.Seq != 6 || !c.LastMessage.Recalled || string(c.LastMessage.Body) != "null" {
			t.Errorf("bob's conversation: %+v (last %+v), want last_seq 7, unread 7, last message seq 6 recalled", c, c.LastMessage)
		}
		if c := convWithLast(t, srv, ta, "d:alice:bob"); c.Unread != 0 {
			t.Errorf("alice's unread = %d, want 0 (the actor has read the record)", c.Unread)
		}
		// Clients may not store records as messages.
		srv.MustAPI(t, 403, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "recall", "body": map[string]string{"id": m1.ID}}, nil)
		a1.MustPublish(t, "im/u/bob", 1, `{"cid":"fake","type":"edit","body":{"id":"x","body":{"text":"y"}}}`)
		a1.Await(t, wait, map[string]any{"kind": "error", "cid": "fake", "code": "forbidden"})
	})
}

// Outside the window the sender is refused (forbidden; MQTT 5 PUBACK 0x87,
// 3.1.1 an error event); a group's owner and admins recall any message at
// any time, a plain member nobody else's; the recall event reaches every
// device of every member. The service key recalls as itself.
func TestRecallWindowAndRoles(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.Chat.RecallWindow = time.Millisecond })
		tok := map[string]string{}
		for _, u := range []string{"alice", "bob", "carol", "dave", "eve"} {
			tok[u] = srv.User(t, u)
		}
		group(t, srv, "g", "alice", "bob", "carol", "dave")
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/g/members/bob", testutil.ServiceKey, map[string]any{"role": "admin"}, nil)
		var devices []*testutil.Client
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			devices = append(devices, srv.Connect(t, u, u+"1", tok[u]), srv.Connect(t, u, u+"2", tok[u]))
		}
		v5, err := srv.DialV5(t, "carol", "v5", tok["carol"])
		if err != nil {
			t.Fatal(err)
		}
		m := sendText(t, srv, tok["carol"], "g:g", "carol's")
		d := sendText(t, srv, tok["dave"], "g:g", "dave's")
		testutil.Eventually(t, wait, func() error { // the window passes
			if time.Now().UnixMilli() <= d.TS+1 {
				return fmt.Errorf("the 1ms window of seq %d is not over", d.Seq)
			}
			return nil
		})
		// The sender, too late.
		recall(t, srv, 403, tok["carol"], m.ID)
		if rc, err := v5.Publish("im/g/g", 1, []byte(fmt.Sprintf(`{"kind":"recall","id":%q}`, m.ID))); err != nil || rc != 0x87 {
			t.Fatalf("MQTT 5 late recall: PUBACK 0x%02x (%v), want 0x87", rc, err)
		}
		if rc, _ := v5.Publish("im/g/g", 1, []byte(`{"kind":"recall"}`)); rc != 0x99 {
			t.Fatalf("MQTT 5 recall without id: PUBACK 0x%02x, want 0x99", rc)
		}
		if rc, _ := v5.Publish("im/u/alice", 1, []byte(fmt.Sprintf(`{"kind":"recall","id":%q}`, m.ID))); rc != 0x87 {
			t.Fatalf("MQTT 5 recall on another topic: PUBACK 0x%02x, want 0x87 (not_found)", rc)
		}
		devices[4].MustPublish(t, "im/g/g", 1, fmt.Sprintf(`{"kind":"recall","id":%q,"cid":"late"}`, m.ID)) // carol1, 3.1.1
		devices[4].Await(t, wait, map[string]any{"kind": "error", "cid": "late", "code": "forbidden"})
		// A plain member may not recall another's message; a non-member finds nothing.
		recall(t, srv, 403, tok["dave"], m.ID)
		recall(t, srv, 404, tok["eve"], m.ID)
		// The admin may, at any time, over MQTT; every device of every member hears it.
		devices[2].MustPublish(t, "im/g/g", 1, fmt.Sprintf(`{"kind":"recall","id":%q}`, m.ID)) // bob1
		for _, c := range devices {
			c.Await(t, wait, map[string]any{"kind": "recall", "conv": "g:g", "id": m.ID, "by": "bob", "seq": 5})
		}
		// The owner too, over HTTP; and the service key, as itself.
		if res := recall(t, srv, 200, tok["alice"], d.ID); res.Record == nil || res.Record.From != "alice" || res.Record.Seq != 6 {
			t.Fatalf("owner's recall answered %+v", res)
		}
		x := sendText(t, srv, tok["dave"], "g:g", "moderate me")
		if res := recall(t, srv, 200, testutil.ServiceKey, x.ID); res.Record == nil || res.Record.From != "" {
			t.Fatalf("service recall answered %+v", res)
		}
		for _, c := range devices {
			c.Await(t, wait, map[string]any{"kind": "recall", "id": x.ID, "by": "", "seq": 8})
		}
		// The service key acting for a user is held to that user's rules.
		srv.MustAPI(t, 403, "POST", "/v1/messages/"+sendText(t, srv, tok["dave"], "g:g", "again").ID+"/recall?user_id=carol", testutil.ServiceKey, nil, nil)
		// System messages cannot be recalled, even by the owner.
		h := fullHistory(t, srv, tok["alice"], "g:g", 0)
		if h[0].Type != "system" {
			t.Fatalf("history starts with %+v", h[0])
		}
		recall(t, srv, 403, tok["alice"], h[0].ID)
		if h[2].ID != m.ID || !h[2].Recalled || h[4].Type != "recall" || h[4].From != "bob" {
			t.Errorf("group history: %+v", h[:5])
		}
	})
}

// Edit: one's own text message only, validated like a send; the edit event
// reaches every device, history shows the new body and edited_at, and the
// record; others' messages and non-text ones are forbidden, a recalled one
// too, and the same text is a no-op.
func TestEdit(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		a1, a2 := srv.Connect(t, "alice", "a1", ta), srv.Connect(t, "alice", "a2", ta)
		b1, b2 := srv.Connect(t, "bob", "b1", tb), srv.Connect(t, "bob", "b2", tb)
		v5, err := srv.DialV5(t, "bob", "v5", tb)
		if err != nil {
			t.Fatal(err)
		}
		m := sendText(t, srv, ta, "bob", "teh typo")
		var img sent
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "image", "body": map[string]any{"url": "https://x/y.png"}}, &img)
		for _, c := range []*testutil.Client{a1, a2, b1, b2} {
			c.Await(t, wait, map[string]any{"kind": "msg", "seq": 2})
		}
		a1.MustPublish(t, "im/u/bob", 1, fmt.Sprintf(`{"kind":"edit","id":%q,"body":{"text":"the typo"}}`, m.ID))
		for _, c := range []*testutil.Client{a1, a2, b1, b2} {
			ev := next(t, c)
			body, _ := ev["body"].(map[string]any)
			if !testutil.Matches(ev, map[string]any{"kind": "edit", "conv": "d:alice:bob", "id": m.ID, "by": "alice", "seq": 3}) || body["text"] != "the typo" {
				t.Fatalf("%s: next event %v, want the edit event", c.ID, ev)
			}
		}
		h := fullHistory(t, srv, tb, "d:alice:bob", 0)
		if len(h) != 3 || string(h[0].Body) != `{"text":"the typo"}` || h[0].EditedAt == 0 || h[2].Type != "edit" ||
			string(h[2].Body) != fmt.Sprintf(`{"body":{"text":"the typo"},"id":%q}`, m.ID) {
			t.Fatalf("history after the edit: %+v", h)
		}
		if c := convWithLast(t, srv, tb, "d:alice:bob"); c.LastSeq != 3 || c.Unread != 3 || c.LastMessage == nil || c.LastMessage.Seq != 2 {
			t.Errorf("bob's conversation after the edit: %+v", c)
		}
		// Over HTTP, by the service key for alice; the same text again is a no-op.
		srv.MustAPI(t, 200, "PATCH", "/v1/messages/"+m.ID+"?user_id=alice", testutil.ServiceKey, map[string]any{"body": map[string]string{"text": "v3"}}, nil)
		if res := edit(t, srv, 200, ta, m.ID, map[string]string{"text": "v3"}); res.Record != nil || string(res.Message.Body) != `{"text":"v3"}` || res.Message.EditedAt == 0 {
			t.Fatalf("no-op edit answered %+v", res)
		}
		// Refusals.
		edit(t, srv, 403, tb, m.ID, map[string]string{"text": "bob's words"}) // not the sender
		edit(t, srv, 403, ta, img.ID, map[string]string{"text": "not an image"})
		edit(t, srv, 400, ta, m.ID, map[string]string{"url": "no text"})
		edit(t, srv, 400, ta, m.ID, nil)
		edit(t, srv, 413, ta, m.ID, map[string]string{"text": strings.Repeat("x", 5001)})
		edit(t, srv, 403, testutil.ServiceKey, m.ID, map[string]string{"text": "as the service"})
		srv.MustAPI(t, 400, "PATCH", "/v1/messages/"+m.ID, ta, `{"body":{"text":"a","text":"b"}}`, nil)
		if rc, _ := v5.Publish("im/u/alice", 1, []byte(fmt.Sprintf(`{"kind":"edit","id":%q,"body":{"text":"mine now"}}`, m.ID))); rc != 0x87 {
			t.Fatalf("MQTT 5 edit of another's message: PUBACK 0x%02x, want 0x87", rc)
		}
		if rc, _ := v5.Publish("im/u/alice", 1, []byte(fmt.Sprintf(`{"kind":"edit","id":%q,"body":{"text":1}}`, m.ID))); rc != 0x99 {
			t.Fatalf("MQTT 5 edit with a bad body: PUBACK 0x%02x, want 0x99", rc)
		}
		b1.MustPublish(t, "im/u/alice", 1, fmt.Sprintf(`{"kind":"edit","cid":"e-bob","id":%q,"body":{"text":"x"}}`, m.ID))
		b1.Await(t, wait, map[string]any{"kind": "error", "cid": "e-bob", "code": "forbidden"})
		// A recalled message cannot be edited; records cannot either.
		res := recall(t, srv, 200, ta, m.ID)
		edit(t, srv, 403, ta, m.ID, map[string]string{"text": "back"})
		edit(t, srv, 403, ta, res.Record.ID, map[string]string{"text": "record"})
		if h := fullHistory(t, srv, tb, "d:alice:bob", 0); !h[0].Recalled || string(h[0].Body) != "null" {
			t.Errorf("after recalling the edited message: %+v", h[0])
		}
	})
}

// A recall or an edit pushes the offline recipient with the conversation's
// thread id (so it replaces the message's notification): "[message
// recalled]", or the new text; the badge counts the record; a muted
// recipient is not pushed.
func TestRecallAndEditPush(t *testing.T) {
	eachPushServer(t, func(t *testing.T, srv *testutil.Server, g *gorushtest.Server) {
		ta, tb, tc := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		device(t, srv, tb, "phone", "ios", apnsToken("bob-phone"))
		device(t, srv, tc, "phone", "android", "and-carol")
		m := sendText(t, srv, ta, "bob", "first")
		edit(t, srv, 200, ta, m.ID, map[string]string{"text": "second"})
		recall(t, srv, 200, ta, m.ID)
		n := sendText(t, srv, ta, "carol", "to carol")
		settled(t, srv, 4) // pushed before she mutes
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/d:alice:carol", tc, map[string]any{"muted": true}, nil)
		recall(t, srv, 200, ta, n.ID)
		settled(t, srv, 5)
		got := g.Received()
		var texts, toCarol []string
		for _, p := range got {
			switch {
			case p.Data["conv"] == "d:alice:carol":
				toCarol = append(toCarol, p.Message)
			case p.ThreadID != "d:alice:bob" || p.Title != "Alice" || p.Badge == nil:
				t.Errorf("push %+v, want bob's conversation from Alice", p)
			default:
				texts = append(texts, p.Message)
				if p.Message == "[message recalled]" && *p.Badge != 3 {
					t.Errorf("the recall's push has badge %d, want 3 (the message and both records)", *p.Badge)
				}
			}
		}
		sort.Strings(texts) // planned by several workers: in any order
		if strings.Join(texts, ",") != "[message recalled],first,second" {
			t.Errorf("pushes to bob: %q", texts)
		}
		if strings.Join(toCarol, ",") != "to carol" {
			t.Errorf("pushes to carol: %q, want only the message (she muted before the recall)", toCarol)
		}
	})
}
