package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	_ "modernc.org/sqlite"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
)

// outage makes the store unavailable and returns the function that ends it.
// SQLite: another connection holds an exclusive lock, so every write waits
// and fails. MySQL: the server process is killed (and later restarted with
// the script's start command), which is why the MySQL variant runs only in
// its own pass of `make test` (MQIM_TEST_OUTAGE=1): it would break every
// other package sharing that server.
func outage(t *testing.T, srv *testutil.Server) (restore func()) {
	t.Helper()
	if srv.Backend == "sqlite" {
		db, err := sql.Open("sqlite", "file:"+srv.Config.Store.DSN+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
			t.Fatal(err)
		}
		return func() {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		}
	}
	pidfile := os.Getenv("MQIM_TEST_MYSQL_PIDFILE")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("mysql pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("mysql pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill mysql: %v", err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("mysql %d still running", pid)
		}
		return nil
	})
	return func() {
		out, err := exec.Command("sh", "-c", os.Getenv("MQIM_TEST_MYSQL_START")).CombinedOutput()
		if err != nil {
			t.Fatalf("restart mysql: %v\n%s", err, out)
		}
	}
}

// With the store unavailable a QoS 1 send is never acknowledged (MQTT 5:
// reason code 0x80; MQTT 3.1.1: disconnected so it retransmits), the server
// stays up, and after recovery the retransmission is stored exactly once.
func TestStoreOutage(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		if backend == "mysql" && (os.Getenv("MQIM_TEST_OUTAGE") == "" || os.Getenv("MQIM_TEST_MYSQL_START") == "") {
			t.Skip("stops the shared MariaDB: runs in make test's own outage pass (MQIM_TEST_OUTAGE=1)")
		}
		srv := testutil.StartServer(t, backend, func(c *config.Config) { c.Chat.CommitTimeout = 2 * time.Second })
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		lost := make(chan error, 1)
		a := srv.Connect(t, "alice", "v3", ta, func(o *mqtt.ClientOptions) {
			o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
		})
		v5, err := srv.DialV5(t, "alice", "v5", ta)
		if err != nil {
			t.Fatal(err)
		}
		b := srv.Connect(t, "bob", "b", tb)
		a.MustPublish(t, "im/u/bob", 1, `{"cid":"before","type":"text","body":{"text":"ok"}}`)

		restore := outage(t, srv)
		v5msg := []byte(`{"cid":"v5-1","type":"text","body":{"text":"during outage"}}`)
		if rc, _ := v5.Publish("im/u/bob", 1, v5msg); rc != 0x80 {
			t.Fatalf("v5 during outage: reason 0x%x, want 0x80 (unspecified error: unavailable)", rc)
		}
		v3msg := `{"cid":"v3-1","type":"text","body":{"text":"during outage"}}`
		tok := a.Client.Publish("im/u/bob", 1, false, v3msg)
		select {
		case <-lost:
		case <-time.After(30 * time.Second):
			t.Fatal("v3 sender not disconnected during the outage")
		}
		if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
			t.Fatal("v3 publish acknowledged during the outage")
		}
		// The server is up and says it is not ready.
		if st, _ := srv.API(t, "GET", "/healthz", "", nil); st != 200 {
			t.Fatalf("healthz %d during outage", st)
		}
		if backend == "mysql" {
			if st, _ := srv.API(t, "GET", "/readyz", "", nil); st != 503 {
				t.Fatalf("readyz %d during outage", st)
			}
		}

		restore()
		srv.WaitReady(t, 60*time.Second)
		// The clients retransmit (same cid), as MQTT clients do after a
		// reconnect or a refused PUBACK.
		a2 := srv.Connect(t, "alice", "v3", ta)
		testutil.Eventually(t, 30*time.Second, func() error { return a2.Publish("im/u/bob", 1, v3msg) })
		testutil.Eventually(t, 30*time.Second, func() error {
			if rc, err := v5.Publish("im/u/bob", 1, v5msg); rc != 0 || err != nil {
				return fmt.Errorf("v5 retransmit: 0x%x %v", rc, err)
			}
			return nil
		})
		count := map[string]int{}
		for _, m := range history(t, srv, tb, "d:alice:bob", 0) {
			count[m.CID]++
		}
		for _, cid := range []string{"before", "v3-1", "v5-1"} {
			if count[cid] != 1 {
				t.Fatalf("%s stored %d times: %v", cid, count[cid], count)
			}
		}
		b.Await(t, wait, map[string]any{"cid": "v5-1"})
	})
}
