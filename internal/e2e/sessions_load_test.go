package e2e

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// sendParallel sends n 1:1 messages of size bytes from alice to bob (the
// service key: no rate limit), from workers goroutines.
func sendParallel(t *testing.T, srv *testutil.Server, n, size, workers int) {
	t.Helper()
	text := strings.Repeat("x", size)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				body := map[string]any{"from": "alice", "to": "bob", "type": "text", "body": map[string]string{"text": text}}
				if st, b := srv.API(t, "POST", "/v1/messages", testutil.ServiceKey, body); st != 201 {
					t.Errorf("send: %d %s", st, b)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// 200 offline persistent sessions of one user hold nothing while 2,000
// messages arrive: the heap grows by far less than one copy per session.
func TestOfflineSessionsHoldNoCopies(t *testing.T) {
	const (
		sessions = 200
		msgs     = 2000
		size     = 1 << 10
	)
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.MQTT.MaxSessionsPerUser = sessions })
		srv.User(t, "alice")
		tb := srv.User(t, "bob")
		for i := range sessions {
			c, _ := connectPersistent(t, srv.MQTTAddr, byte(4+i%2), "bob", fmt.Sprintf("d%d", i), tb, sessionExpiry)
			testutil.Eventually(t, wait, func() error {
				if !srv.Broker.Settled(fmt.Sprintf("bob/d%d", i)) {
					return errors.New("not set up")
				}
				return nil
			})
			c.Close()
		}
		testutil.Eventually(t, wait, func() error {
			if n := srv.Broker.ClientsConnected(); n != 0 {
				return fmt.Errorf("%d still connected", n)
			}
			return nil
		})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sendParallel(t, srv, msgs, size, 8)
		runtime.GC()
		runtime.ReadMemStats(&after)
		grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: heap grew %d KiB while %d messages of %d bytes reached %d offline sessions (copies: %d MiB)",
			backend, grew>>10, msgs, size, sessions, sessions*msgs*size>>20)
		if grew > 20<<20 {
			t.Fatalf("heap grew %d MiB, want < 20", grew>>20)
		}
	})
}

// ackAll reads and acknowledges every publish on c until stop closes or
// the connection ends, counting msg events.
func ackAll(c *testutil.Raw, stop <-chan struct{}, got *sync.WaitGroup, n int) {
	defer got.Done()
	seen := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		pk, err := c.Read(30 * time.Second)
		if err != nil {
			return
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if pk.FixedHeader.Qos > 0 {
			c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		if strings.HasPrefix(string(pk.Payload), `{"kind":"msg"`) {
			if seen++; seen == n {
				return
			}
		}
	}
}

// The position bookkeeping costs a tiny fraction of a commit per delivered
// message: 40 connected persistent sessions receiving 1,500 messages each
// write their positions in about one transaction a second.
func TestPositionWritesPerMessage(t *testing.T) {
	const (
		sessions = 40
		msgs     = 1500
	)
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) {
			c.MQTT.MaxSessionsPerUser, c.MQTT.MaxDevicesPerUser = sessions, sessions
		})
		srv.User(t, "alice")
		tb := srv.User(t, "bob")
		var got sync.WaitGroup
		stop := make(chan struct{})
		for i := range sessions {
			c, _ := connectPersistent(t, srv.MQTTAddr, 4, "bob", fmt.Sprintf("d%d", i), tb, 0)
			testutil.Eventually(t, wait, func() error {
				if !srv.Broker.Settled(fmt.Sprintf("bob/d%d", i)) {
					return errors.New("not set up")
				}
				return nil
			})
			got.Add(1)
			go ackAll(c, stop, &got, msgs)
		}
		c0, a0 := srv.Broker.PositionCommits()
		start := time.Now()
		sendParallel(t, srv, msgs, 100, 8)
		got.Wait()
		close(stop)
		// The last acknowledgements are written within a second.
		testutil.Eventually(t, 5*time.Second, func() error {
			pos, err := srv.Store.Positions(t.Context(), fmt.Sprintf("bob/d%d", sessions-1))
			if err != nil || pos["d:alice:bob"] < msgs {
				return fmt.Errorf("position %d, want %d (%v)", pos["d:alice:bob"], msgs, err)
			}
			return nil
		})
		c1, a1 := srv.Broker.PositionCommits()
		commits, acked := c1-c0, a1-a0
		ratio := float64(commits) / float64(acked)
		t.Logf("%s: %d position commits for %d acknowledged deliveries in %v: %.5f commits per delivered message",
			backend, commits, acked, time.Since(start).Round(time.Millisecond), ratio)
		if acked < sessions*msgs || ratio > 0.05 {
			t.Fatalf("%d commits for %d acknowledged deliveries", commits, acked)
		}
	})
}

// A connected session that cannot keep up loses live events past its
// queue cap, and is told so once with a sync event on its reply topic.
func TestOverflowSendsSyncOnce(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.MQTT.MaxSessionQueueBytes = 64 << 10 })
		srv.User(t, "alice")
		tb := srv.User(t, "bob")
		c := connectRaw(t, srv, 4, "bob", "phone", tb)
		sendParallel(t, srv, 100, 4<<10, 1) // 400 KiB for a 64 KiB queue, never acknowledged
		var syncs, msgs int
		deadline := time.Now().Add(wait)
		for syncs == 0 || msgs < 16 {
			pk, err := c.Read(time.Until(deadline))
			if err != nil {
				t.Fatalf("after %d msg and %d sync events: %v", msgs, syncs, err)
			}
			if pk.FixedHeader.Type != packets.Publish {
				continue
			}
			ev := decodeDelivered(t, pk)
			switch ev.kind {
			case "msg":
				msgs++
			case "sync":
				syncs++
				if ev.topic != "im/r/bob/phone" || ev.ev["reason"] != "overflow" {
					t.Errorf("sync event %s %v", ev.topic, ev.ev)
				}
			}
		}
		extra, others := quietFor(t, c, 300*time.Millisecond) // acknowledges what it reads now
		for _, o := range others {
			if o.kind == "sync" {
				syncs++
			}
		}
		if syncs != 1 {
			t.Errorf("%d sync events for one overflow, want 1", syncs)
		}
		if msgs+len(extra) >= 100 {
			t.Errorf("all %d events delivered: the cap never applied", msgs+len(extra))
		}
		if srv.Broker.Overflowed() == 0 {
			t.Error("no overflow counted")
		}
	})
}
