package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
)

// roamer is a device with a persistent session (MQTT 3.1.1, clean=false)
// that, when its connection is lost, connects again with the same client id
// to the next node of its list, as a device behind a load balancer does. It
// records every msg event it receives, by conversation and id.
type roamer struct {
	uid, dev, tok string
	nodes         []*testutil.Server // nodes[0] first, then the others in turn

	mu    sync.Mutex
	cl    *testutil.Client // nil while reconnecting
	at    int              // index in nodes of the current (or last) connection
	gen   int              // connections made
	lost  chan struct{}    // closed when the current connection is lost
	ready chan struct{}    // closed when connected
	done  bool             // the test is over: no more reconnects
	err   error            // a reconnect that failed
	got   map[string]map[string]int64
}

func newRoamer(t *testing.T, uid, dev, tok string, nodes ...*testutil.Server) *roamer {
	t.Helper()
	r := &roamer{uid: uid, dev: dev, tok: tok, nodes: nodes, got: map[string]map[string]int64{},
		ready: make(chan struct{})}
	if err := r.dial(0); err != nil {
		t.Fatalf("connect %s/%s: %v", uid, dev, err)
	}
	t.Cleanup(func() {
		r.mu.Lock()
		r.done = true
		cl := r.cl
		r.mu.Unlock()
		if cl != nil {
			cl.Disconnect(50)
		}
	})
	return r
}

// dial connects to nodes[i] and makes that the current connection.
func (r *roamer) dial(i int) error {
	r.mu.Lock()
	gen := r.gen + 1
	r.mu.Unlock()
	cl, err := r.nodes[i].Dial(r.uid, r.dev, r.tok, func(o *mqtt.ClientOptions) {
		o.SetCleanSession(false)
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { r.receive(m.Payload()) })
		o.SetConnectionLostHandler(func(mqtt.Client, error) { r.onLost(gen) })
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cl, r.at, r.gen, r.lost = cl, i, gen, make(chan struct{})
	close(r.ready)
	return nil
}

func (r *roamer) receive(payload []byte) {
	var ev struct {
		Kind, Conv, ID string
		Seq            int64
	}
	if json.Unmarshal(payload, &ev) != nil || ev.Kind != "msg" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got[ev.Conv] == nil {
		r.got[ev.Conv] = map[string]int64{}
	}
	r.got[ev.Conv][ev.ID] = ev.Seq
}

// onLost starts the reconnect to the next nodes, in turn, until one takes
// the connection.
func (r *roamer) onLost(gen int) {
	r.mu.Lock()
	if gen != r.gen || r.done || r.cl == nil {
		r.mu.Unlock()
		return
	}
	close(r.lost)
	r.cl, r.ready = nil, make(chan struct{})
	from := r.at
	r.mu.Unlock()
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for k := 1; ; k++ {
			err := r.dial((from + k) % len(r.nodes))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				r.mu.Lock()
				r.err = fmt.Errorf("%s/%s: no node took the reconnect: %w", r.uid, r.dev, err)
				r.mu.Unlock()
				return
			}
		}
	}()
}

// conn waits for the current connection.
func (r *roamer) conn() (cl *testutil.Client, at int, lost chan struct{}, err error) {
	for {
		r.mu.Lock()
		cl, at, lost, ready, err := r.cl, r.at, r.lost, r.ready, r.err
		r.mu.Unlock()
		if err != nil || cl != nil {
			return cl, at, lost, err
		}
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			return nil, 0, nil, fmt.Errorf("%s/%s: not reconnected within 30s", r.uid, r.dev)
		}
	}
}

// send publishes at QoS 1 until a PUBACK comes, on whichever connection is
// current, resending with the same cid after a lost connection. It tells
// the node (index) of every attempt.
func (r *roamer) send(topic, cid string, attempt func(node int)) error {
	payload := `{"cid":"` + cid + `","type":"text","body":{"text":"load"}}`
	for {
		cl, at, lost, err := r.conn()
		if err != nil {
			return err
		}
		attempt(at)
		tok := cl.Client.Publish(topic, 1, false, payload)
		select {
		case <-tok.Done():
			if tok.Error() == nil {
				return nil
			}
			select {
			case <-lost:
			case <-time.After(15 * time.Second):
				return fmt.Errorf("%s: publish failed and the connection stays: %w", cid, tok.Error())
			}
		case <-lost:
			// The PUBACK may have come just before: then it is acked.
			select {
			case <-tok.Done():
				if tok.Error() == nil {
					return nil
				}
			default:
			}
		case <-time.After(15 * time.Second):
			return fmt.Errorf("%s: no PUBACK within 15s", cid)
		}
	}
}

// received returns the ids received in conv.
func (r *roamer) received(conv string) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.got[conv]))
	for id, s := range r.got[conv] {
		out[id] = s
	}
	return out
}

func (r *roamer) moves() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen - 1
}

// metric reads one sample of /metrics (the service key as bearer).
func metric(t *testing.T, srv *testutil.Server, name string) (float64, error) {
	t.Helper()
	st, body := srv.API(t, "GET", "/metrics", testutil.ServiceKey, nil)
	if st != 200 {
		return 0, fmt.Errorf("/metrics: %d", st)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// wantMetric polls until /metrics shows name satisfying ok.
func wantMetric(t *testing.T, srv *testutil.Server, within time.Duration, name string, ok func(float64) bool) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		v, err := metric(t, srv, name)
		if err != nil {
			return err
		}
		if !ok(v) {
			return fmt.Errorf("%s %s = %v", srv.HTTPURL, name, v)
		}
		return nil
	})
}

// Three nodes as separate processes on one database and one NATS; clients
// with persistent sessions on every node send and receive, 1:1 and in a
// group, and one node is SIGKILLed mid-load. Its devices reconnect to the
// others and resume their sessions there: nothing acknowledged is lost or
// stored twice, seqs stay exact, the moved devices get every message of
// their conversations, and the surviving nodes drop the dead node's
// devices from presence.
func TestClusterNodeDeath(t *testing.T) {
	start := time.Now()
	nats := testutil.StartNATS(t)
	cfg := testutil.TestConfig(t, "mysql") // skips without MQIM_TEST_MYSQL_DSN
	var nodes []*testutil.Server
	var procs []*process
	for i := 1; i <= 3; i++ {
		c := cfg
		if i > 1 {
			c.DataDir = t.TempDir()
		}
		// One after the other: node 1 applies the migrations.
		p := startProcess(t, c, testutil.FreePort(t), testutil.FreePort(t),
			"MQIM_CLUSTER_NATS_URL="+nats.URL, "MQIM_CLUSTER_HEARTBEAT=200ms",
			fmt.Sprintf("MQIM_CLUSTER_NODE_ID=node-%d", i), "MQIM_LIMITS_SEND_RATE=0")
		procs = append(procs, p)
		nodes = append(nodes, p.srv)
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	t.Logf("%v: nodes up", time.Since(start))
	for _, n := range nodes {
		wantMetric(t, n, wait, "mqim_cluster_peers", func(v float64) bool { return v == 2 })
	}

	// Users by home node; node 3 is the one that dies. Pairs cross it, and
	// one lives on it entirely.
	home := map[string]*testutil.Server{"a1": n1, "b1": n1, "a2": n2, "b2": n2, "a3": n3, "b3": n3, "c3": n3, "d3": n3}
	peer := map[string]string{"a1": "a3", "a3": "a1", "a2": "b3", "b3": "a2", "b1": "b2", "b2": "b1", "c3": "d3", "d3": "c3"}
	uids := make([]string, 0, len(home))
	for u := range home {
		uids = append(uids, u)
	}
	sort.Strings(uids)
	toks := map[string]string{}
	for _, u := range append([]string{"probe", "idle"}, uids...) {
		toks[u] = n1.User(t, u)
	}
	n1.MustAPI(t, 201, "POST", "/v1/groups", testutil.ServiceKey,
		map[string]any{"id": "all", "name": "All", "owner": "a1", "members": uids}, nil)

	// Each device falls back to the nodes after its own, in turn.
	rs := map[string]*roamer{}
	for _, u := range uids {
		var order []*testutil.Server
		for k := range nodes {
			if nodes[k] == home[u] {
				order = []*testutil.Server{nodes[k], nodes[(k+1)%3], nodes[(k+2)%3]}
			}
		}
		if u == "b3" || u == "d3" {
			order[1], order[2] = order[2], order[1] // node 3's devices move to both others
		}
		rs[u] = newRoamer(t, u, "d", toks[u], order...)
	}
	n3.Connect(t, "idle", "watch", toks["idle"]) // never comes back
	// A device's subscriptions are made just after its CONNACK: probe each
	// inbox (in a conversation the test does not count) until it delivers.
	for _, u := range uids {
		r := rs[u]
		conv := chat.DirectConv("probe", u)
		testutil.Eventually(t, wait, func() error {
			if len(r.received(conv)) > 0 {
				return nil
			}
			n1.MustAPI(t, 201, "POST", "/v1/messages", testutil.ServiceKey,
				map[string]any{"from": "probe", "to": u, "type": "text", "body": map[string]string{"text": "probe"}}, nil)
			return fmt.Errorf("%s: no probe received yet", u)
		})
	}
	testutil.Eventually(t, wait, func() error {
		for _, n := range nodes[:2] {
			if d := presenceOf(t, n, "idle"); fmt.Sprint(d) != "[watch]" {
				return fmt.Errorf("idle seen from %s: %v", n.HTTPURL, d)
			}
		}
		return nil
	})

	t.Logf("%v: devices ready", time.Since(start))
	// Load: every device sends QoS 1 at a steady pace, two in three to its
	// peer, one in three to the group.
	var (
		acked   sync.Map // cid → conv
		onDead  sync.Map // cid → true: an attempt went to node 3
		total   atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		errs    = make(chan error, len(uids))
		after   = map[string]*atomic.Int64{} // acks since the kill, per user
		killed  atomic.Bool
		sentDup atomic.Int64
	)
	for _, u := range uids {
		after[u] = &atomic.Int64{}
	}
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(halt) // a failure below stops the senders too
	for _, u := range uids {
		r := rs[u]
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(30 * time.Millisecond)
			defer tick.Stop()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				cid := fmt.Sprintf("%s-%d", u, j)
				topic, conv := "im/u/"+peer[u], chat.DirectConv(u, peer[u])
				if j%3 == 0 {
					topic, conv = "im/g/all", "g:all"
				}
				tries := 0
				err := r.send(topic, cid, func(node int) {
					if tries++; tries > 1 {
						sentDup.Add(1)
					}
					if r.nodes[node] == n3 {
						onDead.Store(cid, true)
					}
				})
				if err != nil {
					errs <- err
					return
				}
				acked.Store(cid, conv)
				total.Add(1)
				if killed.Load() {
					after[u].Add(1)
				}
			}
		}()
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		if n := total.Load(); n < 200 {
			return fmt.Errorf("%d acked", n)
		}
		return nil
	})
	if err := procs[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	killed.Store(true)
	_ = procs[2].cmd.Wait()
	acksAtKill := total.Load()

	// The survivors notice: node 3's idle device drops out of presence, and
	// node 3 out of the peers, within a few heartbeats.
	testutil.Eventually(t, 3*time.Second, func() error {
		for _, n := range nodes[:2] {
			if d := presenceOf(t, n, "idle"); len(d) != 0 {
				return fmt.Errorf("idle still seen from %s: %v", n.HTTPURL, d)
			}
		}
		return nil
	})
	gone := time.Since(killedAt)
	for _, n := range nodes[:2] {
		wantMetric(t, n, 3*time.Second, "mqim_cluster_peers", func(v float64) bool { return v == 1 })
	}

	// Keep going until every device of node 3 has moved and sent on.
	testutil.Eventually(t, 60*time.Second, func() error {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		for _, u := range uids {
			if home[u] == n3 && rs[u].moves() < 1 {
				return fmt.Errorf("%s not moved yet", u)
			}
			if n := after[u].Load(); n < 20 {
				return fmt.Errorf("%s: %d acked since the kill", u, n)
			}
		}
		return nil
	})
	halt()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	t.Logf("%v: load stopped", time.Since(start))
	// The moved devices are online, on their new nodes, as both survivors
	// see it (dropping node 3's devices did not drop them).
	testutil.Eventually(t, wait, func() error {
		for _, n := range nodes[:2] {
			for _, u := range uids {
				if d := presenceOf(t, n, u); fmt.Sprint(d) != "[d]" {
					return fmt.Errorf("%s seen from %s: %v", u, n.HTTPURL, d)
				}
			}
		}
		return nil
	})
	// The store: every acked message once, seqs 1..N in every conversation.
	convSet := map[string]bool{"g:all": true}
	for _, u := range uids {
		convSet[chat.DirectConv(u, peer[u])] = true
	}
	stored := map[string]map[string]string{} // conv → id → cid
	perCID := map[string]int{}
	for conv := range convSet {
		stored[conv] = map[string]string{}
		member := strings.Split(strings.TrimPrefix(conv, "d:"), ":")[0]
		if conv == "g:all" {
			member = "a1"
		}
		prev := int64(0)
		for _, m := range history(t, n1, toks[member], conv, 0) {
			if m.Seq != prev+1 {
				t.Fatalf("%s: seq %d after %d", conv, m.Seq, prev)
			}
			prev = m.Seq
			if m.CID == "" {
				continue // the group's creation, before any device connected
			}
			stored[conv][m.ID] = m.CID
			perCID[m.CID]++
		}
	}
	nAcked := 0
	acked.Range(func(k, v any) bool {
		nAcked++
		cid := k.(string)
		if perCID[cid] != 1 {
			t.Errorf("acked %s (%s) stored %d times", cid, v, perCID[cid])
		}
		return true
	})
	for cid, n := range perCID {
		if n != 1 {
			t.Errorf("%s stored %d times", cid, n)
		}
	}

	// Every device got every message of its conversations: the moved ones
	// by the replay of their resumed session (or live), the others live —
	// but for what node 3 may have committed and not yet passed on to NATS
	// when it died (live delivery is best effort; those devices were not
	// disconnected, so nothing replays it to them).
	for _, u := range uids {
		r := rs[u]
		moved := home[u] == n3
		for _, conv := range []string{"g:all", chat.DirectConv(u, peer[u])} {
			testutil.Eventually(t, wait, func() error {
				got := r.received(conv)
				var missing []string
				for id, cid := range stored[conv] {
					if _, ok := got[id]; ok {
						continue
					}
					if _, maybe := onDead.Load(cid); !moved && maybe {
						continue
					}
					missing = append(missing, cid)
				}
				if len(missing) > 0 {
					sort.Strings(missing)
					return fmt.Errorf("%s (moved %v) misses %d of %d in %s: %v", u, moved, len(missing), len(stored[conv]), conv, missing[:min(len(missing), 10)])
				}
				return nil
			})
		}
	}
	t.Logf("%d acked (%d at the kill), %d resends; idle device gone from presence %v after the kill",
		nAcked, acksAtKill, sentDup.Load(), gone.Round(time.Millisecond))
}
