package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/testutil"
)

// connectRaw connects a raw client and waits for its session set-up.
func connectRaw(t *testing.T, srv *testutil.Server, version byte, uid, device, token string) *testutil.Raw {
	t.Helper()
	c := testutil.DialRaw(t, srv.MQTTAddr, version)
	c.Write(c.RawConnect(uid+"/"+device, uid, token))
	if ack := c.Expect(packets.Connack, wait); ack.ReasonCode != 0 {
		t.Fatalf("connect %s/%s: 0x%02x", uid, device, ack.ReasonCode)
	}
	testutil.Eventually(t, wait, func() error {
		if !srv.Broker.Settled(uid + "/" + device) {
			return fmt.Errorf("%s/%s: session not set up", uid, device)
		}
		return nil
	})
	return c
}

func publish(topic string, qos byte, id uint16, payload string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte(payload)}
}

// history returns the texts of a conversation's messages, oldest first.
func historyTexts(t *testing.T, srv *testutil.Server, token, conv string) []string {
	t.Helper()
	var out []string
	for _, m := range history(t, srv, token, conv, 0) {
		var b struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(m.Body, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Text)
	}
	return out
}

// Inbound QoS 2 on both versions: PUBREC after the commit, then
// PUBREL/PUBCOMP, stored once; an MQTT 5 refusal is a PUBREC with the code.
func TestQoS2Inbound(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.User(t, "carol")
		group(t, srv, "closed", "carol")
		bob := srv.Connect(t, "bob", "phone", tb)
		for _, v := range []byte{4, 5} {
			c := connectRaw(t, srv, v, "alice", fmt.Sprintf("q2v%d", v), ta)
			c.Write(publish("im/u/bob", 2, 7, fmt.Sprintf(`{"cid":"q2-%d","type":"text","body":{"text":"exactly once %d"}}`, v, v)))
			rec := c.Expect(packets.Pubrec, wait)
			if rec.PacketID != 7 || rec.ReasonCode != 0 {
				t.Fatalf("MQTT %d: PUBREC id %d code 0x%02x", v, rec.PacketID, rec.ReasonCode)
			}
			// PUBREC came after the commit: the message is in the store.
			if texts := historyTexts(t, srv, tb, "d:alice:bob"); len(texts) == 0 || texts[len(texts)-1] != fmt.Sprintf("exactly once %d", v) {
				t.Fatalf("MQTT %d: history after PUBREC: %q", v, texts)
			}
			c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 7})
			if comp := c.Expect(packets.Pubcomp, wait); comp.PacketID != 7 {
				t.Fatalf("MQTT %d: PUBCOMP id %d", v, comp.PacketID)
			}
			bob.Await(t, wait, map[string]any{"kind": "msg", "cid": fmt.Sprintf("q2-%d", v)})
		}
		if texts := historyTexts(t, srv, tb, "d:alice:bob"); strings.Join(texts, "|") != "exactly once 4|exactly once 5" {
			t.Fatalf("stored: %q", texts)
		}
		// Refused at QoS 2 over MQTT 5: PUBREC 0x87, not a PUBACK.
		c := connectRaw(t, srv, 5, "alice", "q2r", ta)
		c.Write(publish("im/g/closed", 2, 9, `{"cid":"nm","type":"text","body":{"text":"x"}}`))
		if rec := c.Expect(packets.Pubrec, wait); rec.PacketID != 9 || rec.ReasonCode != 0x87 {
			t.Fatalf("refused QoS 2: PUBREC id %d code 0x%02x, want 0x87", rec.PacketID, rec.ReasonCode)
		}
	})
}

// Acknowledgements and events carry only what MQTT requires: a PUBACK for
// a publish with a user property is a bare success, an event carries no
// Message Expiry Interval and none of the publisher's properties.
func TestAcksAndEventsCarryNoExtraProperties(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		bob := connectRaw(t, srv, 5, "bob", "raw", tb)
		alice := connectRaw(t, srv, 5, "alice", "raw", ta)
		pk := publish("im/u/bob", 1, 3, `{"cid":"p1","type":"text","body":{"text":"hi"}}`)
		pk.Properties.User = []packets.UserProperty{{Key: "a", Val: "2"}}
		pk.Properties.MessageExpiryInterval = 60
		mark := alice.Received.Len()
		alice.Write(pk)
		alice.Expect(packets.Puback, wait)
		raw := alice.Received.Bytes()[mark:]
		if i := bytes.IndexByte(raw, 0x40); i < 0 || !bytes.HasPrefix(raw[i:], []byte{0x40, 0x02, 0x00, 0x03}) {
			t.Fatalf("PUBACK bytes % x, want 40 02 00 03", raw)
		}
		ev := bob.Expect(packets.Publish, wait)
		if ev.Properties.MessageExpiryInterval != 0 || len(ev.Properties.User) != 0 {
			t.Fatalf("event properties: expiry %d, user %v", ev.Properties.MessageExpiryInterval, ev.Properties.User)
		}
		if !bytes.Contains(ev.Payload, []byte(`"cid":"p1"`)) {
			t.Fatalf("event payload %s", ev.Payload)
		}
	})
}

// A 3.1.1 client whose QoS 1 publish the ACL refuses is closed, never sent
// a DISCONNECT (that packet flows only client to server in 3.1.1).
func TestV3ACLRefusalCloses(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		for _, topic := range []string{"plain/topic", "im/r/alice/x", "im/u/+"} {
			c := connectRaw(t, srv, 4, "alice", "acl", ta)
			c.Write(publish(topic, 1, 1, "x"))
			for _, pk := range c.ExpectClosed(wait) {
				if pk.FixedHeader.Type == packets.Disconnect || pk.FixedHeader.Type == packets.Puback {
					t.Fatalf("%s: got packet type %d (received % x)", topic, pk.FixedHeader.Type, c.Received.Bytes())
				}
			}
		}
	})
}

// MQTT 3.1 over WebSocket: the mqttv3.1 subprotocol is offered, and an
// MQTT 3.1 (MQIsdp) client connects.
func TestWebSocketMQTT31(t *testing.T) {
	srv := testutil.StartServer(t, "sqlite")
	ta := srv.User(t, "alice")
	d := websocket.Dialer{Subprotocols: []string{"mqttv3.1"}}
	ws, resp, err := d.Dial("ws://"+srv.WSAddr+"/mqtt", http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqttv3.1" {
		t.Fatalf("subprotocol %q, want mqttv3.1", got)
	}
	raw := &testutil.Raw{Version: 3}
	var buf bytes.Buffer
	pk := raw.RawConnect("alice/ws31", "alice", ta)
	pk.ProtocolVersion = 3
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4 || b[0] != 0x20 || b[3] != 0x00 {
		t.Fatalf("CONNACK % x, want 20 02 00 00", b)
	}
}
