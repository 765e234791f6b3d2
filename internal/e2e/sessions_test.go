package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// This file tests persistent sessions served from the store
// (docs/protocol.md, "Persistent sessions").

// sessionExpiry is the MQTT 5 session expiry the tests ask for (seconds).
const sessionExpiry = 3600

// connectPersistent opens a persistent session of uid/device over MQTT
// version 4 (clean=false) or 5 (clean start off, session expiry > 0) and
// returns the connection and the CONNACK's session present flag.
func connectPersistent(t *testing.T, addr string, version byte, uid, device, tok string, expiry uint32) (*testutil.Raw, bool) {
	t.Helper()
	c := testutil.DialRaw(t, addr, version)
	pk := c.RawConnect(uid+"/"+device, uid, tok)
	pk.Connect.Clean = false
	if version == 5 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = expiry, true
	}
	c.Write(pk)
	ack := c.Expect(packets.Connack, wait)
	if ack.ReasonCode != 0 {
		t.Fatalf("connect %s/%s: 0x%02x", uid, device, ack.ReasonCode)
	}
	return c, ack.SessionPresent
}

// delivered is one event a raw client received.
type delivered struct {
	topic string
	pid   uint16
	dup   bool
	kind  string
	conv  string
	seq   int64
	ev    map[string]any
}

// receive reads events until n msg events arrived, acknowledging each
// QoS 1 one unless noAck, failing after within. Other events are kept too.
func receive(t *testing.T, c *testutil.Raw, n int, within time.Duration, noAck bool) (msgs, others []delivered) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(msgs) < n {
		pk, err := c.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("after %d of %d msg events: %v", len(msgs), n, err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		d := decodeDelivered(t, pk)
		if pk.FixedHeader.Qos > 0 && !noAck {
			c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		if d.kind == "msg" {
			msgs = append(msgs, d)
		} else {
			others = append(others, d)
		}
	}
	return msgs, others
}

func decodeDelivered(t *testing.T, pk packets.Packet) delivered {
	t.Helper()
	d := delivered{topic: pk.TopicName, pid: pk.PacketID, dup: pk.FixedHeader.Dup}
	if err := json.Unmarshal(pk.Payload, &d.ev); err != nil {
		t.Fatalf("event %s: %v", pk.Payload, err)
	}
	d.kind, _ = d.ev["kind"].(string)
	d.conv, _ = d.ev["conv"].(string)
	if s, ok := d.ev["seq"].(float64); ok {
		d.seq = int64(s)
	}
	return d
}

// quietFor reads for d and returns the msg events that arrived (acked).
func quietFor(t *testing.T, c *testutil.Raw, d time.Duration) (msgs, others []delivered) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		pk, err := c.Read(time.Until(deadline))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return msgs, others
		}
		if err != nil {
			t.Fatal(err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		ev := decodeDelivered(t, pk)
		if pk.FixedHeader.Qos > 0 {
			c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		if ev.kind == "msg" {
			msgs = append(msgs, ev)
		} else {
			others = append(others, ev)
		}
	}
}

// convs20 makes the 20 conversations bob takes part in: 19 groups of
// alice's with bob, and alice and bob's 1:1 conversation (created by a
// first message, which bob then receives while connected).
func convs20(t *testing.T, srv *testutil.Server) []string {
	t.Helper()
	var convs []string
	for i := range 19 {
		gid := fmt.Sprintf("g%d", i)
		group(t, srv, gid, "alice", "bob")
		convs = append(convs, "g:"+gid)
	}
	return append(convs, "d:alice:bob")
}

// sendAcross sends n messages as alice (through the service key: no rate
// limit), spread round-robin over convs, in parallel across conversations
// (in order within one), and returns how many went to each.
func sendAcross(t *testing.T, srv *testutil.Server, _ string, convs []string, n int) map[string]int {
	t.Helper()
	per := map[string]int{}
	for i := range n {
		per[convs[i%len(convs)]]++
	}
	var wg sync.WaitGroup
	for _, conv := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per[conv] {
				body := map[string]any{"from": "alice", "type": "text", "body": map[string]string{"text": fmt.Sprintf("%s #%d", conv, j)}}
				if conv == "d:alice:bob" {
					body["to"] = "bob"
				} else {
					body["group"] = conv[2:]
				}
				if st, b := srv.API(t, "POST", "/v1/messages", testutil.ServiceKey, body); st != 201 {
					t.Errorf("send to %s: %d %s", conv, st, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	return per
}

// lastSeqs is bob's last seq of each conversation, from the API.
func lastSeqs(t *testing.T, srv *testutil.Server, tok string, convs []string) map[string]int64 {
	t.Helper()
	var list []struct {
		ID      string `json:"id"`
		LastSeq int64  `json:"last_seq"`
	}
	srv.MustAPI(t, 200, "GET", "/v1/conversations?limit=200", tok, nil, &list)
	out := map[string]int64{}
	for _, conv := range convs {
		out[conv] = 0
	}
	for _, c := range list {
		if _, ok := out[c.ID]; ok {
			out[c.ID] = c.LastSeq
		}
	}
	return out
}

// checkReplay checks that msgs are exactly the messages after from[conv]
// up to to[conv] of each conversation, in seq order per conversation,
// each once (dups: repeats allowed, never a gap), DUP clear.
func checkReplay(t *testing.T, msgs []delivered, from, to map[string]int64, dups bool) {
	t.Helper()
	next := map[string]int64{}
	for conv, s := range from {
		next[conv] = s + 1
	}
	for _, m := range msgs {
		if m.dup {
			t.Errorf("%s seq %d replayed with DUP set", m.conv, m.seq)
		}
		switch {
		case m.seq == next[m.conv]:
			next[m.conv]++
		case dups && m.seq < next[m.conv]:
		default:
			t.Fatalf("%s: seq %d, want %d (replay out of order, repeated or with a gap)", m.conv, m.seq, next[m.conv])
		}
	}
	for conv, last := range to {
		if next[conv] != last+1 {
			t.Errorf("%s: replay ended before seq %d, want up to %d", conv, next[conv], last)
		}
	}
}

// bobFirstSession connects bob/phone persistently for the first time and
// leaves it once it has acknowledged what is still being delivered of
// the setup (a group's creation event may arrive just after the connect).
func bobFirstSession(t *testing.T, addr string, v byte, tb string) {
	t.Helper()
	c, present := connectPersistent(t, addr, v, "bob", "phone", tb, sessionExpiry)
	if present {
		t.Fatal("a first connect found a session present")
	}
	quietFor(t, c, 300*time.Millisecond)
	c.Close()
}

// A persistent session misses 500 messages across 20 conversations while
// offline and, reconnecting, gets each once, in seq order per conversation,
// DUP clear, before live events (sent while the replay runs, and
// delivered after it, once).
func TestPersistentSessionReplay(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
				srv := testutil.StartServer(t, backend)
				ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
				convs := convs20(t, srv)
				bobFirstSession(t, srv.MQTTAddr, v, tb)
				testutil.Eventually(t, wait, func() error {
					if srv.Broker.Connected("bob/phone") {
						return errors.New("bob/phone still connected")
					}
					return nil
				})
				before := lastSeqs(t, srv, tb, convs)
				sendAcross(t, srv, ta, convs, 500)
				if q := srv.Broker.QueuedBytes("bob/phone"); q != 0 {
					t.Errorf("offline session holds %d bytes", q)
				}
				c, present := connectPersistent(t, srv.MQTTAddr, v, "bob", "phone", tb, sessionExpiry)
				if !present {
					t.Fatal("session not present at reconnect")
				}
				// Live messages while the replay runs come after it.
				live := convs[:5]
				done := make(chan map[string]int)
				go func() { done <- sendAcross(t, srv, ta, live, 20) }()
				msgs, _ := receive(t, c, 520, 60*time.Second, false)
				<-done
				final := lastSeqs(t, srv, tb, convs)
				checkReplay(t, msgs, before, final, false)
				if extra, _ := quietFor(t, c, 300*time.Millisecond); len(extra) > 0 {
					t.Errorf("%d more msg events after all of them, first %s seq %d", len(extra), extra[0].conv, extra[0].seq)
				}
			})
		}
	})
}

// Events sent and not acknowledged before a disconnect are resent first,
// with their packet ids, DUP set, in the order they were sent; the replay
// of what came later follows without repeating them.
func TestPersistentSessionResendInOrder(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		c, _ := connectPersistent(t, srv.MQTTAddr, 4, "bob", "phone", tb, 0)
		testutil.Eventually(t, wait, func() error {
			if !srv.Broker.Settled("bob/phone") {
				return errors.New("not set up")
			}
			return nil
		})
		for i := range 8 {
			srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": fmt.Sprint(i)}}, nil)
		}
		unacked, _ := receive(t, c, 8, wait, true)
		c.Close()
		testutil.Eventually(t, wait, func() error {
			if srv.Broker.Connected("bob/phone") {
				return errors.New("still connected")
			}
			return nil
		})
		for i := range 5 {
			srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": fmt.Sprint("later ", i)}}, nil)
		}
		c2, present := connectPersistent(t, srv.MQTTAddr, 4, "bob", "phone", tb, 0)
		if !present {
			t.Fatal("session not present")
		}
		msgs, _ := receive(t, c2, 13, wait, false)
		for i, m := range msgs[:8] {
			if !m.dup || m.pid != unacked[i].pid || m.seq != unacked[i].seq {
				t.Errorf("resend %d: seq %d pid %d dup %v, want seq %d pid %d dup", i, m.seq, m.pid, m.dup, unacked[i].seq, unacked[i].pid)
			}
		}
		for i, m := range msgs[8:] {
			if m.dup || m.seq != unacked[7].seq+1+int64(i) {
				t.Errorf("replay %d: seq %d dup %v, want seq %d, DUP clear", i, m.seq, m.dup, unacked[7].seq+1+int64(i))
			}
		}
		if extra, _ := quietFor(t, c2, 300*time.Millisecond); len(extra) > 0 {
			t.Errorf("%d msg events more, first seq %d", len(extra), extra[0].seq)
		}
	})
}

// A session survives a graceful restart: the reconnect finds it present
// and gets what it missed, once.
func TestPersistentSessionSurvivesRestart(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
				cfg := testutil.TestConfig(t, backend)
				srv := testutil.StartWith(t, backend, cfg)
				ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
				convs := convs20(t, srv)
				bobFirstSession(t, srv.MQTTAddr, v, tb)
				before := lastSeqs(t, srv, tb, convs)
				sendAcross(t, srv, ta, convs, 500)
				srv.Close()
				srv2 := testutil.StartWith(t, backend, cfg)
				c, present := connectPersistent(t, srv2.MQTTAddr, v, "bob", "phone", tb, sessionExpiry)
				if !present {
					t.Fatal("session not present after a restart")
				}
				msgs, _ := receive(t, c, 500, 60*time.Second, false)
				checkReplay(t, msgs, before, lastSeqs(t, srv2, tb, convs), false)
				if extra, _ := quietFor(t, c, 300*time.Millisecond); len(extra) > 0 {
					t.Errorf("%d more msg events", len(extra))
				}
			})
		}
	})
}

// A session survives a SIGKILL of the server: after it, repeats are
// allowed (positions are written lazily), gaps are not.
func TestPersistentSessionSurvivesSIGKILL(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		cfg := testutil.TestConfig(t, backend)
		httpPort, mqttPort := testutil.FreePort(t), testutil.FreePort(t)
		p := startProcess(t, cfg, httpPort, mqttPort)
		ta, tb := p.srv.User(t, "alice"), p.srv.User(t, "bob")
		convs := convs20(t, p.srv)
		// bob reads and acknowledges 100 live, and the server is killed
		// under him (his last positions are likely unsaved); 400 more
		// arrive at the restarted server while he is away.
		c, _ := connectPersistent(t, p.srv.MQTTAddr, 4, "bob", "phone", tb, 0)
		start := lastSeqs(t, p.srv, tb, convs)
		var live []delivered
		got := make(chan struct{})
		go func() {
			defer close(got)
			live, _ = receive(t, c, 100, 60*time.Second, false)
		}()
		sendAcross(t, p.srv, ta, convs, 100)
		<-got
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		c.Close()
		p2 := startProcess(t, cfg, httpPort, mqttPort)
		sendAcross(t, p2.srv, ta, convs, 400)
		c2, present := connectPersistent(t, p2.srv.MQTTAddr, 4, "bob", "phone", tb, 0)
		if !present {
			t.Fatal("session not present after SIGKILL")
		}
		final := lastSeqs(t, p2.srv, tb, convs)
		// Everything after what bob acknowledged arrives; some of what he
		// acknowledged may come again.
		seen := map[string]int64{}
		for _, m := range live {
			seen[m.conv] = max(seen[m.conv], m.seq)
		}
		want := 0
		for _, conv := range convs {
			want += int(final[conv] - max(seen[conv], start[conv]))
		}
		var msgs []delivered
		for {
			more, _ := receive(t, c2, 1, 30*time.Second, false)
			msgs = append(msgs, more...)
			if covered(msgs, seen, start, final) {
				break
			}
		}
		checkReplay(t, msgs, lowest(msgs, start), final, true)
		t.Logf("%s: %d replayed after SIGKILL for %d missed (%d repeats)", backend, len(msgs), want, len(msgs)-want)
	})
}

// covered tells whether msgs hold every seq of each conversation after
// max(seen, start) up to final.
func covered(msgs []delivered, seen, start, final map[string]int64) bool {
	have := map[string]map[int64]bool{}
	for _, m := range msgs {
		if have[m.conv] == nil {
			have[m.conv] = map[int64]bool{}
		}
		have[m.conv][m.seq] = true
	}
	for conv, last := range final {
		for s := max(seen[conv], start[conv]) + 1; s <= last; s++ {
			if !have[conv][s] {
				return false
			}
		}
	}
	return true
}

// lowest is, per conversation, one less than the first seq replayed (or
// start where none was).
func lowest(msgs []delivered, start map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for conv, s := range start {
		out[conv] = s
	}
	first := map[string]bool{}
	for _, m := range msgs {
		if !first[m.conv] {
			first[m.conv] = true
			out[m.conv] = m.seq - 1
		}
	}
	return out
}

// Past mqtt.replay_max the replay stops, in order, and the device gets a
// sync event on its reply topic.
func TestPersistentSessionReplayLimit(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.MQTT.ReplayMax = 30 })
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		var convs []string
		for i := range 3 {
			group(t, srv, fmt.Sprintf("g%d", i), "alice", "bob")
			convs = append(convs, fmt.Sprintf("g:g%d", i))
		}
		bobFirstSession(t, srv.MQTTAddr, 5, tb)
		before := lastSeqs(t, srv, tb, convs)
		sendAcross(t, srv, ta, convs, 60)
		c, _ := connectPersistent(t, srv.MQTTAddr, 5, "bob", "phone", tb, sessionExpiry)
		msgs, _ := receive(t, c, 30, wait, false)
		// In order per conversation from the position, with no gap.
		checkReplay(t, msgs, before, nil, false)
		extra, others := quietFor(t, c, 500*time.Millisecond)
		if len(extra) > 0 {
			t.Errorf("%d msg events past replay_max", len(extra))
		}
		var sync *delivered
		for i := range others {
			if others[i].kind == "sync" {
				sync = &others[i]
			}
		}
		if sync == nil || sync.topic != "im/r/bob/phone" || sync.ev["reason"] != "replay_limit" {
			t.Fatalf("no sync event on the reply topic: %+v", others)
		}
	})
}

// An expired session replays nothing: the reconnect starts a new one.
func TestPersistentSessionExpired(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": "hi"}}, nil)
		c, _ := connectPersistent(t, srv.MQTTAddr, 5, "bob", "phone", tb, 1)
		// Stored just after CONNACK: its absence below must be its expiry.
		testutil.Eventually(t, 10*time.Second, func() error {
			_, err := srv.Store.Session(t.Context(), "bob/phone")
			return err
		})
		c.Close()
		sendAcross(t, srv, ta, []string{"d:alice:bob"}, 5)
		testutil.Eventually(t, 10*time.Second, func() error {
			if _, err := srv.Store.Session(t.Context(), "bob/phone"); err == nil {
				return errors.New("session still stored")
			}
			return nil
		})
		c2, present := connectPersistent(t, srv.MQTTAddr, 5, "bob", "phone", tb, sessionExpiry)
		if present {
			t.Error("an expired session was present")
		}
		if msgs, _ := quietFor(t, c2, 500*time.Millisecond); len(msgs) > 0 {
			t.Errorf("expired session replayed %d messages", len(msgs))
		}
	})
}

// A member removed from a group while offline gets the removal and
// nothing of the group after it.
func TestPersistentSessionKickedWhileOffline(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		group(t, srv, "club", "alice", "bob")
		bobFirstSession(t, srv.MQTTAddr, 4, tb)
		before := lastSeqs(t, srv, tb, []string{"g:club"})
		sendAcross(t, srv, ta, []string{"g:club"}, 3)
		srv.MustAPI(t, 204, "DELETE", "/v1/groups/club/members/bob", ta, nil, nil)
		sendAcross(t, srv, ta, []string{"g:club"}, 4)
		c, _ := connectPersistent(t, srv.MQTTAddr, 4, "bob", "phone", tb, 0)
		msgs, _ := receive(t, c, 4, wait, false) // 3 messages and the removal
		checkReplay(t, msgs, before, map[string]int64{"g:club": before["g:club"] + 4}, false)
		if extra, _ := quietFor(t, c, 500*time.Millisecond); len(extra) > 0 {
			t.Errorf("a removed member got %d messages after the removal", len(extra))
		}
	})
}
