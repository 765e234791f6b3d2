package e2e

import (
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// connackCode connects raw and returns the CONNACK's code.
func connackCode(t *testing.T, srv *testutil.Server, version byte, pk func(*testutil.Raw) packets.Packet) byte {
	t.Helper()
	c := testutil.DialRaw(t, srv.MQTTAddr, version)
	c.Write(pk(c))
	return c.Expect(packets.Connack, wait).ReasonCode
}

func connectAs(clientID, user, pass string) func(*testutil.Raw) packets.Packet {
	return func(c *testutil.Raw) packets.Packet { return c.RawConnect(clientID, user, pass) }
}

func withWill(topic string, qos byte, retain bool, f func(*testutil.Raw) packets.Packet) func(*testutil.Raw) packets.Packet {
	return func(c *testutil.Raw) packets.Packet {
		pk := f(c)
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, topic, []byte(`{"kind":"msg","from":"alice","type":"text","body":{"text":"forged"}}`)
		pk.Connect.WillQos, pk.Connect.WillRetain = qos, retain
		return pk
	}
}

// Every CONNECT refusal has the code that names its reason, on both
// versions, and a 3.1.1 client only ever gets a 3.1.1 code.
func TestConnectRefusalCodes(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta := srv.User(t, "alice")
		srv.User(t, "bob")
		dis := srv.User(t, "dis")
		srv.MustAPI(t, 200, "PUT", "/v1/users/dis", testutil.ServiceKey, map[string]any{"disabled": true}, nil)
		group(t, srv, "g1", "bob")
		notClean := func(f func(*testutil.Raw) packets.Packet) func(*testutil.Raw) packets.Packet {
			return func(c *testutil.Raw) packets.Packet { pk := f(c); pk.Connect.Clean = false; return pk }
		}
		for _, tc := range []struct {
			name   string
			pk     func(*testutil.Raw) packets.Packet
			v5, v3 byte
		}{
			{"accepted", connectAs("alice/ok", "alice", ta), 0x00, 0x00},
			{"bad token", connectAs("alice/x", "alice", "not-a-token"), 0x86, 0x04},
			{"token of another user", connectAs("bob/x", "bob", ta), 0x86, 0x04},
			{"disabled user", connectAs("dis/x", "dis", dis), 0x8A, 0x05},
			{"another user's client id", connectAs("bob/x", "alice", ta), 0x85, 0x02},
			{"client id without device", connectAs("alice", "alice", ta), 0x85, 0x02},
			{"zero-length client id", connectAs("", "alice", ta), 0x85, 0x02},
			{"zero-length client id, persistent", notClean(connectAs("", "alice", ta)), 0x85, 0x02},
			{"reserved client id", connectAs("inline", "alice", ta), 0x85, 0x02},
			{"will to another inbox", withWill("im/u/bob", 1, false, connectAs("alice/w1", "alice", ta)), 0x87, 0x05},
			{"retained will to an inbox", withWill("im/u/bob", 1, true, connectAs("alice/w2", "alice", ta)), 0x87, 0x05},
			{"will to one's own inbox", withWill("im/u/alice", 0, false, connectAs("alice/w3", "alice", ta)), 0x87, 0x05},
			{"will to a group one is not in", withWill("im/g/g1", 1, false, connectAs("alice/w4", "alice", ta)), 0x87, 0x05},
			{"will outside im/ (closed topics)", withWill("plain/x", 1, false, connectAs("alice/w5", "alice", ta)), 0x87, 0x05},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, v := range []struct {
					version, want byte
				}{{5, tc.v5}, {4, tc.v3}} {
					if got := connackCode(t, srv, v.version, tc.pk); got != v.want {
						t.Errorf("MQTT %d: CONNACK 0x%02x, want 0x%02x", v.version, got, v.want)
					}
				}
			})
		}
	})
}

// A will may not forge events: refused at CONNECT, so an abrupt end of the
// connection publishes nothing, on either version; where topics are open a
// will on a plain topic still works, accepted at QoS 1 even when asked at 2.
func TestWillCannotForgeEvents(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.MQTT.OpenTopics = true })
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		bob := srv.Connect(t, "bob", "phone", tb)
		for _, v := range []byte{4, 5} {
			if got := connackCode(t, srv, v, withWill("im/u/bob", 1, true, connectAs(fmt.Sprintf("alice/evil%d", v), "alice", ta))); got < 0x80 && got != 0x05 || got == 0 {
				t.Fatalf("MQTT %d will on im/u/bob accepted: 0x%02x", v, got)
			}
		}
		// A will allowed on an open topic, at QoS 2 from 3.1.1: accepted,
		// delivered on an abrupt close.
		watch := srv.Connect(t, "bob", "watch", tb)
		if tok := watch.Subscribe("plain/status", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal("subscribe", tok.Error())
		}
		c := testutil.DialRaw(t, srv.MQTTAddr, 4)
		pk := c.RawConnect("alice/will", "alice", ta)
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillQos = true, "plain/status", []byte("alice gone"), 2
		c.Write(pk)
		if ack := c.Expect(packets.Connack, wait); ack.ReasonCode != 0 {
			t.Fatalf("3.1.1 will at QoS 2 on an open topic: CONNACK 0x%02x", ack.ReasonCode)
		}
		c.Close()
		m := watch.Next(t, wait)
		if m.Topic != "plain/status" || string(m.Payload) != "alice gone" || m.QoS != 1 {
			t.Fatalf("will delivered as %s %q QoS %d", m.Topic, m.Payload, m.QoS)
		}
		// Nothing forged ever reached bob's inbox: the next thing there is
		// a real message.
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": "real"}}, nil)
		if ev := bob.Await(t, wait, map[string]any{"kind": "msg"}); ev["body"].(map[string]any)["text"] != "real" {
			t.Fatalf("bob's first message: %v", ev)
		}
	})
}

// One user's connected devices and persistent sessions are capped; a
// reconnect of the same client id is a takeover and still works at the cap.
func TestSessionCaps(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.MQTT.MaxDevicesPerUser, c.MQTT.MaxSessionsPerUser = 3, 2
		})
		ta := srv.User(t, "alice")
		persistent := func(id string) func(*testutil.Raw) packets.Packet {
			return func(c *testutil.Raw) packets.Packet {
				pk := c.RawConnect(id, "alice", ta)
				pk.Connect.Clean = false
				if c.Version == 5 {
					pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
				}
				return pk
			}
		}
		// Two persistent sessions: the third is refused, whether connected or not.
		for i, v := range []byte{4, 5} {
			c := testutil.DialRaw(t, srv.MQTTAddr, v)
			c.Write(persistent(fmt.Sprintf("alice/p%d", i))(c))
			if ack := c.Expect(packets.Connack, wait); ack.ReasonCode != 0 {
				t.Fatalf("persistent session %d: 0x%02x", i, ack.ReasonCode)
			}
			c.Close() // offline now, still a session
		}
		testutil.Eventually(t, wait, func() error {
			if srv.Broker.Connected("alice/p0") || srv.Broker.Connected("alice/p1") {
				return fmt.Errorf("persistent sessions still connected")
			}
			return nil
		})
		if got := connackCode(t, srv, 5, persistent("alice/p2")); got != 0x97 {
			t.Fatalf("MQTT 5 third persistent session: 0x%02x, want 0x97", got)
		}
		if got := connackCode(t, srv, 4, persistent("alice/p2")); got != 0x03 {
			t.Fatalf("3.1.1 third persistent session: 0x%02x, want 0x03", got)
		}
		// A takeover of an existing persistent session is no new session.
		if got := connackCode(t, srv, 4, persistent("alice/p0")); got != 0 {
			t.Fatalf("resuming a persistent session at the cap: 0x%02x", got)
		}
		// Three connected devices (the resumed p0 is one of them).
		live := []*testutil.Raw{}
		for i := 0; i < 2; i++ {
			c := testutil.DialRaw(t, srv.MQTTAddr, 5)
			c.Write(c.RawConnect(fmt.Sprintf("alice/d%d", i), "alice", ta))
			if ack := c.Expect(packets.Connack, wait); ack.ReasonCode != 0 {
				t.Fatalf("device %d: 0x%02x", i, ack.ReasonCode)
			}
			live = append(live, c)
		}
		testutil.Eventually(t, wait, func() error {
			for _, id := range []string{"alice/p0", "alice/d0", "alice/d1"} {
				if !srv.Broker.Settled(id) {
					return fmt.Errorf("%s not registered yet", id)
				}
			}
			return nil
		})
		if got := connackCode(t, srv, 5, connectAs("alice/d9", "alice", ta)); got != 0x97 {
			t.Fatalf("MQTT 5 fourth device: 0x%02x, want 0x97", got)
		}
		if got := connackCode(t, srv, 4, connectAs("alice/d9", "alice", ta)); got != 0x03 {
			t.Fatalf("3.1.1 fourth device: 0x%02x, want 0x03", got)
		}
		// Taking over d0 is allowed, and the old connection is told why.
		if got := connackCode(t, srv, 5, connectAs("alice/d0", "alice", ta)); got != 0 {
			t.Fatalf("takeover at the cap: 0x%02x", got)
		}
		if d := live[0].Expect(packets.Disconnect, wait); d.ReasonCode != 0x8E {
			t.Fatalf("taken-over connection: DISCONNECT 0x%02x, want 0x8E", d.ReasonCode)
		}
	})
}

// A connection does not outlive its token, and a password change or a
// disable ends the user's connections (MQTT 5 is told why; 3.1.1 is closed,
// never sent a DISCONNECT) and revokes the tokens issued before.
func TestConnectionLifetime(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		srv.User(t, "alice")
		var short struct {
			Token string `json:"token"`
		}
		srv.MustAPI(t, 200, "POST", "/v1/users/alice/tokens", testutil.ServiceKey, map[string]any{"ttl_seconds": 1}, &short)
		v5 := testutil.DialRaw(t, srv.MQTTAddr, 5)
		v5.Write(v5.RawConnect("alice/v5", "alice", short.Token))
		v3 := testutil.DialRaw(t, srv.MQTTAddr, 4)
		v3.Write(v3.RawConnect("alice/v3", "alice", short.Token))
		for _, c := range []*testutil.Raw{v5, v3} {
			if ack := c.Expect(packets.Connack, wait); ack.ReasonCode != 0 {
				t.Fatalf("connect: 0x%02x", ack.ReasonCode)
			}
		}
		if d := v5.Expect(packets.Disconnect, 3*wait); d.ReasonCode != 0xA0 {
			t.Fatalf("MQTT 5 at token expiry: DISCONNECT 0x%02x, want 0xA0", d.ReasonCode)
		}
		for _, pk := range v3.ExpectClosed(3 * wait) {
			if pk.FixedHeader.Type == packets.Disconnect {
				t.Fatalf("a 3.1.1 client was sent a DISCONNECT (received % x)", v3.Received.Bytes())
			}
		}

		for _, change := range []map[string]any{{"password": "a new password"}, {"disabled": true}} {
			// A fresh token, the user enabled again after the disable case.
			srv.MustAPI(t, 200, "PUT", "/v1/users/alice", testutil.ServiceKey, map[string]any{"disabled": false}, nil)
			tok := srv.User(t, "alice")
			c5 := testutil.DialRaw(t, srv.MQTTAddr, 5)
			c5.Write(c5.RawConnect("alice/a", "alice", tok))
			c3 := testutil.DialRaw(t, srv.MQTTAddr, 4)
			c3.Write(c3.RawConnect("alice/b", "alice", tok))
			for _, c := range []*testutil.Raw{c5, c3} {
				if ack := c.Expect(packets.Connack, wait); ack.ReasonCode != 0 {
					t.Fatalf("%v: connect 0x%02x", change, ack.ReasonCode)
				}
			}
			testutil.Eventually(t, wait, func() error {
				if !srv.Broker.Connected("alice/a") || !srv.Broker.Connected("alice/b") {
					return fmt.Errorf("not registered yet")
				}
				return nil
			})
			srv.MustAPI(t, 200, "PUT", "/v1/users/alice", testutil.ServiceKey, change, nil)
			if d := c5.Expect(packets.Disconnect, wait); d.ReasonCode != 0x98 {
				t.Fatalf("%v: MQTT 5 DISCONNECT 0x%02x, want 0x98", change, d.ReasonCode)
			}
			for _, pk := range c3.ExpectClosed(wait) {
				if pk.FixedHeader.Type == packets.Disconnect {
					t.Fatalf("%v: a 3.1.1 client was sent a DISCONNECT", change)
				}
			}
			want := byte(0x86) // revoked
			if change["disabled"] == true {
				want = 0x8A
			}
			if got := connackCode(t, srv, 5, connectAs("alice/a", "alice", tok)); got != want {
				t.Fatalf("%v: reconnect with the old token: 0x%02x, want 0x%02x", change, got, want)
			}
			if st, _ := srv.API(t, "GET", "/v1/conversations", tok, nil); st != 401 {
				t.Fatalf("%v: old token over HTTP: %d, want 401", change, st)
			}
		}
	})
}
