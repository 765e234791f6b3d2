package e2e

import (
	"fmt"
	"os"
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
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv, g := pushServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "phone", "ios", apnsToken("bob-phone"))
		device(t, srv, tb, "tab", "android", "and-bob-tab")
		device(t, srv, ta, "ipad", "ios", apnsToken("alice-ipad")) // the sender's own offline device
		srv.Connect(t, "bob", "tab", tb)
		a := srv.Connect(t, "alice", "laptop", ta)
		if err := a.Publish("im/u/bob", 1, "hello bob, this is a long enough message to be cut somewhere"); err != nil {
			t.Fatal(err)
		}
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
		if err := a.Publish("im/u/bob", 1, "now you are online"); err != nil {
			t.Fatal(err)
		}
		settled(t, srv, 2)
		if got := g.Received(); len(got) != 1 {
			t.Fatalf("pushed to a connected device: %+v", got[1:])
		}
	})
}

// Reconnecting with the same client id takes the session over; the old
// socket's end must not mark the device offline.
func TestPushTakeoverKeepsDeviceOnline(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv, g := pushServer(t, backend)
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
		srv.MustAPI(t, 200, "GET", "/v1/presence?user_ids=bob", ta, nil, &pres)
		if !pres["bob"].Online || strings.Join(pres["bob"].Devices, ",") != "phone" {
			t.Fatalf("presence after takeover: %+v", pres)
		}
		a := srv.Connect(t, "alice", "a", ta)
		if err := a.Publish("im/u/bob", 1, "are you there"); err != nil {
			t.Fatal(err)
		}
		settled(t, srv, 1)
		if got := g.Received(); len(got) != 0 {
			t.Fatalf("pushed to a taken-over (still online) device: %+v", got)
		}
	})
}

func TestPushMutedAndMentions(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv, g := pushServer(t, backend)
		ta, tb, tc := srv.User(t, "alice"), srv.User(t, "bob"), srv.User(t, "carol")
		device(t, srv, tb, "phone", "android", "and-bob")
		group(t, srv, "team", "alice", "bob", "carol")
		a := srv.Connect(t, "alice", "a", ta)
		c := srv.Connect(t, "carol", "c", tc)
		send := func(cl *testutil.Client, topic, payload string) {
			t.Helper()
			if err := cl.Publish(topic, 1, payload); err != nil {
				t.Fatal(err)
			}
		}
		send(a, "im/u/bob", "first")
		settled(t, srv, 1) // decided before the mute below
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/d:alice:bob", tb, map[string]any{"muted": true}, nil)
		srv.MustAPI(t, 200, "PATCH", "/v1/conversations/g:team", tb, map[string]any{"muted": true}, nil)
		send(a, "im/u/bob", "muted: no push")
		send(a, "im/u/bob", `{"type":"text","body":{"text":"@bob look"},"mentions":["bob"]}`)
		send(c, "im/g/team", `{"type":"text","body":{"text":"@all from a member"},"mentions":["all"]}`)
		send(a, "im/g/team", `{"type":"text","body":{"text":"@all from the owner"},"mentions":["all"]}`)
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
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv, g := pushServer(t, backend)
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
			if err := sender.Publish("im/g/big", 1, fmt.Sprintf("announcement %d", i)); err != nil {
				t.Fatal(err)
			}
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
		t.Logf("%s: %d notifications in %d gorush requests", backend, 3*offline, g.Requests())
	})
}

// gorush down or failing: retries, then counted as failed; the broker keeps
// delivering and nothing waits. Dead tokens are pruned; network failures
// never prune.
func TestPushFailuresAndPruning(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		srv, g := pushServer(t, backend)
		ta, tb := srv.User(t, "alice"), srv.User(t, "bob")
		device(t, srv, tb, "phone", "ios", apnsToken("dead"))
		device(t, srv, tb, "tab", "android", "and-flaky")
		a := srv.Connect(t, "alice", "a", ta)
		bweb := srv.Connect(t, "bob", "web", tb)

		g.Down()
		for i := 0; i < 3; i++ {
			if err := a.Publish("im/u/bob", 1, fmt.Sprintf("while gorush is down %d", i)); err != nil {
				t.Fatal(err)
			}
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
		if err := a.Publish("im/u/bob", 1, "gorush says 500"); err != nil {
			t.Fatal(err)
		}
		bweb.Await(t, wait, map[string]any{"seq": 4})
		settled(t, srv, 4)
		if m.Failed() != failedBefore+1 || m.Retried() != retriedBefore+2 || len(g.Received()) != 0 {
			t.Fatalf("500s: failed %d -> %d, retried %d -> %d, received %d", failedBefore, m.Failed(), retriedBefore, m.Retried(), len(g.Received()))
		}
		device(t, srv, tb, "tab", "android", "and-flaky")

		// Permanent failure prunes; a DNS error does not.
		g.FailToken(apnsToken("dead"), "Unregistered")
		g.FailToken("and-flaky", "dial tcp: lookup fcm.googleapis.com: no such host")
		if err := a.Publish("im/u/bob", 1, "prune time"); err != nil {
			t.Fatal(err)
		}
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
	st, body := srv.API(t, "GET", "/metrics", "", nil)
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

// docker-compose.yml is structurally what `docker compose config` expects,
// runs gorush 1.22.0 or later, and gorush's settings are the ones push
// needs (sync mode, tokens not hidden).
func TestComposeFile(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
			DependsOn   map[string]any    `yaml:"depends_on"`
			Command     []string          `yaml:"command"`
			Restart     string            `yaml:"restart"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	read := func(path string, v any) {
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
	read("../../docker-compose.yml", &compose)
	mq, my, gr := compose.Services["mqim"], compose.Services["mysql"], compose.Services["gorush"]
	if mq.Build == nil || mq.Environment["MQIM_STORE_DRIVER"] != "mysql" || mq.Environment["MQIM_PUSH_GORUSH_URL"] != "http://gorush:8088" {
		t.Fatalf("mqim service: %+v", mq)
	}
	if !strings.HasPrefix(my.Image, "mysql:8") {
		t.Fatalf("mysql image %q", my.Image)
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.SplitN(gr.Image, ":", 2)[1], "v"), "%d.%d", &major, &minor); err != nil || major < 1 || (major == 1 && minor < 22) {
		t.Fatalf("gorush image %q: want 1.22.0 or later", gr.Image)
	}
	for name := range mq.DependsOn {
		if _, ok := compose.Services[name]; !ok {
			t.Fatalf("mqim depends on unknown service %s", name)
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
	var gcfg struct {
		Core struct {
			Sync bool `yaml:"sync"`
		} `yaml:"core"`
		Log struct {
			HideToken bool `yaml:"hide_token"`
		} `yaml:"log"`
	}
	b, err := os.ReadFile("../../configs/gorush.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &gcfg); err != nil {
		t.Fatal(err)
	}
	if !gcfg.Core.Sync || gcfg.Log.HideToken {
		t.Fatalf("gorush.yml: sync %v hide_token %v", gcfg.Core.Sync, gcfg.Log.HideToken)
	}
}
