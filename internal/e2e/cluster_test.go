package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/testutil"
)

// A cluster shares one store; SQLite is a file on one machine.
func TestClusterRefusesSQLite(t *testing.T) {
	cfg := testutil.TestConfig(t, "sqlite")
	cfg.Cluster.NATSURL = "nats://127.0.0.1:4222"
	_, err := app.New(context.Background(), cfg, app.NewLogger(cfg.Log, nil))
	if err == nil || !strings.Contains(err.Error(), "cluster.nats_url") || !strings.Contains(err.Error(), "mysql") {
		t.Fatalf("err = %v, want cluster.nats_url needs mysql", err)
	}
	cfg = testutil.TestConfig(t, "sqlite")
	cfg.Store.Driver, cfg.Store.DSN = "mysql", "u:p@tcp(127.0.0.1:1)/x"
	cfg.Cluster.NATSURL = "nats://127.0.0.1:4222"
	cfg.Auth.JWTSecret, cfg.Auth.ServiceKey = "", ""
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "auth.jwt_secret") || !strings.Contains(err.Error(), "auth.service_key") {
		t.Fatalf("err = %v, want the shared secrets required", err)
	}
}

// presenceOf asks node srv for uid's devices.
func presenceOf(t *testing.T, srv *testutil.Server, uid string) []string {
	t.Helper()
	var out map[string]struct {
		Devices []string `json:"devices"`
	}
	srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids="+uid, testutil.ServiceKey, nil, &out)
	return out[uid].Devices
}

func TestClusterDelivery(t *testing.T) {
	c := testutil.StartCluster(t, 3)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	ta, tb, tc, td := n1.User(t, "alice"), n2.User(t, "bob"), n3.User(t, "carol"), n1.User(t, "dave")
	alice := n1.Connect(t, "alice", "laptop", ta)
	bob := n2.Connect(t, "bob", "phone", tb)
	carol := n3.Connect(t, "carol", "tab", tc)
	dave := n3.Connect(t, "dave", "pc", td)

	// 1:1 across nodes: bob gets it on node 2, alice her echo on node 1.
	alice.MustPublish(t, "im/u/bob", 1, `{"cid":"c1","type":"text","body":{"text":"hi bob"}}`)
	got := bob.Await(t, wait, map[string]any{"kind": "msg", "from": "alice", "seq": 1.0})
	alice.Await(t, wait, map[string]any{"kind": "msg", "cid": "c1", "id": got["id"]})
	// Ids may hold dots (NATS's token separator): eve.x on node 2 too.
	te := n1.User(t, "eve.x")
	eve := n2.Connect(t, "eve.x", "phone", te)
	alice.MustPublish(t, "im/u/eve.x", 1, `{"cid":"e1","type":"text","body":{"text":"hi eve"}}`)
	eve.Await(t, wait, map[string]any{"kind": "msg", "from": "alice", "conv": "d:alice:eve.x"})

	// bob's reply reaches alice, and her read receipt (made on node 1)
	// reaches bob.
	bob.MustPublish(t, "im/u/alice", 1, `{"cid":"r1","type":"text","body":{"text":"hi alice"}}`)
	alice.Await(t, wait, map[string]any{"kind": "msg", "from": "bob", "seq": 2.0})
	n1.MustAPI(t, 200, "POST", "/v1/conversations/d:alice:bob/read", ta, map[string]any{"seq": 2}, nil)
	bob.Await(t, wait, map[string]any{"kind": "read", "user": "alice", "seq": 2.0})

	// A group made on node 1 reaches members on nodes 2 and 3.
	var g struct {
		ID string `json:"id"`
	}
	n1.MustAPI(t, 201, "POST", "/v1/groups", ta, map[string]any{"name": "trio", "members": []string{"bob", "carol"}}, &g)
	bob.Await(t, wait, map[string]any{"kind": "group", "event": "created"})
	carol.Await(t, wait, map[string]any{"kind": "group", "event": "created"})
	alice.MustPublish(t, "im/g/"+g.ID, 1, `{"cid":"g1","type":"text","body":{"text":"hello trio"}}`)
	for _, cl := range []*testutil.Client{bob, carol} {
		cl.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:" + g.ID, "from": "alice"})
	}
	alice.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:" + g.ID, "cid": "g1"})

	// Membership follows on every node: dave (on node 3) added through node
	// 2 gets the group's messages at once; bob removed through node 3 stops.
	n2.MustAPI(t, 200, "POST", "/v1/groups/"+g.ID+"/members", ta, map[string]any{"user_ids": []string{"dave"}}, nil)
	dave.Await(t, wait, map[string]any{"kind": "group", "event": "joined"})
	n3.MustAPI(t, 204, "DELETE", "/v1/groups/"+g.ID+"/members/bob", ta, nil, nil)
	bob.Await(t, wait, map[string]any{"kind": "group", "event": "kicked", "user": "bob"})
	carol.MustPublish(t, "im/g/"+g.ID, 1, `{"cid":"g2","type":"text","body":{"text":"welcome dave"}}`)
	dave.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:" + g.ID, "from": "carol"})
	alice.Await(t, wait, map[string]any{"kind": "msg", "conv": "g:" + g.ID, "from": "carol"})
	bob.Quiet(t, 300*time.Millisecond, map[string]any{"kind": "msg", "conv": "g:" + g.ID})
	// The removal reached node 2's cache too: bob may not post there.
	if err := bob.Publish("im/g/"+g.ID, 1, `{"cid":"g3","type":"text","body":{"text":"still here?"}}`); err != nil {
		t.Fatal(err)
	}
	bob.Await(t, wait, map[string]any{"kind": "error", "cid": "g3", "code": "not_member"})

	// Presence is cluster-wide: node 1 sees bob on node 2.
	testutil.Eventually(t, wait, func() error {
		if d := presenceOf(t, n1, "bob"); fmt.Sprint(d) != "[phone]" {
			return fmt.Errorf("bob's devices seen from node 1: %v", d)
		}
		return nil
	})

	// bob's phone moves to node 3: its connection on node 2 ends (a
	// take-over), and the cluster still sees one phone.
	bob2 := n3.Connect(t, "bob", "phone", tb)
	testutil.Eventually(t, wait, func() error {
		if bob.IsConnectionOpen() {
			return fmt.Errorf("bob's phone still connected to node 2")
		}
		return nil
	})
	if n2.Broker.Connected("bob/phone") {
		t.Fatal("node 2 still holds bob/phone")
	}
	testutil.Eventually(t, wait, func() error {
		for _, n := range c.Nodes {
			if d := presenceOf(t, n, "bob"); fmt.Sprint(d) != "[phone]" {
				return fmt.Errorf("bob's devices seen from %s: %v", n.Node.ID(), d)
			}
		}
		return nil
	})
	alice.MustPublish(t, "im/u/bob", 1, `{"cid":"c2","type":"text","body":{"text":"where are you now?"}}`)
	bob2.Await(t, wait, map[string]any{"kind": "msg", "from": "alice", "seq": 3.0})
}

// One hot group with senders on every node: the nodes' seqs collide (each
// allocates from memory), the unique (conv, seq) key refuses the losers,
// which retry with fresh seqs. Every send is acknowledged, the seqs are
// 1..N with no gap and no duplicate, and every member gets every message.
func TestClusterHotGroupSeqs(t *testing.T) {
	c := testutil.StartCluster(t, 3)
	const perNode, each = 3, 60
	var members []string
	toks := map[string]string{}
	for i := range c.Nodes {
		for j := 0; j < perNode; j++ {
			uid := fmt.Sprintf("u%d_%d", i, j)
			members = append(members, uid)
			toks[uid] = c.Nodes[0].User(t, uid)
		}
	}
	var g struct {
		ID string `json:"id"`
	}
	c.Nodes[0].MustAPI(t, 201, "POST", "/v1/groups", toks[members[0]], map[string]any{"name": "hot", "members": members[1:]}, &g)
	clients := map[string]*testutil.Client{}
	for i, n := range c.Nodes {
		for j := 0; j < perNode; j++ {
			uid := fmt.Sprintf("u%d_%d", i, j)
			clients[uid] = n.Connect(t, uid, "d", toks[uid])
		}
	}
	// Once every node hears the others, they agree on the group's owner.
	testutil.Eventually(t, wait, func() error {
		for _, n := range c.Nodes {
			if p := n.Node.Stats().Peers; p != 2 {
				return fmt.Errorf("%s hears %d nodes", n.Node.ID(), p)
			}
		}
		return nil
	})
	errs := make(chan error, len(members))
	for _, uid := range members {
		go func(cl *testutil.Client) {
			for k := 0; k < each; k++ {
				if err := cl.Publish("im/g/"+g.ID, 1, fmt.Sprintf(`{"cid":"%s-%d","type":"text","body":{"text":"m"}}`, cl.ID, k)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(clients[uid])
	}
	for range members {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	total := len(members) * each
	// The stored seqs: 1 (created) and then every message once, no gap.
	var page []struct {
		Seq int64  `json:"seq"`
		CID string `json:"cid"`
		ID  string `json:"id"`
	}
	seen := map[int64]bool{}
	cids := map[string]bool{}
	after := int64(0)
	for {
		page = nil
		c.Nodes[1].MustAPI(t, 200, "GET", fmt.Sprintf("/v1/conversations/g:%s/messages?after_seq=%d&limit=100", g.ID, after), toks[members[0]], nil, &page)
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if seen[m.Seq] || m.Seq != after+1 {
				t.Fatalf("seq %d after %d", m.Seq, after)
			}
			seen[m.Seq], after = true, m.Seq
			if m.CID != "" {
				if cids[m.CID] {
					t.Fatalf("cid %s stored twice", m.CID)
				}
				cids[m.CID] = true
			}
		}
	}
	if len(cids) != total {
		t.Fatalf("stored %d of %d messages", len(cids), total)
	}
	// Every member, on whichever node, gets every message live.
	for uid, cl := range clients {
		got := map[string]bool{}
		testutil.Eventually(t, wait, func() error {
			for {
				select {
				case m := <-cl.Msgs:
					ev := m.Event(t)
					if ev["kind"] == "msg" && ev["conv"] == "g:"+g.ID && ev["type"] == "text" {
						got[fmt.Sprint(ev["id"])] = true
					}
					continue
				default:
				}
				break
			}
			if len(got) != total {
				return fmt.Errorf("%s got %d of %d", uid, len(got), total)
			}
			return nil
		})
	}
	// One node (the owner) committed them all: the others routed theirs
	// to it, and no commit lost a seq race.
	var conflicts, routed, most int64
	for _, n := range c.Nodes {
		conflicts += n.Chat.Conflicts()
		routed += n.Node.Stats().Routed
		_, msgs := n.Chat.Stats()
		most = max(most, msgs)
		t.Logf("%s: %d messages stored, %d routed, %d conflicts", n.Node.ID(), msgs, n.Node.Stats().Routed, n.Chat.Conflicts())
	}
	if conflicts != 0 || most < int64(total) || routed != int64(total-total/len(c.Nodes)) {
		t.Fatalf("%d conflicts, %d routed, the busiest node stored %d of %d: want one owner committing all", conflicts, routed, most, total)
	}
}

// A node subscribes to a user's subject while a device of that user is
// connected to it, and only then: a take-over on the same node keeps it,
// the last device's end drops it.
func TestClusterInterest(t *testing.T) {
	c := testutil.StartCluster(t, 2)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ta, tb := n1.User(t, "alice"), n1.User(t, "bob")
	alice := n1.Connect(t, "alice", "laptop", ta)
	subs := func() uint32 { return c.NATS.NumSubscriptions() }
	base := subs()
	phone := n2.Connect(t, "bob", "phone", tb)
	testutil.Eventually(t, wait, func() error {
		if got := subs(); got != base+1 {
			return fmt.Errorf("%d subscriptions, want %d (bob's subject on node 2)", got, base+1)
		}
		return nil
	})
	tab := n2.Connect(t, "bob", "tab", tb)
	again := n2.Connect(t, "bob", "phone", tb) // takes the phone's session over
	alice.MustPublish(t, "im/u/bob", 1, `{"cid":"i1","type":"text","body":{"text":"one copy each"}}`)
	again.Await(t, wait, map[string]any{"kind": "msg", "from": "alice"})
	tab.Await(t, wait, map[string]any{"kind": "msg", "from": "alice"})
	if got := subs(); got != base+1 {
		t.Fatalf("%d subscriptions with two devices and a take-over, want %d", got, base+1)
	}
	phone.Disconnect(50)
	again.Disconnect(50)
	tab.Disconnect(50)
	testutil.Eventually(t, wait, func() error {
		if got := subs(); got != base {
			return fmt.Errorf("%d subscriptions after bob left node 2, want %d", got, base)
		}
		return nil
	})
}
