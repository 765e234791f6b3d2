package testutil

import (
	"fmt"
	"testing"

	"github.com/mqim/mqim/internal/config"
)

// Cluster is a NATS server and mqim nodes sharing one store, all in the
// test process on loopback.
type Cluster struct {
	NATS  *NATS
	Nodes []*Server
	// Config is the configuration every node starts from (its own
	// listeners and node id set by StartCluster).
	Config config.Config
}

// StartCluster starts a nats-server and n nodes on one fresh database of
// backend (MySQL only: SQLite cannot be shared; the test is skipped
// without MQIM_TEST_MYSQL_DSN). The nodes start one after the other, so
// the first applies the migrations. mut changes every node's configuration.
func StartCluster(t testing.TB, n int, mut ...func(*config.Config)) *Cluster {
	t.Helper()
	c := &Cluster{NATS: StartNATS(t)}
	base := TestConfig(t, "mysql")
	base.Cluster.NATSURL = c.NATS.URL
	base.Cluster.Heartbeat = 200e6 // 200ms: a gone node is noticed in 0.6 s
	for _, m := range mut {
		m(&base)
	}
	c.Config = base
	for i := 1; i <= n; i++ {
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.Cluster.NodeID = fmt.Sprintf("node-%d", i)
		c.Nodes = append(c.Nodes, StartWith(t, "mysql", cfg))
	}
	return c
}
