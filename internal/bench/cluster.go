package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cluster starts a cluster for one scenario run (--cluster N): a NATS
// server (unless --nats-url names one), then N mqim children on one fresh
// database, node 1 first so that it applies the migrations. The nodes
// share the JWT secret and the service key, each has its own ports, data
// folder and node id, and all use a subject prefix of their own, so that
// a run never mixes with another cluster on the same NATS.
func (r *runner) cluster(ctx context.Context, scenario, prefix string) (_ *target, err error) {
	t := &target{prefix: prefix, key: "bench-" + randomHex(16)}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	url := r.o.NATSURL
	if url == "" {
		if t.nats, url, err = r.startNATS(ctx); err != nil {
			return nil, err
		}
		t.notes = append(t.notes, fmt.Sprintf("NATS: nats-server started by this tool (pid %d), its CPU measured", t.nats.pid))
	} else {
		t.notes = append(t.notes, "NATS: "+url+", not started by this tool: its CPU is not measured")
	}
	dsn, drop, err := freshDatabase(ctx, r.o.MySQLDSN)
	if err != nil {
		return nil, err
	}
	t.drop = drop
	co := childOpts{dsn: dsn, key: t.key, env: []string{"MQIM_AUTH_JWT_SECRET=" + randomHex(32),
		"MQIM_CLUSTER_NATS_URL=" + url, "MQIM_CLUSTER_PREFIX=" + prefix}}
	for i := 1; i <= r.o.Cluster; i++ {
		node := co
		node.env = append(node.env[:len(node.env):len(node.env)], fmt.Sprintf("MQIM_CLUSTER_NODE_ID=node-%d", i))
		n, err := retryPorts(func() (*target, error) { return r.child(ctx, scenario, "mqim", prefix, node) })
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		t.nodes = append(t.nodes, n)
		if err := n.awaitReady(ctx); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	first := t.nodes[0]
	t.httpURL, t.mqttAddr, t.pprof = first.httpURL, first.mqttAddr, first.pprof
	t.notes = append(t.notes, first.notes...)
	t.notes = append(t.notes, fmt.Sprintf("%d nodes on one database; load clients spread round-robin over them: "+
		"client i on node i mod %d, a dm or http-send pair's sender on the node after its receiver's", r.o.Cluster, r.o.Cluster))
	if r.o.CPUProfile != "" {
		t.notes = append(t.notes, "cpu profile: of node 1")
	}
	return t, nil
}

// natsURL is the NATS server a cluster's nodes use.
func (t *target) natsURL() string {
	for _, kv := range t.nodes[0].p.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "MQIM_CLUSTER_NATS_URL="); ok {
			return v
		}
	}
	return "?"
}

// awaitReady polls GET /readyz until it answers 200 (the node reached
// NATS), for at most 30 s.
func (t *target) awaitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	limit := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", t.httpURL+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(limit) {
			return fmt.Errorf("not ready within 30 s (last: %v)", errors.Join(err, statusErr(resp)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func statusErr(resp *http.Response) error {
	if resp == nil {
		return nil
	}
	return errors.New(resp.Status)
}

// errNoNATS says how to get a NATS server.
var errNoNATS = errors.New("--cluster needs a NATS server: no nats-server in $PATH or $HOME/go/bin; " +
	"install one with `go install github.com/nats-io/nats-server/v2@latest` (or the Debian package nats-server), " +
	"or run one (e.g. `docker run -p 4222:4222 nats:2.10`, or the compose cluster profile's) and pass --nats-url nats://127.0.0.1:4222")

// natsServer finds the nats-server executable: in $PATH, else in
// $HOME/go/bin (where `go install` puts it).
func natsServer() (string, error) {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "nats-server")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNoNATS
}

// startNATS starts nats-server on a free loopback port as a child process
// and waits until it accepts clients.
func (r *runner) startNATS(ctx context.Context) (*proc, string, error) {
	exe, err := natsServer()
	if err != nil {
		return nil, "", err
	}
	type started struct {
		p   *proc
		url string
	}
	s, err := retryPorts(func() (started, error) {
		addr, err := freeAddr()
		if err != nil {
			return started{}, err
		}
		_, port, _ := net.SplitHostPort(addr)
		p, err := startProc(ctx, exec.Command(exe, "-a", "127.0.0.1", "-p", port), (*exec.Cmd).StderrPipe, "Server is ready")
		if err != nil {
			return started{}, fmt.Errorf("nats-server: %w", err)
		}
		return started{p, "nats://" + addr}, nil
	})
	return s.p, s.url, err
}
