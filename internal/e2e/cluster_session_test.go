package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/testutil"
)

// A persistent session is a position in the shared store: it resumes on
// whichever node the device reaches, replaying what it missed, and a
// connect on a third node takes it over from the second.
func TestClusterSessionMoves(t *testing.T) {
	c := testutil.StartCluster(t, 3)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	ta, tb := n3.User(t, "alice"), n3.User(t, "bob")
	const id, conv = "bob/phone", "d:alice:bob"
	send := func(text string) int64 {
		t.Helper()
		var m msg
		n3.MustAPI(t, 201, "POST", "/v1/messages", ta, map[string]any{"to": "bob", "type": "text", "body": map[string]string{"text": text}}, &m)
		return m.Seq
	}
	settledOn := func(n *testutil.Server) {
		t.Helper()
		testutil.Eventually(t, wait, func() error {
			if !n.Broker.Settled(id) {
				return fmt.Errorf("%s not set up on %s", id, n.Node.ID())
			}
			return nil
		})
	}
	seqs := func(ms []delivered) []int64 {
		var out []int64
		for _, m := range ms {
			if m.dup || m.conv != conv {
				t.Fatalf("unexpected event %+v", m)
			}
			out = append(out, m.seq)
		}
		return out
	}

	// Node 1: a new session gets seq 1 live and acknowledges it.
	c1, present := connectPersistent(t, n1.MQTTAddr, 5, "bob", "phone", tb, 300)
	if present {
		t.Fatal("session present on the first connect")
	}
	settledOn(n1)
	send("one")
	receive(t, c1, 1, wait, false)
	c1.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c1.ExpectClosed(wait)
	// Node 1 stores the disconnect and the position (at once, not lazily).
	testutil.Eventually(t, wait, func() error {
		ctx := context.Background()
		s, err := n1.Store.Session(ctx, id)
		if err != nil {
			return err
		}
		pos, err := n1.Store.Positions(ctx, id)
		if err != nil {
			return err
		}
		if s.DisconnectedAt == 0 || pos[conv] != 1 {
			return fmt.Errorf("stored session %+v, positions %v", s, pos)
		}
		return nil
	})
	for _, text := range []string{"two", "three", "four"} {
		send(text)
	}

	// Node 2: the session is present and replays 2..4 in order, then live.
	c2, present := connectPersistent(t, n2.MQTTAddr, 5, "bob", "phone", tb, 300)
	if !present {
		t.Fatal("session not present on node 2")
	}
	msgs, _ := receive(t, c2, 3, wait, false)
	if got := fmt.Sprint(seqs(msgs)); got != "[2 3 4]" {
		t.Fatalf("replay on node 2: seqs %s, want [2 3 4]", got)
	}
	settledOn(n2)
	send("five")
	msgs, _ = receive(t, c2, 1, wait, false)
	if got := fmt.Sprint(seqs(msgs)); got != "[5]" {
		t.Fatalf("live on node 2: seqs %s, want [5]", got)
	}
	// Node 3, while node 2 still has the connection: a take-over. Node 2's
	// connection ends with "session taken over"; node 3's is present and
	// gets what follows.
	c3, present := connectPersistent(t, n3.MQTTAddr, 5, "bob", "phone", tb, 300)
	if !present {
		t.Fatal("session not present on node 3")
	}
	tookOver := false
	for _, pk := range c2.ExpectClosed(wait) {
		if pk.FixedHeader.Type == packets.Disconnect && pk.ReasonCode == packets.ErrSessionTakenOver.Code {
			tookOver = true
		}
	}
	if !tookOver {
		t.Fatal("node 2's connection ended without DISCONNECT 0x8E (session taken over)")
	}
	settledOn(n3)
	send("six")
	// Positions are written lazily (docs/protocol.md): the replay on node 3
	// may repeat what node 2 had not yet written; it skips nothing.
	var got []int64
	for len(got) == 0 || got[len(got)-1] < 6 {
		msgs, _ = receive(t, c3, 1, wait, false)
		got = append(got, seqs(msgs)...)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("node 3 received seqs %v, want (a repeat of up to 2..5 and) 6", got)
		}
	}
	if got[len(got)-1] != 6 || got[0] < 2 {
		t.Fatalf("node 3 received seqs %v, want (a repeat of up to 2..5 and) 6", got)
	}
	if n2.Broker.Connected(id) {
		t.Fatal("node 2 still counts bob/phone connected")
	}
	t.Logf("node 3 got %v", got)
}
