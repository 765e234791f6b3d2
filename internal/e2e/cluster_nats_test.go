package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
)

// readyz returns a node's GET /readyz status.
func readyz(srv *testutil.Server) (int, error) {
	resp, err := http.Get(srv.HTTPURL + "/readyz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// wantReadyz polls until every node's /readyz answers status.
func wantReadyz(t *testing.T, status int, nodes ...*testutil.Server) {
	t.Helper()
	testutil.Eventually(t, wait, func() error {
		for _, n := range nodes {
			st, err := readyz(n)
			if err != nil {
				return err
			}
			if st != status {
				return fmt.Errorf("%s: /readyz %d, want %d", n.Node.ID(), st, status)
			}
		}
		return nil
	})
}

// NATS lost: every node reports not ready and disconnected, and keeps
// serving its own devices; NATS back: ready, counted as an outage, and
// delivery across nodes works again.
func TestClusterNATSLoss(t *testing.T) {
	c := testutil.StartCluster(t, 2)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ta, tb, tc := n1.User(t, "alice"), n1.User(t, "bob"), n1.User(t, "carol")
	alice := n1.Connect(t, "alice", "laptop", ta)
	carol := n1.Connect(t, "carol", "pc", tc)
	bob := n2.Connect(t, "bob", "phone", tb)
	wantReadyz(t, 200, c.Nodes...)
	for _, n := range c.Nodes {
		wantMetric(t, n, wait, "mqim_cluster_nats_connected", func(v float64) bool { return v == 1 })
		wantMetric(t, n, wait, "mqim_cluster_nats_outages_total", func(v float64) bool { return v == 0 })
	}

	c.NATS.Shutdown()
	c.NATS.WaitForShutdown()
	wantReadyz(t, 503, c.Nodes...)
	for _, n := range c.Nodes {
		wantMetric(t, n, wait, "mqim_cluster_nats_connected", func(v float64) bool { return v == 0 })
		wantMetric(t, n, wait, "mqim_cluster_nats_outages_total", func(v float64) bool { return v >= 1 })
		// No heartbeat comes: the other node is gone from this one's view.
		wantMetric(t, n, wait, "mqim_cluster_peers", func(v float64) bool { return v == 0 })
	}
	if d := presenceOf(t, n1, "bob"); len(d) != 0 {
		t.Fatalf("node 1 still sees bob's devices %v on a node it no longer hears", d)
	}
	st, body := n1.API(t, "GET", "/readyz", "", nil)
	if st != 503 || !strings.Contains(string(body), "NATS disconnected") {
		t.Fatalf("/readyz during the outage: %d %s", st, body)
	}
	// Node 1 still serves its own devices, both ways.
	alice.MustPublish(t, "im/u/carol", 1, `{"cid":"o1","type":"text","body":{"text":"NATS is down"}}`)
	carol.Await(t, wait, map[string]any{"kind": "msg", "from": "alice", "seq": 1})
	alice.Await(t, wait, map[string]any{"kind": "msg", "cid": "o1", "seq": 1})
	carol.MustPublish(t, "im/u/alice", 1, `{"cid":"o2","type":"text","body":{"text":"we still talk"}}`)
	alice.Await(t, wait, map[string]any{"kind": "msg", "from": "carol", "seq": 2})

	c.NATS.Restart(t)
	wantReadyz(t, 200, c.Nodes...)
	for _, n := range c.Nodes {
		wantMetric(t, n, wait, "mqim_cluster_nats_connected", func(v float64) bool { return v == 1 })
		wantMetric(t, n, wait, "mqim_cluster_nats_outages_total", func(v float64) bool { return v >= 1 })
	}
	// Node 1 hears node 2's heartbeats again: node 2 has renewed its
	// subscriptions (bob's inbox among them) before it sent them.
	wantMetric(t, n1, wait, "mqim_cluster_peers", func(v float64) bool { return v == 1 })
	// Presence is resynchronised: node 1 sees bob's phone again.
	testutil.Eventually(t, wait, func() error {
		if d := presenceOf(t, n1, "bob"); fmt.Sprint(d) != "[phone]" {
			return fmt.Errorf("bob's devices seen from node 1: %v", d)
		}
		return nil
	})
	alice.MustPublish(t, "im/u/bob", 1, `{"cid":"x1","type":"text","body":{"text":"NATS is back"}}`)
	bob.Await(t, wait, map[string]any{"kind": "msg", "from": "alice", "conv": "d:alice:bob", "seq": 1})
}
