package testutil

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATS is a real nats-server running in the test process on a loopback
// port, as the nodes of a test cluster reach it.
type NATS struct {
	*natsserver.Server
	URL  string
	port int
}

// StartNATS starts a nats-server on a free loopback port, shut down when
// the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{port: FreePort(t)}
	n.start(t)
	t.Cleanup(func() { n.Shutdown() })
	return n
}

func (n *NATS) start(t testing.TB) {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoSigs: true, NoLog: true,
		MaxPayload: 1 << 20})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	n.Server, n.URL = s, s.ClientURL()
}

// Restart stops the server and starts a new one on the same port (an
// outage of NATS, as the nodes see it).
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.Shutdown()
	n.WaitForShutdown()
	n.start(t)
}
