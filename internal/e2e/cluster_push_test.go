package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/push/gorush/gorushtest"
)

// Push decisions are cluster-wide: the node that commits a message knows
// whether the receiver's device is online on another node.
func TestClusterPush(t *testing.T) {
	g := gorushtest.Start(t)
	c := testutil.StartCluster(t, 3, func(c *config.Config) {
		c.Push.GorushURL = g.URL
		c.Push.IOSTopic = "com.example.im"
		c.Push.Timeout = 10 * time.Second
		c.Push.Backoff = 5 * time.Millisecond
		c.Push.MaxRetries = 2
	})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ta, tb := n1.User(t, "alice"), n1.User(t, "bob")
	device(t, n2, tb, "phone", "ios", apnsToken("bob-phone"))
	alice := n1.Connect(t, "alice", "laptop", ta)
	phone := n2.Connect(t, "bob", "phone", tb)
	testutil.Eventually(t, wait, func() error {
		if d := presenceOf(t, n1, "bob"); fmt.Sprint(d) != "[phone]" {
			return fmt.Errorf("bob's devices seen from node 1: %v", d)
		}
		return nil
	})

	// Online on node 2: node 1 commits, and pushes nothing.
	alice.MustPublish(t, "im/u/bob", 1, "you are online on node 2")
	phone.Await(t, wait, map[string]any{"kind": "msg", "seq": 1})
	settled(t, n1, 1)
	for _, n := range c.Nodes {
		if p := n.Planner.Planned.Load(); n != n1 && p != 0 {
			t.Fatalf("%s planned %d pushes for a message node 1 committed", n.Node.ID(), p)
		}
	}
	if got := g.Received(); len(got) != 0 {
		t.Fatalf("pushed to a device online on another node: %+v", got)
	}

	// Offline: once node 1 sees it, the next message pushes, once.
	phone.Disconnect(50)
	testutil.Eventually(t, wait, func() error {
		if d := presenceOf(t, n1, "bob"); len(d) != 0 {
			return fmt.Errorf("bob's devices seen from node 1: %v", d)
		}
		return nil
	})
	alice.MustPublish(t, "im/u/bob", 1, "and now you are offline")
	alice.Await(t, wait, map[string]any{"kind": "msg", "seq": 2})
	settled(t, n1, 2)
	for _, n := range c.Nodes[1:] {
		settled(t, n, 0)
	}
	got := g.Received()
	if len(got) != 1 {
		t.Fatalf("want exactly one push, got %+v", got)
	}
	if n := got[0]; strings.Join(n.Tokens, ",") != apnsToken("bob-phone") || n.Message != "and now you are offline" ||
		fmt.Sprint(n.Data["seq"]) != "2" {
		t.Fatalf("push = %+v", n)
	}
	for _, n := range c.Nodes {
		if p := n.Planner.Planned.Load(); n != n1 && p != 0 {
			t.Fatalf("%s planned %d pushes for messages node 1 committed", n.Node.ID(), p)
		}
	}
}
