package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/config"
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
	lostOpt, lost := testutil.OnLost()
	_ = lostOpt
	bob2 := n3.Connect(t, "bob", "phone", tb)
	testutil.Eventually(t, wait, func() error {
		if bob.IsConnectionOpen() {
			return fmt.Errorf("bob's phone still connected to node 2")
		}
		return nil
	})
	_ = lost
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
	_ = config.Default
}
