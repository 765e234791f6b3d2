package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/push/gorush/gorushtest"
)

// pushServer starts mqim with push through a gorush-compatible fake.
func pushServer(t *testing.T, backend string, mut ...func(*config.Config)) (*testutil.Server, *gorushtest.Server) {
	t.Helper()
	g := gorushtest.Start(t)
	srv := testutil.StartServer(t, backend, append([]func(*config.Config){func(c *config.Config) {
		c.Push.GorushURL = g.URL
		c.Push.IOSTopic = "com.example.im"
		c.Push.Timeout = 10 * time.Second
		c.Push.Backoff = 5 * time.Millisecond
		c.Push.MaxRetries = 2
	}}, mut...)...)
	return srv, g
}

// eachPushServer runs f as a subtest per backend, each with a fresh
// pushServer.
func eachPushServer(t *testing.T, f func(t *testing.T, srv *testutil.Server, g *gorushtest.Server)) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv, g := pushServer(t, backend)
		f(t, srv, g)
	})
}

func device(t *testing.T, srv *testutil.Server, tok, dev, platform, token string) {
	t.Helper()
	srv.MustAPI(t, 200, "PUT", "/v1/devices/"+dev, tok, map[string]string{"platform": platform, "token": token}, nil)
}

// settled waits until the push planner has decided on n messages and the
// dispatcher has finished with everything it was given, so that what the
// fake gorush received is final (and an absence means no push).
func settled(t *testing.T, srv *testutil.Server, n int64) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() error {
		if got := srv.Planner.Planned.Load(); got < n {
			return fmt.Errorf("planned %d of %d", got, n)
		}
		m := srv.Push.Metrics()
		if done := m.Sent() + m.Failed() + m.Dropped(); done < m.Queued() {
			return fmt.Errorf("dispatcher: %d of %d done", done, m.Queued())
		}
		return nil
	})
}

func TestPushOnlyToDisconnectedDevices(t *testing.T) {
	eachPushServer(t, func(t *testing.T, srv *testutil.Server, g *gorushtest.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "phone", "ios", apnsToken("bob-phone"))
		device(t, srv, tb, "tab", "android", "and-bob-tab")
		device(t, srv, ta, "ipad", "ios", apnsToken("alice-ipad")) // the sender's own offline device
		srv.Connect(t, "bob", "tab", tb)
		a := srv.Connect(t, "alice", "laptop", ta)
		a.MustPublish(t, "im/u/bob", 1, "hello bob, this is a long enough message to be cut somewhere")
		ev := a.Await(t, wait, map[string]any{"kind": "msg", "seq": 1})
		settled(t, srv, 1)
		got := g.Received()
		if len(got) != 1 {
			t.Fatalf("want exactly one push, got %+v", got)
		}
		n := got[0]
		if n.Platform != gorushtest.IOS || strings.Join(n.Tokens, ",") != apnsToken("bob-phone") || n.Title != "Alice" ||
			n.Message != "hello bob, this is a long enough message to be cut somewhere" || n.Badge == nil || *n.Badge != 1 ||
			n.Topic != "com.example.im" || n.ThreadID != "d:alice:bob" {
			t.Fatalf("push = %+v badge %v", n, n.Badge)
		}
		if n.Data["conv"] != "d:alice:bob" || n.Data["id"] != ev["id"] || fmt.Sprint(n.Data["seq"]) != "1" {
			t.Fatalf("push data = %v", n.Data)
		}
		// Once the phone is connected, new messages push nothing.
		srv.Connect(t, "bob", "phone", tb)
		a.MustPublish(t, "im/u/bob", 1, "now you are online")
		settled(t, srv, 2)
		if got := g.Received(); len(got) != 1 {
			t.Fatalf("pushed to a connected device: %+v", got[1:])
		}
	})
}

// Reconnecting with the same client id takes the session over; the old
// socket's end must not mark the device offline.
func TestPushTakeoverKeepsDeviceOnline(t *testing.T) {
	eachPushServer(t, func(t *testing.T, srv *testutil.Server, g *gorushtest.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "phone", "android", "and-bob")
		old := srv.Connect(t, "bob", "phone", tb)
		srv.Connect(t, "bob", "phone", tb) // takeover
		testutil.Eventually(t, wait, func() error {
			if old.IsConnected() {
				return fmt.Errorf("old connection still up")
			}
			return nil
		})
		var pres map[string]struct {
			Online  bool     `json:"online"`
			Devices []string `json:"devices"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=bob", testutil.ServiceKey, nil, &pres)
		if !pres["bob"].Online || strings.Join(pres["bob"].Devices, ",") != "phone" {
			t.Fatalf("presence after takeover: %+v", pres)
		}
		a := srv.Connect(t, "alice", "a", ta)
		a.MustPublish(t, "im/u/bob", 1, "are you there")
		settled(t, srv, 1)
		if got := g.Received(); len(got) != 0 {
			t.Fatalf("pushed to a taken-over (still online) device: %+v", got)
		}
	})
}

func TestPushMutedAndMentions(t *testing.T) {
	eachPushServer(t, func(t *testing.T, srv *testutil.Server, g *gorushtest.Server) {
		ta, tb, tc := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		device(t, srv, tb, "phone", "android", "and-bob")
		group(t, srv, "team", "alice", "bob", "carol")
		a := srv.Connect(t, "alice", "a", ta)
		c := srv.Connect(t, "carol", "c", tc)
		a.MustPublish(t, "im/u/bob", 1, "first")
		settled(t, srv, 1) // decided before the mute below
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/d:alice:bob", tb, map[string]any{"muted": true}, nil)
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/g:team", tb, map[string]any{"muted": true}, nil)
		a.MustPublish(t, "im/u/bob", 1, "muted: no push")
		a.MustPublish(t, "im/u/bob", 1, `{"type":"text","body":{"text":"@bob look"},"mentions":["bob"]}`)
		c.MustPublish(t, "im/g/team", 1, `{"type":"text","body":{"text":"@all from a member"},"mentions":["all"]}`)
		a.MustPublish(t, "im/g/team", 1, `{"type":"text","body":{"text":"@all from the owner"},"mentions":["all"]}`)
		settled(t, srv, 5)
		var msgs []string
		for _, r := range g.Received() {
			msgs = append(msgs, r.Message)
		}
		want := []string{"first", "@bob look", "Alice: @all from the owner"}
		sort.Strings(msgs)
		sort.Strings(want)
		if strings.Join(msgs, "|") != strings.Join(want, "|") {
			t.Fatalf("pushes %q, want %q", msgs, want)
		}
		for _, r := range g.Received() {
			if r.Message == "Alice: @all from the owner" && r.Title != "Group team" {
				t.Fatalf("group push title %q", r.Title)
			}
		}
	})
}

// A 500-member group with 450 offline devices: each is pushed exactly once,
// in a bounded number of gorush requests, and the sender's PUBACK does not
// wait for gorush (which here answers only after seconds).
func TestPushLargeGroupBatchedAndOffThePath(t *testing.T) {
	eachPushServer(t, func(t *testing.T, srv *testutil.Server, g *gorushtest.Server) {
		const members, offline = 500, 450
		var uids []string
		toks := map[string]string{}
		want := map[string]bool{}
		for i := 0; i < members; i++ {
			uid := fmt.Sprintf("m%03d", i)
			uids = append(uids, uid)
			st, out := srv.API(t, "PUT", "/v1/users/"+uid, testutil.ServiceKey, map[string]string{"name": uid})
			if st != 201 {
				t.Fatalf("user: %d %s", st, out)
			}
			if i == 0 || i > offline { // the sender and 49 online members need tokens to connect
				toks[uid] = srv.User(t, uid)
			}
			platform, tok := "ios", apnsToken(uid)
			if i%2 == 1 {
				platform, tok = "android", "tok-"+uid
			}
			srv.MustAPI(t, 200, "PUT", "/v1/devices/phone?user_id="+uid, testutil.ServiceKey,
				map[string]string{"platform": platform, "token": tok}, nil)
			if i >= 1 && i <= offline {
				want[tok] = true
			}
		}
		group(t, srv, "big", uids[0], uids[1:]...)
		for i := offline + 1; i < members; i++ {
			srv.Connect(t, uids[i], "phone", toks[uids[i]])
		}
		sender := srv.Connect(t, uids[0], "phone", toks[uids[0]])

		g.SetDelay(3 * time.Second)
		for i := 0; i < 3; i++ {
			sender.MustPublish(t, "im/g/big", 1, fmt.Sprintf("announcement %d", i))
		}
		// All three PUBACKs are in while gorush has not answered a single
		// request yet: the send path does not wait for push.
		if m := srv.Push.Metrics(); m.Sent()+m.Failed() != 0 {
			t.Fatalf("gorush answered before the PUBACKs: sent %d failed %d", m.Sent(), m.Failed())
		}
		settled(t, srv, 3)
		per := map[string]int{}
		for _, r := range g.Received() {
			for _, tok := range r.Tokens {
				per[tok]++
			}
		}
		for tok := range want {
			if per[tok] != 3 {
				t.Fatalf("%s pushed %d times, want 3 (once per message)", tok, per[tok])
			}
		}
		if len(per) != offline {
			t.Fatalf("%d tokens pushed, want %d", len(per), offline)
		}
		// 450 notifications per message in batches of 50: 9 requests each.
		if n := g.Requests(); n > 3*(offline/50+4) {
			t.Fatalf("%d gorush requests for %d notifications", n, 3*offline)
		}
		t.Logf("%s: %d notifications in %d gorush requests", srv.Backend, 3*offline, g.Requests())
	})
}

// gorush down or failing: retries, then counted as failed; the broker keeps
// delivering and nothing waits. Dead tokens are pruned; network failures
// never prune.
func TestPushFailuresAndPruning(t *testing.T) {
	eachPushServer(t, func(t *testing.T, srv *testutil.Server, g *gorushtest.Server) {
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "phone", "ios", apnsToken("dead"))
		device(t, srv, tb, "tab", "android", "and-flaky")
		a := srv.Connect(t, "alice", "a", ta)
		bweb := srv.Connect(t, "bob", "web", tb)

		g.Down()
		for i := 0; i < 3; i++ {
			a.MustPublish(t, "im/u/bob", 1, fmt.Sprintf("while gorush is down %d", i))
			bweb.Await(t, wait, map[string]any{"seq": i + 1})
		}
		settled(t, srv, 3)
		m := srv.Push.Metrics()
		if m.Failed() == 0 || m.Retried() == 0 || m.Sent() != 0 {
			t.Fatalf("down: failed %d retried %d sent %d", m.Failed(), m.Retried(), m.Sent())
		}
		g.Up()

		// One notification (one device), three 500s: the first try and both
		// retries fail, then it counts as failed.
		srv.MustAPI(t, 204, "DELETE", "/v1/devices/tab", tb, nil, nil)
		failedBefore, retriedBefore := m.Failed(), m.Retried()
		g.FailNext(3, 500, `{"code":500,"message":"boom"}`)
		a.MustPublish(t, "im/u/bob", 1, "gorush says 500")
		bweb.Await(t, wait, map[string]any{"seq": 4})
		settled(t, srv, 4)
		if m.Failed() != failedBefore+1 || m.Retried() != retriedBefore+2 || len(g.Received()) != 0 {
			t.Fatalf("500s: failed %d -> %d, retried %d -> %d, received %d", failedBefore, m.Failed(), retriedBefore, m.Retried(), len(g.Received()))
		}
		device(t, srv, tb, "tab", "android", "and-flaky")

		// Permanent failure prunes; a DNS error does not.
		g.FailToken(apnsToken("dead"), "Unregistered")
		g.FailToken("and-flaky", "dial tcp: lookup fcm.googleapis.com: no such host")
		a.MustPublish(t, "im/u/bob", 1, "prune time")
		settled(t, srv, 5)
		testutil.Eventually(t, wait, func() error {
			if m.Pruned() != 1 {
				return fmt.Errorf("pruned %d, token failures %d, received %d", m.Pruned(), m.TokenFailed(), len(g.Received()))
			}
			return nil
		})
		var devs []struct {
			DeviceID string `json:"device_id"`
		}
		srv.MustAPI(t, 200, "GET", "/v1/devices", tb, nil, &devs)
		if len(devs) != 1 || devs[0].DeviceID != "tab" {
			t.Fatalf("devices after pruning: %+v", devs)
		}
		if m.Pruned() != 1 {
			t.Fatalf("pruned %d", m.Pruned())
		}
	})
}

// The push counters are exported for Prometheus.
func TestMetricsEndpoint(t *testing.T) {
	srv, _ := pushServer(t, "sqlite")
	st, body := srv.API(t, "GET", "/metrics", testutil.ServiceKey, nil)
	if st != 200 {
		t.Fatalf("metrics: %d", st)
	}
	for _, name := range []string{"mqim_push_queued_total", "mqim_push_sent_total", "mqim_push_failed_total", "mqim_push_retried_total",
		"mqim_push_dropped_total", "mqim_push_pruned_total", "mqim_messages_stored_total", "mqim_commits_total"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// docker-compose.yml is structurally what `docker compose config` expects;
// a plain `up` starts mqim and MySQL only, with push off and needing no
// credentials; gorush 1.22.0 or later is in the "push" profile.
// composeService is one service of docker-compose.yml, with the keys it
// uses (readYAML refuses any other).
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]any    `yaml:"depends_on"`
	Command     []string          `yaml:"command"`
	Restart     string            `yaml:"restart"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
	Profiles    []string          `yaml:"profiles"`
}

func TestComposeFile(t *testing.T) {
	var compose struct {
		// The cluster nodes' shared settings, merged into each (YAML <<).
		XNode    composeService            `yaml:"x-mqim-node"`
		XNodeEnv map[string]string         `yaml:"x-mqim-node-env"`
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	readYAML(t, "../../docker-compose.yml", &compose)
	mq, my, gr := compose.Services["mqim"], compose.Services["mysql"], compose.Services["gorush"]
	if mq.Build == nil || mq.Environment["MQIM_STORE_DRIVER"] != "mysql" {
		t.Fatalf("mqim service: %+v", mq)
	}
	// Push is off unless the user sets the URL (for the push profile).
	if url := mq.Environment["MQIM_PUSH_GORUSH_URL"]; url != "${MQIM_PUSH_GORUSH_URL:-}" {
		t.Fatalf("mqim MQIM_PUSH_GORUSH_URL = %q, want it empty unless set by the user", url)
	}
	if !strings.HasPrefix(my.Image, "mysql:8") {
		t.Fatalf("mysql image %q", my.Image)
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.SplitN(gr.Image, ":", 2)[1], "v"), "%d.%d", &major, &minor); err != nil || major < 1 || (major == 1 && minor < 22) {
		t.Fatalf("gorush image %q: want 1.22.0 or later", gr.Image)
	}
	if len(mq.Profiles) > 0 || len(my.Profiles) > 0 {
		t.Fatalf("mqim and mysql must start without a profile: %v %v", mq.Profiles, my.Profiles)
	}
	if len(gr.Profiles) != 1 || gr.Profiles[0] != "push" {
		t.Fatalf("gorush profiles %v, want [push]", gr.Profiles)
	}
	// A dependency must start whenever its dependent does: without a
	// profile, or in one the dependent has.
	for sname, s := range compose.Services {
		for name := range s.DependsOn {
			dep, ok := compose.Services[name]
			if !ok {
				t.Fatalf("%s depends on unknown service %s", sname, name)
			}
			if len(dep.Profiles) > 0 && !sharesProfile(s.Profiles, dep.Profiles) {
				t.Fatalf("%s (profiles %v) depends on %s, which only the profiles %v start", sname, s.Profiles, name, dep.Profiles)
			}
		}
	}
	for _, s := range compose.Services {
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat("../../" + src); err != nil {
					t.Fatalf("volume source %s: %v", src, err)
				}
			} else if _, ok := compose.Volumes[src]; !ok {
				t.Fatalf("named volume %s is not declared", src)
			}
		}
	}
	// Compose interpolates every service, also those of profiles not
	// started: a required variable (${VAR:?...}) anywhere would stop the
	// plain `docker compose up`.
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	required := regexp.MustCompile(`\$\{\w+:?\?`)
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if required.MatchString(line) {
			t.Fatalf("docker-compose.yml marks a variable required, so the default up would need it: %s", line)
		}
	}

	// The cluster profile: NATS, three nodes on the single node's MySQL, and
	// the load balancer in front of them.
	nats := compose.Services["nats"]
	if !strings.HasPrefix(nats.Image, "nats:2.") || !reflect.DeepEqual(nats.Profiles, []string{"cluster"}) || nats.Healthcheck == nil {
		t.Fatalf("nats service: %+v", nats)
	}
	var nodes []string
	for name, s := range compose.Services {
		if s.Build != nil && name != "mqim" {
			nodes = append(nodes, name)
		}
	}
	sort.Strings(nodes)
	if want := []string{"mqim-1", "mqim-2", "mqim-3"}; !reflect.DeepEqual(nodes, want) {
		t.Fatalf("cluster nodes %v, want %v", nodes, want)
	}
	ids := map[string]bool{}
	for _, name := range nodes {
		n := compose.Services[name]
		env := n.Environment
		if !reflect.DeepEqual(n.Profiles, []string{"cluster"}) {
			t.Fatalf("%s profiles %v, want [cluster]", name, n.Profiles)
		}
		if env["MQIM_STORE_DRIVER"] != "mysql" || env["MQIM_STORE_DSN"] != mq.Environment["MQIM_STORE_DSN"] {
			t.Fatalf("%s store %q %q, want the mqim service's MySQL", name, env["MQIM_STORE_DRIVER"], env["MQIM_STORE_DSN"])
		}
		if env["MQIM_CLUSTER_NATS_URL"] != "nats://nats:4222" {
			t.Fatalf("%s MQIM_CLUSTER_NATS_URL = %q", name, env["MQIM_CLUSTER_NATS_URL"])
		}
		if id := env["MQIM_CLUSTER_NODE_ID"]; id != name || ids[id] {
			t.Fatalf("%s MQIM_CLUSTER_NODE_ID = %q, want its service name, unique", name, id)
		}
		ids[env["MQIM_CLUSTER_NODE_ID"]] = true
		// The shared secrets come from the user, the same for every node.
		for _, k := range []string{"MQIM_AUTH_JWT_SECRET", "MQIM_AUTH_SERVICE_KEY"} {
			if want := "${" + k + ":-}"; env[k] != want {
				t.Fatalf("%s %s = %q, want %q", name, k, env[k], want)
			}
		}
		if env["MQIM_HTTP_DEMO"] != "false" {
			t.Fatalf("%s MQIM_HTTP_DEMO = %q, want false", name, env["MQIM_HTTP_DEMO"])
		}
		if len(n.Ports) > 0 {
			t.Fatalf("%s publishes %v: only the load balancer may", name, n.Ports)
		}
		for _, dep := range []string{"mysql", "nats"} {
			if c, _ := n.DependsOn[dep].(map[string]any); c["condition"] != "service_healthy" {
				t.Fatalf("%s depends_on %s: %v, want condition service_healthy", name, dep, n.DependsOn[dep])
			}
		}
	}
	lb := compose.Services["lb"]
	if !strings.HasPrefix(lb.Image, "haproxy:") || !reflect.DeepEqual(lb.Profiles, []string{"cluster"}) {
		t.Fatalf("lb service: %+v", lb)
	}
	if !reflect.DeepEqual(lb.Volumes, []string{"./configs/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"}) {
		t.Fatalf("lb volumes %v, want configs/haproxy.cfg read-only at HAProxy's default path", lb.Volumes)
	}
	if !reflect.DeepEqual(lb.Ports, mq.Ports) {
		t.Fatalf("lb ports %v, want the single node's %v", lb.Ports, mq.Ports)
	}
	// `docker compose --profile cluster up lb` starts the nodes through it.
	var lbDeps []string
	for d := range lb.DependsOn {
		lbDeps = append(lbDeps, d)
	}
	sort.Strings(lbDeps)
	if !reflect.DeepEqual(lbDeps, nodes) {
		t.Fatalf("lb depends on %v, want the nodes %v", lbDeps, nodes)
	}
	// HAProxy sends to exactly these nodes, on every port.
	for _, b := range haproxyBackends(t, readHAProxy(t)) {
		var names []string
		for _, s := range b.servers {
			names = append(names, s.name)
		}
		sort.Strings(names)
		if !reflect.DeepEqual(names, nodes) {
			t.Fatalf("haproxy backend %s servers %v, want the compose nodes %v", b.name, names, nodes)
		}
	}
}

func sharesProfile(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// haproxySection is one section of configs/haproxy.cfg ("frontend mqtt"):
// its keyword lines, comments dropped, fields split on blanks.
type haproxySection struct {
	kind, name string
	lines      [][]string
}

// get returns the fields after the first line starting with the words of
// key ("timeout client"), and whether there is one.
func (s haproxySection) get(key string) ([]string, bool) {
	k := strings.Fields(key)
	for _, l := range s.lines {
		if len(l) >= len(k) && reflect.DeepEqual(l[:len(k)], k) {
			return l[len(k):], true
		}
	}
	return nil, false
}

func readHAProxy(t *testing.T) []haproxySection {
	t.Helper()
	b, err := os.ReadFile("../../configs/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var secs []haproxySection
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			s := haproxySection{kind: f[0]}
			if len(f) > 1 {
				s.name = f[1]
			}
			secs = append(secs, s)
			continue
		}
		if len(secs) == 0 {
			t.Fatalf("haproxy.cfg: %q outside a section", line)
		}
		secs[len(secs)-1].lines = append(secs[len(secs)-1].lines, f)
	}
	return secs
}

type haproxyServer struct {
	name, host, port string
	opts             []string
}

type haproxyBackend struct {
	haproxySection
	servers []haproxyServer
}

// haproxyBackends returns the backends with their server lines.
func haproxyBackends(t *testing.T, secs []haproxySection) map[string]haproxyBackend {
	t.Helper()
	out := map[string]haproxyBackend{}
	for _, s := range secs {
		if s.kind != "backend" {
			continue
		}
		b := haproxyBackend{haproxySection: s}
		for _, l := range s.lines {
			if l[0] != "server" {
				continue
			}
			if len(l) < 3 {
				t.Fatalf("haproxy backend %s: server line %v", s.name, l)
			}
			host, port, ok := strings.Cut(l[2], ":")
			if !ok {
				t.Fatalf("haproxy backend %s: server %s has no port: %q", s.name, l[1], l[2])
			}
			b.servers = append(b.servers, haproxyServer{name: l[1], host: host, port: port, opts: l[3:]})
		}
		out[s.name] = b
	}
	return out
}

// TestHAProxyConfig checks configs/haproxy.cfg, the load balancer of the
// compose cluster profile (docs/cluster.md): a TCP frontend per MQTT port
// and one for HTTP, each node on the same port behind it, only ready nodes
// (GET /readyz) chosen, and idle timeouts long enough for MQTT.
func TestHAProxyConfig(t *testing.T) {
	secs := readHAProxy(t)
	backends := haproxyBackends(t, secs)
	var defaults haproxySection
	frontends := map[string]haproxySection{} // by bound port
	resolvers := map[string]bool{}
	for _, s := range secs {
		switch s.kind {
		case "defaults":
			defaults = s
		case "frontend":
			bind, ok := s.get("bind")
			if !ok || !strings.HasPrefix(bind[0], ":") {
				t.Fatalf("frontend %s: bind %v, want :port", s.name, bind)
			}
			frontends[bind[0][1:]] = s
		case "resolvers":
			resolvers[s.name] = true
		}
	}
	// The effective value of a key: the section's, else the defaults'.
	effective := func(s haproxySection, key string) []string {
		if v, ok := s.get(key); ok {
			return v
		}
		v, _ := defaults.get(key)
		return v
	}
	mode := func(s haproxySection) string {
		if v := effective(s, "mode"); len(v) > 0 {
			return v[0]
		}
		return "tcp" // HAProxy's own default
	}
	duration := func(v []string) time.Duration {
		if len(v) != 1 {
			return 0
		}
		d, err := time.ParseDuration(v[0])
		if err != nil {
			t.Fatalf("haproxy duration %q: %v", v[0], err)
		}
		return d
	}
	// Whether a server is checked with GET /readyz on port 8080, itself or
	// through the server it tracks.
	var ready func(b haproxyBackend, s haproxyServer, depth int) bool
	ready = func(b haproxyBackend, s haproxyServer, depth int) bool {
		if depth > 3 {
			return false
		}
		for i, o := range s.opts {
			if o == "track" && i+1 < len(s.opts) {
				bn, sn, ok := strings.Cut(s.opts[i+1], "/")
				if !ok {
					bn, sn = b.name, s.opts[i+1]
				}
				if sn != s.name {
					t.Fatalf("backend %s: server %s tracks %s, another node", b.name, s.name, s.opts[i+1])
				}
				tb, ok := backends[bn]
				if !ok {
					return false
				}
				for _, ts := range tb.servers {
					if ts.name == sn && ts.host == s.host {
						return ready(tb, ts, depth+1)
					}
				}
				return false
			}
		}
		chk, _ := b.get("option httpchk")
		exp, _ := b.get("http-check expect")
		return strings.Contains(" "+strings.Join(s.opts, " ")+" ", " check port 8080 ") &&
			reflect.DeepEqual(chk, []string{"GET", "/readyz"}) &&
			reflect.DeepEqual(exp, []string{"status", "200"})
	}
	for _, port := range []string{"1883", "8083", "8080"} {
		f, ok := frontends[port]
		if !ok {
			t.Fatalf("no frontend binds :%s", port)
		}
		bn, _ := f.get("default_backend")
		if len(bn) != 1 {
			t.Fatalf("frontend %s: default_backend %v", f.name, bn)
		}
		b, ok := backends[bn[0]]
		if !ok || len(b.servers) == 0 {
			t.Fatalf("frontend %s: backend %s missing or empty", f.name, bn[0])
		}
		for _, s := range b.servers {
			if s.name != s.host || s.port != port {
				t.Fatalf("backend %s: server %s at %s:%s, want the node of that name on port %s", b.name, s.name, s.host, s.port, port)
			}
			if !ready(b, s, 0) {
				t.Fatalf("backend %s: server %s is not checked with GET /readyz on port 8080: %v", b.name, s.name, s.opts)
			}
		}
		if port == "8080" {
			continue
		}
		// MQTT: long-lived connections, passed through as bytes.
		if mode(f) != "tcp" || mode(b.haproxySection) != "tcp" {
			t.Fatalf("port %s: mode %s/%s, want tcp", port, mode(f), mode(b.haproxySection))
		}
		if v, _ := b.get("balance"); !reflect.DeepEqual(v, []string{"leastconn"}) {
			t.Fatalf("backend %s: balance %v, want leastconn", b.name, v)
		}
		for _, k := range []string{"timeout client", "timeout server", "timeout tunnel"} {
			sec := f
			if k != "timeout client" {
				sec = b.haproxySection
			}
			if d := duration(effective(sec, k)); d < 5*time.Minute {
				t.Fatalf("port %s: %s %v, want 5m or more (well above MQTT keepalives)", port, k, d)
			}
		}
	}
	// HAProxy starts before the nodes exist and finds them through DNS.
	ds, _ := defaults.get("default-server")
	opts := " " + strings.Join(ds, " ") + " "
	if !strings.Contains(opts, " init-addr last,libc,none ") {
		t.Fatalf("default-server %v: want init-addr last,libc,none", ds)
	}
	if i := strings.Index(opts, " resolvers "); i < 0 || !resolvers[strings.Fields(opts[i:])[1]] {
		t.Fatalf("default-server %v: want resolvers naming a resolvers section (%v)", ds, resolvers)
	}
	// HAProxy's own check, when it is installed (apt-get install haproxy).
	if bin, err := exec.LookPath("haproxy"); err == nil {
		out, err := exec.Command(bin, "-c", "-f", "../../configs/haproxy.cfg").CombinedOutput()
		if err != nil {
			t.Fatalf("haproxy -c: %v\n%s", err, out)
		}
	} else {
		t.Log("haproxy not installed: its own check (haproxy -c) skipped")
	}
}

// gorushConfig has the keys gorush 1.22 reads from its configuration file
// (its config.LoadConf), by section.
type gorushConfig struct {
	Core struct {
		Enabled         bool     `yaml:"enabled"`
		Address         string   `yaml:"address"`
		ShutdownTimeout int      `yaml:"shutdown_timeout"`
		Port            string   `yaml:"port"`
		WorkerNum       int      `yaml:"worker_num"`
		QueueNum        int      `yaml:"queue_num"`
		MaxNotification int      `yaml:"max_notification"`
		Sync            bool     `yaml:"sync"`
		FeedbackHookURL string   `yaml:"feedback_hook_url"`
		FeedbackTimeout int      `yaml:"feedback_timeout"`
		FeedbackHeader  []string `yaml:"feedback_header"`
		Mode            string   `yaml:"mode"`
		SSL             bool     `yaml:"ssl"`
		CertPath        string   `yaml:"cert_path"`
		KeyPath         string   `yaml:"key_path"`
		CertBase64      string   `yaml:"cert_base64"`
		KeyBase64       string   `yaml:"key_base64"`
		HTTPProxy       string   `yaml:"http_proxy"`
		PID             struct {
			Enabled  bool   `yaml:"enabled"`
			Path     string `yaml:"path"`
			Override bool   `yaml:"override"`
		} `yaml:"pid"`
		AutoTLS struct {
			Enabled bool   `yaml:"enabled"`
			Folder  string `yaml:"folder"`
			Host    string `yaml:"host"`
		} `yaml:"auto_tls"`
	} `yaml:"core"`
	GRPC struct {
		Enabled bool   `yaml:"enabled"`
		Port    string `yaml:"port"`
	} `yaml:"grpc"`
	API struct {
		PushURI    string `yaml:"push_uri"`
		StatGoURI  string `yaml:"stat_go_uri"`
		StatAppURI string `yaml:"stat_app_uri"`
		ConfigURI  string `yaml:"config_uri"`
		SysStatURI string `yaml:"sys_stat_uri"`
		MetricURI  string `yaml:"metric_uri"`
		HealthURI  string `yaml:"health_uri"`
	} `yaml:"api"`
	Android struct {
		Enabled    bool   `yaml:"enabled"`
		KeyPath    string `yaml:"key_path"`
		Credential string `yaml:"credential"`
		MaxRetry   int    `yaml:"max_retry"`
	} `yaml:"android"`
	Huawei struct {
		Enabled   bool   `yaml:"enabled"`
		AppSecret string `yaml:"appsecret"`
		AppID     string `yaml:"appid"`
		MaxRetry  int    `yaml:"max_retry"`
	} `yaml:"huawei"`
	Queue struct {
		Engine string `yaml:"engine"`
		NSQ    struct {
			Addr    string `yaml:"addr"`
			Topic   string `yaml:"topic"`
			Channel string `yaml:"channel"`
		} `yaml:"nsq"`
		NATS struct {
			Addr  string `yaml:"addr"`
			Subj  string `yaml:"subj"`
			Queue string `yaml:"queue"`
		} `yaml:"nats"`
		Redis struct {
			Addr       string `yaml:"addr"`
			Group      string `yaml:"group"`
			Consumer   string `yaml:"consumer"`
			StreamName string `yaml:"stream_name"`
			Username   string `yaml:"username"`
			Password   string `yaml:"password"`
			WithTLS    bool   `yaml:"with_tls"`
		} `yaml:"redis"`
	} `yaml:"queue"`
	Ios struct {
		Enabled             bool   `yaml:"enabled"`
		KeyPath             string `yaml:"key_path"`
		KeyBase64           string `yaml:"key_base64"`
		KeyType             string `yaml:"key_type"`
		Password            string `yaml:"password"`
		Production          bool   `yaml:"production"`
		MaxConcurrentPushes int    `yaml:"max_concurrent_pushes"`
		MaxRetry            int    `yaml:"max_retry"`
		KeyID               string `yaml:"key_id"`
		TeamID              string `yaml:"team_id"`
	} `yaml:"ios"`
	Log struct {
		Format       string `yaml:"format"`
		AccessLog    string `yaml:"access_log"`
		AccessLevel  string `yaml:"access_level"`
		ErrorLog     string `yaml:"error_log"`
		ErrorLevel   string `yaml:"error_level"`
		HideToken    bool   `yaml:"hide_token"`
		HideMessages bool   `yaml:"hide_messages"`
	} `yaml:"log"`
	Stat struct {
		Engine string `yaml:"engine"`
		Redis  struct {
			Cluster  bool   `yaml:"cluster"`
			Addr     string `yaml:"addr"`
			Username string `yaml:"username"`
			Password string `yaml:"password"`
			DB       int    `yaml:"db"`
		} `yaml:"redis"`
		BoltDB struct {
			Path   string `yaml:"path"`
			Bucket string `yaml:"bucket"`
		} `yaml:"boltdb"`
		BuntDB struct {
			Path string `yaml:"path"`
		} `yaml:"buntdb"`
		LevelDB struct {
			Path string `yaml:"path"`
		} `yaml:"leveldb"`
		BadgerDB struct {
			Path string `yaml:"path"`
		} `yaml:"badgerdb"`
	} `yaml:"stat"`
}

// configs/gorush.yml sets every key gorush reads and no other (given a
// file, gorush takes no key from its built-in defaults: a missing engine or
// core.enabled would stop it or its HTTP API), with what mqim needs: the
// HTTP API on the port and path mqim calls, sync mode on the local queue,
// tokens not hidden, no gorush retries, and credentials under /config/push.
func TestGorushConfig(t *testing.T) {
	const path = "../../configs/gorush.yml"
	var g gorushConfig
	readYAML(t, path, &g)
	var raw map[string]any
	readYAML(t, path, &raw)
	var missing []string
	var walk func(typ reflect.Type, m map[string]any, prefix string)
	walk = func(typ reflect.Type, m map[string]any, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := f.Tag.Get("yaml")
			v, ok := m[key]
			if !ok {
				missing = append(missing, prefix+key)
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				sub, _ := v.(map[string]any)
				walk(f.Type, sub, prefix+key+".")
			}
		}
	}
	walk(reflect.TypeOf(g), raw, "")
	if len(missing) > 0 {
		t.Fatalf("%s lacks %v", path, missing)
	}
	if !g.Core.Enabled || g.Core.Port != "8088" || g.API.PushURI != "/api/push" || g.API.HealthURI == "" {
		t.Fatalf("HTTP API: enabled %v port %q push_uri %q health_uri %q", g.Core.Enabled, g.Core.Port, g.API.PushURI, g.API.HealthURI)
	}
	if !g.Core.Sync || g.Queue.Engine != "local" || g.Log.HideToken || g.Stat.Engine != "memory" {
		t.Fatalf("sync %v queue %q hide_token %v stat %q", g.Core.Sync, g.Queue.Engine, g.Log.HideToken, g.Stat.Engine)
	}
	if g.Core.MaxNotification < 50 {
		t.Fatalf("max_notification %d is below mqim's batch of 50", g.Core.MaxNotification)
	}
	if g.Android.MaxRetry != 0 || g.Ios.MaxRetry != 0 || g.Huawei.MaxRetry != 0 {
		t.Fatal("gorush retries: mqim does the retrying")
	}
	if !g.Android.Enabled && !g.Ios.Enabled && !g.Huawei.Enabled {
		t.Fatal("no platform enabled: gorush refuses to start")
	}
	for _, p := range []string{g.Android.KeyPath, g.Ios.KeyPath} {
		if p != "" && !strings.HasPrefix(p, "/config/push/") {
			t.Fatalf("credential path %s is outside the mounted /config/push", p)
		}
	}
	if g.Ios.KeyType == "p8" && g.Ios.Enabled && (g.Ios.KeyID == "" || g.Ios.TeamID == "") {
		t.Fatal("ios p8 needs key_id and team_id")
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
