package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// ask publishes a request on im/rpc and returns its reply from the
// device's reply topic.
func ask(t *testing.T, c *testutil.Client, id, method string, params any) map[string]any {
	t.Helper()
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.Marshal(req)
	c.MustPublish(t, "im/rpc", 1, b)
	return c.Await(t, wait, map[string]any{"kind": "reply", "id": id})
}

// result decodes a reply's result into v, failing on an error reply.
func result(t *testing.T, rep map[string]any, v any) {
	t.Helper()
	if rep["error"] != nil {
		t.Fatalf("reply %v: an error", rep)
	}
	b, _ := json.Marshal(rep["result"])
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("reply %v: %v", rep, err)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func replyCode(rep map[string]any) string {
	e, _ := rep["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// A device that speaks only MQTT (3.1.1 here, no HTTP at all) catches up
// over im/rpc: it lists its conversations page by page, pages history both
// ways, marks read, pins, reads profiles, groups, members and presence, and
// renews its token, each answered on its reply topic exactly as the HTTP
// twin answers; errors come back as the same codes.
func TestRequestsOverMQTT(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.User(t, "carol")
		group(t, srv, "g", "carol", "alice")
		for i := 1; i <= 25; i++ {
			srv.MustAPI(t, 201, "POST", "/v1/messages", tb, map[string]any{"to": "alice", "type": "text", "body": map[string]string{"text": fmt.Sprint(i)}}, nil)
		}
		dev := srv.Connect(t, "alice", "iot", ta)

		// The conversation list, one per page: the cursor comes as next_cursor.
		var page []listRow
		rep := ask(t, dev, "c1", "conversations", map[string]any{"limit": 1})
		result(t, rep, &page)
		cursor, _ := rep["next_cursor"].(string)
		if len(page) != 1 || page[0].ID != "d:alice:bob" || page[0].Unread != 25 || cursor == "" {
			t.Fatalf("first page %+v, cursor %q", page, cursor)
		}
		rep = ask(t, dev, "c2", "conversations", map[string]any{"limit": 1, "cursor": cursor})
		result(t, rep, &page)
		if len(page) != 1 || page[0].ID != "g:g" || rep["next_cursor"] != nil {
			t.Fatalf("second page %+v, reply %v", page, rep)
		}
		// The same as HTTP answers: one implementation.
		var viaHTTP []listRow
		srv.MustAPI(t, 200, "GET", "/v1/conversations?limit=1&cursor="+cursor, ta, nil, &viaHTTP)
		if a, b := mustMarshal(t, page), mustMarshal(t, viaHTTP); a != b {
			t.Fatalf("over MQTT %+v, over HTTP %+v", page, viaHTTP)
		}

		// History, forward from the start and backward from the end.
		var ms []msg
		result(t, ask(t, dev, "m1", "messages", map[string]any{"conv": "d:alice:bob", "after_seq": 0, "limit": 10}), &ms)
		if len(ms) != 10 || ms[0].Seq != 1 || ms[9].Seq != 10 {
			t.Fatalf("forward page: %+v", ms)
		}
		result(t, ask(t, dev, "m2", "messages", map[string]any{"conv": "d:alice:bob", "before_seq": 11, "limit": 3}), &ms)
		if len(ms) != 3 || ms[0].Seq != 10 || ms[2].Seq != 8 {
			t.Fatalf("backward page: %+v", ms)
		}
		result(t, ask(t, dev, "m3", "messages", map[string]any{"conv": "d:alice:bob"}), &ms)
		if len(ms) == 0 || ms[0].Seq != 25 {
			t.Fatalf("newest page: %+v", ms)
		}

		// Read, pin, unread.
		var read struct {
			ReadSeq int64 `json:"read_seq"`
		}
		result(t, ask(t, dev, "r1", "read", map[string]any{"conv": "d:alice:bob", "seq": 20}), &read)
		if read.ReadSeq != 20 {
			t.Fatalf("read: %+v", read)
		}
		var un struct {
			Total int64 `json:"total"`
		}
		result(t, ask(t, dev, "u1", "unread", nil), &un)
		if un.Total != 5 {
			t.Fatalf("unread total %d, want 5", un.Total)
		}
		// The pin's conv event reaches the device's inbox before the reply.
		dev.MustPublish(t, "im/rpc", 1, `{"id":"p1","method":"conversation.update","params":{"conv":"d:alice:bob","pinned":true}}`)
		dev.Await(t, wait, map[string]any{"kind": "conv", "conv": "d:alice:bob", "pinned": true})
		var conv listRow
		if result(t, dev.Await(t, wait, map[string]any{"kind": "reply", "id": "p1"}), &conv); !conv.Pinned {
			t.Fatalf("pin: %+v", conv)
		}

		// Profiles, groups, members, presence.
		var u struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		result(t, ask(t, dev, "x1", "user", map[string]any{"user_id": "bob"}), &u)
		if u.ID != "bob" || u.Name != "Bob" {
			t.Fatalf("user: %+v", u)
		}
		var members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		}
		result(t, ask(t, dev, "x2", "members", map[string]any{"group": "g"}), &members)
		if len(members) != 2 || members[0].UserID != "carol" || members[0].Role != "owner" {
			t.Fatalf("members: %+v", members)
		}
		var g map[string]any
		result(t, ask(t, dev, "x3", "group", map[string]any{"group": "g"}), &g)
		if !strings.Contains(fmt.Sprint(g), "carol") {
			t.Fatalf("group: %v", g)
		}
		var pres map[string]struct {
			Online bool `json:"online"`
		}
		result(t, ask(t, dev, "x4", "presence", map[string]any{"user_ids": []string{"alice", "bob"}}), &pres)
		if !pres["alice"].Online || pres["bob"].Online {
			t.Fatalf("presence: %+v", pres)
		}

		// A fresh token, good for the next connect.
		var tok struct {
			Token     string `json:"token"`
			ExpiresAt int64  `json:"expires_at"`
		}
		result(t, ask(t, dev, "t1", "token", nil), &tok)
		srv.Connect(t, "alice", "renewed", tok.Token)

		// Errors: the codes of every door.
		for _, c := range []struct {
			id, method string
			params     any
			code       string
		}{
			{"e1", "messages", map[string]any{"conv": "d:bob:carol"}, "not_found"},
			{"e2", "messages", map[string]any{}, "invalid"},
			{"e3", "messages", map[string]any{"conv": "d:alice:bob", "limit": 500}, "invalid"},
			{"e4", "launch", nil, "invalid"},
			{"e5", "read", map[string]any{"conv": "d:alice:bob"}, "invalid"},
			{"e6", "messages", map[string]any{"conv": "../../v1/unread"}, "not_found"}, // escaped: a conversation id, never a path
			{"e7", "conversations", map[string]any{"limit": "ten"}, "invalid"},
			{"e8", "conversations", map[string]any{"cursor": "bogus"}, "invalid"},
			{"e9", "group", map[string]any{"group": "nope"}, "not_found"},
		} {
			if rep := ask(t, dev, c.id, c.method, c.params); replyCode(rep) != c.code {
				t.Errorf("%s %v: reply %v, want %s", c.method, c.params, rep, c.code)
			}
		}
		// Without an id the answer says id null.
		dev.MustPublish(t, "im/rpc", 1, `{"method":"unread"}`)
		if rep := dev.Await(t, wait, map[string]any{"kind": "reply"}); rep["id"] != nil || replyCode(rep) != "invalid" {
			t.Fatalf("request without id: %v", rep)
		}
		dev.MustPublish(t, "im/rpc", 1, `{"id":"d","id":"e","method":"unread"}`)
		if rep := dev.Await(t, wait, map[string]any{"kind": "reply"}); rep["id"] != nil || replyCode(rep) != "invalid" {
			t.Fatalf("request with a key twice: %v", rep)
		}
	})
}

// MQTT 5: a client that asks for Response Information learns its reply
// topic in the CONNACK; a request with its own Response Topic and
// Correlation Data gets the reply with that Correlation Data; another
// device's Response Topic is refused with 0x87 and not answered; a reply
// topic is nobody else's to subscribe to; a refused request's PUBACK
// carries the reply's code.
func TestRequestsMQTT5(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		srv.User(t, "bob")
		c := testutil.DialRaw(t, srv.MQTTAddr, 5)
		pk := c.RawConnect("alice/v5", "alice", ta)
		pk.Properties.RequestResponseInfo = 1
		c.Write(pk)
		ack := c.Expect(packets.Connack, wait)
		if ack.ReasonCode != 0 || ack.Properties.ResponseInfo != "im/r/alice/v5" {
			t.Fatalf("CONNACK 0x%02x, response information %q", ack.ReasonCode, ack.Properties.ResponseInfo)
		}
		testutil.Eventually(t, wait, func() error {
			if !srv.Broker.Settled("alice/v5") {
				return fmt.Errorf("not set up")
			}
			return nil
		})
		req := publish("im/rpc", 1, 5, `{"id":"q1","method":"unread"}`)
		req.Properties.ResponseTopic, req.Properties.CorrelationData = "im/r/alice/v5", []byte{0xCA, 0xFE}
		req.Mods.AllowResponseInfo = true // Mochi's encoder writes these properties only then
		c.Write(req)
		var gotAck, gotReply bool
		for !gotAck || !gotReply {
			p, err := c.Read(wait)
			if err != nil {
				t.Fatalf("waiting for the reply and PUBACK: %v", err)
			}
			switch p.FixedHeader.Type {
			case packets.Puback:
				if p.PacketID == 5 {
					gotAck = p.ReasonCode == 0
				}
			case packets.Publish:
				if p.TopicName != "im/r/alice/v5" || !bytes.Contains(p.Payload, []byte(`"id":"q1"`)) || !bytes.Equal(p.Properties.CorrelationData, []byte{0xCA, 0xFE}) {
					t.Fatalf("reply %s on %s, correlation % x", p.Payload, p.TopicName, p.Properties.CorrelationData)
				}
				gotReply = true
				c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: p.PacketID})
			}
		}
		// Another device's response topic: refused, unanswered.
		req = publish("im/rpc", 1, 6, `{"id":"q2","method":"unread"}`)
		req.Properties.ResponseTopic = "im/r/bob/phone"
		req.Mods.AllowResponseInfo = true
		c.Write(req)
		if ack := c.Expect(packets.Puback, wait); ack.ReasonCode != 0x87 {
			t.Fatalf("foreign response topic: PUBACK 0x%02x", ack.ReasonCode)
		}
		// A refused request: its code in the PUBACK too (after the reply).
		c.Write(publish("im/rpc", 1, 7, `{"id":"q3","method":"messages","params":{"conv":"d:bob:carol"}}`))
		for {
			p, err := c.Read(wait)
			if err != nil {
				t.Fatal(err)
			}
			if p.FixedHeader.Type == packets.Publish {
				if bytes.Contains(p.Payload, []byte(`"q2"`)) {
					t.Fatalf("a request with a foreign response topic was answered: %s", p.Payload)
				}
				c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: p.PacketID})
				continue
			}
			if p.FixedHeader.Type == packets.Puback && p.PacketID == 7 {
				if p.ReasonCode != 0x87 {
					t.Fatalf("refused request: PUBACK 0x%02x, want 0x87 (not_found)", p.ReasonCode)
				}
				break
			}
		}
		// bob may not subscribe to alice's reply topic, nor to the request topic.
		tb := srv.User(t, "bob")
		b := connectRaw(t, srv, 5, "bob", "spy", tb)
		b.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 9,
			Filters: packets.Subscriptions{{Filter: "im/r/alice/v5", Qos: 1}, {Filter: "im/rpc", Qos: 1}, {Filter: "im/r/bob/spy", Qos: 1}}})
		sub := b.Expect(packets.Suback, wait)
		if len(sub.ReasonCodes) != 3 || sub.ReasonCodes[0] < 0x80 || sub.ReasonCodes[1] < 0x80 || sub.ReasonCodes[2] >= 0x80 {
			t.Fatalf("SUBACK % x: want the other's reply topic and im/rpc refused, its own granted", sub.ReasonCodes)
		}
	})
}

// Requests count against the user's send rate: past the burst, the reply
// is rate_limited with when to retry (and the MQTT 5 PUBACK 0x97).
func TestRequestRateLimit(t *testing.T) {
	srv := testutil.StartServer(t, "sqlite", func(c *config.Config) { c.Limits.SendRate, c.Limits.SendBurst = 0.01, 2 })
	ta := srv.User(t, "alice")
	c := connectRaw(t, srv, 5, "alice", "r", ta)
	for i := uint16(1); i <= 3; i++ {
		c.Write(publish("im/rpc", 1, i, fmt.Sprintf(`{"id":"q%d","method":"unread"}`, i)))
	}
	var replies []string
	acks := 0
	for len(replies) < 3 || acks < 3 {
		p, err := c.Read(wait)
		if err != nil {
			t.Fatalf("after %v: %v", replies, err)
		}
		switch p.FixedHeader.Type {
		case packets.Publish:
			replies = append(replies, string(p.Payload))
			c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: p.PacketID})
		case packets.Puback:
			if want := map[uint16]byte{1: 0, 2: 0, 3: 0x97}[p.PacketID]; p.ReasonCode != want {
				t.Fatalf("request %d: PUBACK 0x%02x, want 0x%02x", p.PacketID, p.ReasonCode, want)
			}
			acks++
		}
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(replies[2]), &last); err != nil {
		t.Fatal(err)
	}
	e, _ := last["error"].(map[string]any)
	if last["id"] != "q3" || e["code"] != "rate_limited" || e["retry_after"] == nil {
		t.Fatalf("third reply %v, want rate_limited with retry_after", last)
	}
}
