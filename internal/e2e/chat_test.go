// Package e2e drives whole mqim servers (real broker on loopback, real HTTP
// stack, real SQLite and MariaDB) with paho clients, as devices would.
package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

const wait = 10 * time.Second

func group(t *testing.T, srv *testutil.Server, gid, owner string, members ...string) {
	t.Helper()
	srv.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey,
		map[string]any{"id": gid, "name": "Group " + gid, "owner": owner, "members": members}, nil)
}

// pairInGroup creates alice, bob and carol, makes alice and bob group g,
// and connects the devices alice/a and bob/b. It returns the three users'
// tokens and the two clients.
func pairInGroup(t *testing.T, srv *testutil.Server) (ta, tb, tc string, a, b *testutil.Client) {
	t.Helper()
	ta, tb, tc = srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
	group(t, srv, "g", "alice", "bob")
	return ta, tb, tc, srv.Connect(t, "alice", "a", ta), srv.Connect(t, "bob", "b", tb)
}

type conv struct {
	ID      string `json:"id"`
	LastSeq int64  `json:"last_seq"`
	ReadSeq int64  `json:"read_seq"`
	Unread  int64  `json:"unread"`
	Member  bool   `json:"member"`
}

func convs(t *testing.T, srv *testutil.Server, tok string) map[string]conv {
	t.Helper()
	var list []conv
	srv.MustAPI(t, 200, "GET", "/v1/conversations", tok, nil, &list)
	out := map[string]conv{}
	for _, c := range list {
		out[c.ID] = c
	}
	return out
}

type msg struct {
	ID   string          `json:"id"`
	Seq  int64           `json:"seq"`
	From string          `json:"from"`
	CID  string          `json:"cid"`
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

func history(t *testing.T, srv *testutil.Server, tok, conv string, after int64) []msg {
	t.Helper()
	var all []msg
	for {
		var page []msg
		srv.MustAPI(t, 200, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=200", conv, after), tok, nil, &page)
		all = append(all, page...)
		if len(page) < 200 {
			return all
		}
		after = page[len(page)-1].Seq
	}
}

// The README quick start in miniature: a plain-text publish with no
// SUBSCRIBE anywhere reaches both of bob's devices and alice's other device.
func TestDirectTextReachesAllDevices(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		laptop := srv.Connect(t, "alice", "laptop", ta)
		aphone := srv.Connect(t, "alice", "phone", ta)
		bphone := srv.Connect(t, "bob", "phone", tb)
		bweb := srv.Connect(t, "bob", "web", tb)
		laptop.MustPublish(t, "im/u/bob", 1, "hi")
		want := map[string]any{"kind": "msg", "conv": "d:alice:bob", "seq": 1, "from": "alice", "to": "bob", "type": "text"}
		for _, c := range []*testutil.Client{bphone, bweb, aphone, laptop} {
			ev := c.Await(t, wait, want)
			if ev["body"].(map[string]any)["text"] != "hi" || len(ev["id"].(string)) != 26 {
				t.Fatalf("%s got %v", c.ID, ev)
			}
		}
		// The stored copy is the same message.
		h := history(t, srv, tb, "d:alice:bob", 0)
		if len(h) != 1 || h[0].Seq != 1 || h[0].From != "alice" {
			t.Fatalf("history = %+v", h)
		}
		// Notes to self: one conversation d:alice:alice.
		laptop.MustPublish(t, "im/u/alice", 1, "note")
		aphone.Await(t, wait, map[string]any{"conv": "d:alice:alice", "seq": 1})
	})
}

func TestGroupSendMembershipAndMute(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb, tc, td := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol"), srv.User(t, "dave")
		group(t, srv, "team", "alice", "bob", "carol")
		a := srv.Connect(t, "alice", "a", ta)
		b := srv.Connect(t, "bob", "b", tb)
		c := srv.Connect(t, "carol", "c", tc)
		d := srv.Connect(t, "dave", "d", td)
		a.MustPublish(t, "im/g/team", 1, `{"cid":"m1","type":"text","body":{"text":"hello team"}}`)
		for _, cl := range []*testutil.Client{a, b, c} {
			cl.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:team", "seq": 2, "from": "alice", "cid": "m1"})
		}
		// A non-member is refused with not_member and nothing is stored.
		d.MustPublish(t, "im/g/team", 1, `{"cid":"x1","type":"text","body":{"text":"let me in"}}`)
		d.Await(t, wait, map[string]any{"kind": "error", "cid": "x1", "code": "not_member"})
		// Muting is done by the owner; the muted member's send is refused.
		srv.MustAPI(t, 200, "PATCH", "/v1/groups/team/members/bob", ta, map[string]any{"muted_until": time.Now().Add(time.Hour).UnixMilli()}, nil)
		b.MustPublish(t, "im/g/team", 1, `{"cid":"b1","type":"text","body":{"text":"can I talk?"}}`)
		b.Await(t, wait, map[string]any{"kind": "error", "cid": "b1", "code": "muted"})
		h := history(t, srv, ta, "g:team", 0)
		for _, m := range h {
			if m.CID == "x1" || m.CID == "b1" {
				t.Fatalf("refused message stored: %+v", m)
			}
		}
		// created, m1, muted: three messages, no gaps.
		if len(h) != 3 || h[0].Seq != 1 || h[2].Seq != 3 || h[2].Type != "system" {
			t.Fatalf("history = %+v", h)
		}
		// An MQTT 5 non-member gets PUBACK 0x87.
		v5, err := srv.DialV5(t, "dave", "v5", td)
		if err != nil {
			t.Fatal(err)
		}
		if rc, err := v5.Publish("im/g/team", 1, []byte("hi")); rc != 0x87 {
			t.Fatalf("v5 non-member: reason 0x%x err %v", rc, err)
		}
	})
}

// 50 clients × 100 messages into one group, concurrently: the messages take
// consecutive seqs with no gap or repeat, each sender's order holds, every
// online member receives all of them, and no id repeats.
func TestConcurrentGroupSendsSeqs(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		const senders, each = 50, 100
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.MQTT.MaxWritesPending = 8192 })
		var uids []string
		toks := map[string]string{}
		for i := 0; i < senders; i++ {
			uid := fmt.Sprintf("u%02d", i)
			uids = append(uids, uid)
			toks[uid] = srv.User(t, uid)
		}
		group(t, srv, "big", uids[0], uids[1:]...)
		clients := make([]*testutil.Client, senders)
		for i, uid := range uids {
			clients[i] = srv.Connect(t, uid, "d", toks[uid])
		}
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for i, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < each; j++ {
					p := fmt.Sprintf(`{"cid":"%s-%03d","type":"text","body":{"text":"m %d"}}`, uids[i], j, j)
					if err := cl.Publish("im/g/big", 1, p); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Every online member receives every message, in seq order per topic.
		for _, cl := range clients {
			seen := map[int64]bool{}
			lastSeq := int64(1)
			deadline := time.After(60 * time.Second)
			for len(seen) < senders*each {
				select {
				case m := <-cl.Msgs:
					var ev msg
					if err := json.Unmarshal(m.Payload, &ev); err != nil || ev.Type != "text" {
						continue
					}
					if ev.Seq <= lastSeq || seen[ev.Seq] {
						t.Fatalf("%s: seq %d after %d", cl.ID, ev.Seq, lastSeq)
					}
					lastSeq = ev.Seq
					seen[ev.Seq] = true
				case <-deadline:
					t.Fatalf("%s received %d of %d", cl.ID, len(seen), senders*each)
				}
			}
		}
		h := history(t, srv, toks[uids[0]], "g:big", 1)
		if len(h) != senders*each {
			t.Fatalf("stored %d messages, want %d", len(h), senders*each)
		}
		ids := map[string]bool{}
		lastBySender := map[string]int{}
		for i, m := range h {
			if m.Seq != int64(i+2) {
				t.Fatalf("position %d has seq %d: gap or repeat", i, m.Seq)
			}
			if ids[m.ID] {
				t.Fatalf("id %s repeats", m.ID)
			}
			ids[m.ID] = true
			var n int
			fmt.Sscanf(m.CID[strings.Index(m.CID, "-")+1:], "%d", &n)
			if last, ok := lastBySender[m.From]; ok && n != last+1 {
				t.Fatalf("%s: message %d stored after %d", m.From, n, last)
			}
			lastBySender[m.From] = n
		}
		commits, stored := srv.Chat.Stats()
		t.Logf("%s: %d messages in %d commits (%.1f per commit)", backend, stored, commits, float64(stored)/float64(commits))
	})
}

func TestResendSameCIDStoredOnce(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		a := srv.Connect(t, "alice", "a", ta)
		b := srv.Connect(t, "bob", "b", tb)
		p := `{"cid":"same-1","type":"text","body":{"text":"once"}}`
		a.MustPublish(t, "im/u/bob", 1, p)
		first := a.Await(t, wait, map[string]any{"cid": "same-1"})
		a.MustPublish(t, "im/u/bob", 1, p)
		again := a.Await(t, wait, map[string]any{"cid": "same-1"})
		a.Disconnect(100)
		a2 := srv.Connect(t, "alice", "a", ta)
		a2.MustPublish(t, "im/u/bob", 1, p)
		third := a2.Await(t, wait, map[string]any{"cid": "same-1"})
		for _, ev := range []map[string]any{again, third} {
			if ev["id"] != first["id"] || ev["seq"] != first["seq"] {
				t.Fatalf("resend echo %v differs from original %v", ev, first)
			}
		}
		// The same cid over HTTP is a duplicate too (200, original id).
		var dup msg
		srv.MustAPI(t, 200, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "cid": "same-1", "type": "text", "body": map[string]string{"text": "once"}}, &dup)
		if dup.ID != first["id"] {
			t.Fatalf("HTTP duplicate id %s, want %v", dup.ID, first["id"])
		}
		if h := history(t, srv, tb, "d:alice:bob", 0); len(h) != 1 {
			t.Fatalf("stored %d copies", len(h))
		}
		b.Await(t, wait, map[string]any{"cid": "same-1"})
	})
}

func TestInvalidPayloadsRefused(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.Chat.MaxTextChars = 50 })
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		a := srv.Connect(t, "alice", "a", ta)
		v5, err := srv.DialV5(t, "alice", "v5", ta)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, payload, code string
			reason              byte
		}{
			{"bad json", `{"cid":"j1","type":"text","body":`, "invalid", 0x99},
			{"unknown kind", `{"cid":"k1","kind":"dance"}`, "invalid", 0x99},
			{"unknown type", `{"cid":"t1","type":"hologram","body":{}}`, "invalid", 0x99},
			{"text too long", `{"cid":"l1","type":"text","body":{"text":"` + strings.Repeat("x", 51) + `"}}`, "too_large", 0x97},
			{"body not object", `{"cid":"o1","type":"text","body":"hi"}`, "invalid", 0x99},
			{"image without url", `{"cid":"i1","type":"image","body":{}}`, "invalid", 0x99},
			{"system from client", `{"cid":"s1","type":"system","body":{}}`, "forbidden", 0x87},
			{"invalid utf8", "\xff\xfe bad", "invalid", 0x99},
			{"unknown user", `{"cid":"u1","type":"text","body":{"text":"x"}}`, "not_found", 0x87},
		}
		for _, tc := range cases {
			topic := "im/u/bob"
			if tc.name == "unknown user" {
				topic = "im/u/nobody"
			}
			if err := a.Publish(topic, 1, tc.payload); err != nil {
				t.Fatalf("%s: v3 publish: %v", tc.name, err)
			}
			want := map[string]any{"kind": "error", "code": tc.code}
			ev := a.Await(t, wait, want)
			if cid, _ := ev["cid"].(string); tc.name != "invalid utf8" && cid == "" {
				t.Fatalf("%s: error event without cid: %v", tc.name, ev)
			}
			rc, _ := v5.Publish(topic, 1, []byte(tc.payload))
			if rc != tc.reason {
				t.Fatalf("%s: v5 reason 0x%x, want 0x%x", tc.name, rc, tc.reason)
			}
		}
		// Both connections are still usable, and nothing was stored.
		a.MustPublish(t, "im/u/bob", 1, "still here")
		a.Await(t, wait, map[string]any{"kind": "msg", "seq": 1})
		if rc, err := v5.Publish("im/u/bob", 1, []byte("v5 too")); rc != 0 || err != nil {
			t.Fatalf("v5 valid publish: 0x%x %v", rc, err)
		}
		if h := history(t, srv, tb, "d:alice:bob", 0); len(h) != 2 {
			t.Fatalf("history has %d messages, want 2", len(h))
		}
		// QoS 0 refusals are dropped, answered with the error event.
		a.MustPublish(t, "im/u/bob", 0, `{"cid":"q0","type":"nope","body":{}}`)
		a.Await(t, wait, map[string]any{"kind": "error", "cid": "q0"})
	})
}

func TestUnreadJoinLeaveAndTyping(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb, tc, a, b := pairInGroup(t, srv)
		a.MustPublish(t, "im/u/bob", 1, "1")
		a.MustPublish(t, "im/u/bob", 1, "2")
		a.MustPublish(t, "im/u/bob", 1, "3")
		a.MustPublish(t, "im/g/g", 1, "g1")
		a.MustPublish(t, "im/g/g", 1, "g2")
		b.Await(t, wait, map[string]any{"conv": "g:g", "seq": 3})
		cb := convs(t, srv, tb)
		if cb["d:alice:bob"].Unread != 3 || cb["g:g"].Unread != 2 {
			t.Fatalf("bob unread: %+v", cb)
		}
		if ca := convs(t, srv, ta); ca["d:alice:bob"].Unread != 0 || ca["g:g"].Unread != 0 {
			t.Fatalf("sender unread: %+v", ca)
		}
		// A read over MQTT, and a receipt to alice.
		b.MustPublish(t, "im/u/alice", 1, `{"kind":"read","seq":2}`)
		a.Await(t, wait, map[string]any{"kind": "read", "conv": "d:alice:bob", "user": "bob", "seq": 2})
		srv.MustAPI(t, 200, "POST", "/v1/conversations/g:g/read", tb, map[string]any{"seq": 3}, nil)
		b.MustPublish(t, "im/u/alice", 1, "reply")
		cb = convs(t, srv, tb)
		if cb["d:alice:bob"].Unread != 0 || cb["g:g"].Unread != 0 {
			t.Fatalf("bob after reads: %+v", cb)
		}
		if ca := convs(t, srv, ta); ca["d:alice:bob"].Unread != 1 {
			t.Fatalf("alice after bob's reply: %+v", ca)
		}
		// A new member starts at 0 unread and sees history from the join.
		srv.MustAPI(t, 200, "POST", "/v1/groups/g/members", ta, map[string]any{"user_ids": []string{"carol"}}, nil)
		c := srv.Connect(t, "carol", "c", tc)
		if cc := convs(t, srv, tc); cc["g:g"].Unread != 0 {
			t.Fatalf("carol: %+v", cc)
		}
		h := history(t, srv, tc, "g:g", 0)
		if len(h) != 1 || h[0].Type != "system" {
			t.Fatalf("carol's history: %+v", h)
		}
		a.MustPublish(t, "im/g/g", 1, "welcome")
		c.Await(t, wait, map[string]any{"conv": "g:g", "from": "alice", "type": "text"})
		if cc := convs(t, srv, tc); cc["g:g"].Unread != 1 {
			t.Fatalf("carol after welcome: %+v", cc)
		}
		// Bob leaves: he is told, then receives nothing more from the group.
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/g/members/bob", tb, nil, nil)
		b.Await(t, wait, map[string]any{"kind": "group", "event": "left", "user": "bob"})
		a.MustPublish(t, "im/g/g", 1, "after bob left")
		a.MustPublish(t, "im/u/bob", 1, "direct still works")
		b.Await(t, wait, map[string]any{"conv": "d:alice:bob", "from": "alice"})
		b.Quiet(t, 200*time.Millisecond, map[string]any{"conv": "g:g", "type": "text"})
		if cb := convs(t, srv, tb); cb["g:g"].Member || cb["g:g"].Unread != 0 {
			t.Fatalf("bob's view after leaving: %+v", cb["g:g"])
		}
		// Typing reaches the peer at QoS 0 and is never stored.
		a.MustPublish(t, "im/u/bob", 1, `{"kind":"typing"}`)
		for {
			m := b.Next(t, wait)
			if ev := m.Event(t); ev["kind"] == "typing" {
				if m.QoS != 0 || ev["user"] != "alice" || ev["conv"] != "d:alice:bob" {
					t.Fatalf("typing: qos %d %v", m.QoS, ev)
				}
				break
			}
		}
		before := convs(t, srv, tb)["d:alice:bob"].LastSeq
		a.MustPublish(t, "im/u/bob", 1, `{"kind":"typing"}`)
		if after := convs(t, srv, tb)["d:alice:bob"].LastSeq; after != before {
			t.Fatalf("typing advanced seq %d -> %d", before, after)
		}
	})
}

// A device with a persistent session (clean=false) that was offline gets
// its inbox and group messages on return (replayed from the store), with
// no SUBSCRIBE of its own.
func TestPersistentSessionQueuesWhileOffline(t *testing.T) {
	testutil.EachServer(t, func(t *testing.T, srv *testutil.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		group(t, srv, "g", "alice", "bob")
		persistent := func(o *mqtt.ClientOptions) { o.SetCleanSession(false) }
		b := srv.Connect(t, "bob", "phone", tb, persistent)
		b.Disconnect(100)
		a := srv.Connect(t, "alice", "a", ta)
		a.MustPublish(t, "im/u/bob", 1, "while away")
		a.MustPublish(t, "im/g/g", 1, "group while away")
		b2 := srv.Connect(t, "bob", "phone", tb, persistent)
		got := map[string]bool{}
		for len(got) < 2 {
			ev := b2.Next(t, wait).Event(t)
			if ev["type"] == "text" {
				got[ev["conv"].(string)] = true
			}
		}
	})
}
