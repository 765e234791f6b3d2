package e2e

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// Sends past a user's rate are refused rate_limited, with when to retry, on
// every door: MQTT 5 PUBACK 0x97, MQTT 3.1.1 acknowledged with the error
// event, HTTP 429 with Retry-After. Nothing refused is stored.
func TestSendRateLimit(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.Limits.SendRate, c.Limits.SendBurst = 0.01, 3 })
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		v3 := srv.Connect(t, "alice", "v3", ta)
		v5 := connectRaw(t, srv, 5, "alice", "v5", ta)
		for i := 0; i < 3; i++ {
			v3.MustPublish(t, "im/u/bob", 1, fmt.Sprintf(`{"cid":"ok%d","type":"text","body":{"text":"%d"}}`, i, i))
		}
		v5.Write(publish("im/u/bob", 1, 11, `{"cid":"v5-over","type":"text","body":{"text":"over"}}`))
		if ack := v5.Expect(packets.Puback, wait); ack.ReasonCode != 0x97 {
			t.Fatalf("MQTT 5 over the rate: PUBACK 0x%02x, want 0x97", ack.ReasonCode)
		}
		v3.MustPublish(t, "im/u/bob", 1, `{"cid":"v3-over","type":"text","body":{"text":"over"}}`) // acknowledged
		// In the order they were refused: Await skips what it passes over.
		for _, r := range []struct{ cid, device string }{{"v5-over", "v5"}, {"v3-over", "v3"}} {
			cid, device := r.cid, r.device
			ev := v3.Await(t, wait, map[string]any{"kind": "error", "cid": cid, "code": "rate_limited"})
			if ra, _ := ev["retry_after"].(float64); ra < 1 {
				t.Fatalf("%s: error event %v without retry_after", cid, ev)
			}
			if ev["device"] != device {
				t.Fatalf("%s: error event names device %v, want %s", cid, ev["device"], device)
			}
		}
		req, _ := http.NewRequest("POST", srv.HTTPURL+"/v1/messages", strings.NewReader(`{"to":"bob","type":"text","body":{"text":"http over"}}`))
		req.Header.Set("Authorization", "Bearer "+ta)
		st, hdr, _ := srv.Do(t, req)
		if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); st != 429 || ra < 1 {
			t.Fatalf("HTTP over the rate: %d Retry-After %q", st, hdr.Get("Retry-After"))
		}
		if texts := historyTexts(t, srv, tb, "d:alice:bob"); strings.Join(texts, ",") != "0,1,2" {
			t.Fatalf("stored %q, want only the 3 within the burst", texts)
		}
		// The product backend (service key) is not held to the user's rate.
		srv.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey, map[string]any{"from": "alice", "to": "bob", "type": "text", "body": map[string]string{"text": "backend"}}, nil)
	})
}

// Failed logins are limited per user id (and per address): past the burst
// even the right credentials are refused as too many attempts, CONNACK 0x9F
// (3.1.1: 0x03) and HTTP 429, while another user is unaffected.
func TestLoginAttemptLimit(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.Limits.LoginFailuresPerMinute, c.Limits.LoginFailureBurst = 0.01, 3
		})
		srv.User(t, "alice")
		tb := srv.User(t, "bob")
		// Setting a password revokes earlier tokens: mint alice's after it.
		srv.MustAPI(t, 200, "PUT", "/v1/users/alice", testutil.ServiceKey, map[string]any{"password": "right password"}, nil)
		ta := srv.User(t, "alice")
		for i := 0; i < 3; i++ {
			if got := connackCode(t, srv, 5, connectAs("alice/x", "alice", "wrong")); got != 0x86 {
				t.Fatalf("attempt %d: 0x%02x", i, got)
			}
		}
		if got := connackCode(t, srv, 5, connectAs("alice/x", "alice", ta)); got != 0x9F {
			t.Fatalf("MQTT 5 after the limit: 0x%02x, want 0x9F", got)
		}
		if got := connackCode(t, srv, 4, connectAs("alice/x", "alice", ta)); got != 0x03 {
			t.Fatalf("3.1.1 after the limit: 0x%02x, want 0x03", got)
		}
		st, body := srv.API(t, "POST", "/v1/login", "", map[string]string{"user_id": "alice", "password": "right password"})
		if st != 429 || !strings.Contains(string(body), "rate_limited") {
			t.Fatalf("HTTP login after the limit: %d %s", st, body)
		}
		if got := connackCode(t, srv, 5, connectAs("bob/x", "bob", tb)); got != 0 {
			t.Fatalf("another user: 0x%02x", got)
		}
	})
}

// Group creations are limited per user; typing is relayed only inside an
// existing conversation, and at most at the typing rate.
func TestGroupAndTypingLimits(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.Limits.GroupsPerHour, c.Limits.GroupBurst = 0.01, 2
			c.Limits.TypingRate, c.Limits.TypingBurst = 0.01, 2
		})
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		srv.User(t, "carol")
		for i := 0; i < 2; i++ {
			srv.MustAPI(t, 201, "POST", "/v1/groups", ta, map[string]any{"name": "g", "members": []string{"bob"}}, nil)
		}
		if st, body := srv.API(t, "POST", "/v1/groups", ta, map[string]any{"name": "g3"}); st != 429 {
			t.Fatalf("third group: %d %s", st, body)
		}
		a := srv.Connect(t, "alice", "a", ta)
		b := srv.Connect(t, "bob", "b", tb)
		// No conversation with carol yet: not relayed, refused not_found.
		a.MustPublish(t, "im/u/carol", 0, `{"kind":"typing"}`)
		a.Await(t, wait, map[string]any{"kind": "error", "code": "not_found"})
		a.MustPublish(t, "im/u/bob", 1, "hello bob")
		b.Await(t, wait, map[string]any{"kind": "msg"})
		a.MustPublish(t, "im/u/bob", 0, `{"kind":"typing"}`)
		b.Await(t, wait, map[string]any{"kind": "typing", "user": "alice"})
		a.MustPublish(t, "im/u/bob", 0, `{"kind":"typing"}`) // the rate's burst was 2 (carol's counted)
		a.Await(t, wait, map[string]any{"kind": "error", "code": "rate_limited"})
	})
}

// One user cannot make the server hold unbounded copies: offline
// persistent sessions are capped in number and hold no copies at all (they
// are replayed from the store), and sending far more than any cap leaves
// the heap bounded.
func TestQueuedBytesBounded(t *testing.T) {
	const (
		sessions = 8
		queueCap = 64 << 10
		msgs     = 1500
		size     = 4 << 10
	)
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.MQTT.MaxSessionsPerUser, c.MQTT.MaxSessionQueueBytes = sessions, queueCap
		})
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		for i := 0; i <= sessions; i++ {
			c := testutil.DialRaw(t, srv.MQTTAddr, 4)
			pk := c.RawConnect(fmt.Sprintf("bob/p%d", i), "bob", tb)
			pk.Connect.Clean = false
			c.Write(pk)
			ack := c.Expect(packets.Connack, wait)
			switch {
			case i < sessions && ack.ReasonCode != 0:
				t.Fatalf("session %d refused: 0x%02x", i, ack.ReasonCode)
			case i == sessions && ack.ReasonCode != 0x03:
				t.Fatalf("session %d past the cap: 0x%02x, want 0x03", i, ack.ReasonCode)
			}
			if i < sessions {
				testutil.Eventually(t, wait, func() error {
					if !srv.Broker.Settled(fmt.Sprintf("bob/p%d", i)) {
						return fmt.Errorf("bob/p%d not set up", i)
					}
					return nil
				})
			}
			c.Close()
		}
		testutil.Eventually(t, wait, func() error {
			for i := 0; i < sessions; i++ {
				if srv.Broker.Connected(fmt.Sprintf("bob/p%d", i)) {
					return fmt.Errorf("bob/p%d still connected", i)
				}
			}
			return nil
		})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		text := strings.Repeat("x", size)
		for i := 0; i < msgs; i++ {
			srv.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": text}}, nil)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		for i := 0; i < sessions; i++ {
			if q := srv.Broker.QueuedBytes(fmt.Sprintf("bob/p%d", i)); q != 0 {
				t.Errorf("offline bob/p%d holds %d bytes queued, want none", i, q)
			}
		}
		uncapped := int64(sessions * msgs * size) // what the sessions would hold without the cap
		grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: heap grew %d KiB for %d KiB sent to %d offline sessions (copies would hold %d KiB)",
			backend, grew>>10, msgs*size>>10, sessions, uncapped>>10)
		if grew > uncapped/4 {
			t.Fatalf("heap grew %d bytes; the queues' caps allow %d", grew, sessions*queueCap)
		}
		// The store kept everything for catch-up.
		if n := len(history(t, srv, tb, "d:alice:bob", 0)); n != msgs {
			t.Fatalf("history holds %d messages, want %d", n, msgs)
		}
	})
}
