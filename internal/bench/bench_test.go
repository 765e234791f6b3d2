package bench

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/testutil"
)

// TestMain is also the child processes' entry point: the tool re-executes
// os.Executable, which in tests is this test binary, with MQIM_BENCH_CHILD
// naming the mode.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runChild(ctx, mode, os.Stdout, os.Stderr, os.Environ())
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// tiny are the smoke test's sizes.
func tiny() Options {
	return Options{Baseline: true, Duration: time.Second, Messages: 30, Pairs: 3, Members: 6, Senders: 2, Conns: 50,
		DevPerUser: 2, Clients: 3, Devices: 2, Store: "sqlite", Timeout: time.Minute}
}

// run runs one scenario with o, its children's stderr in errb (written
// through w, errb itself when nil), and fails the test with what they said
// if it fails.
func run(t *testing.T, o Options, errb *bytes.Buffer, w io.Writer, name string,
	scenario func(context.Context, *runner, *target) (*report, error), mqttOnly bool) []*report {
	t.Helper()
	if w == nil {
		w = errb
	}
	r := newRunner(o, io.Discard, w)
	reps, err := r.scenario(t.Context(), name, scenario, mqttOnly)
	if err != nil {
		r.stderr.Write(nil) // orders the read below after the children's writes
		t.Fatalf("%v\n%s", err, errb.String())
	}
	return reps
}

func value(t *testing.T, rep *report, name string) float64 {
	t.Helper()
	for _, m := range rep.metrics {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("%s: no metric %q in %+v", rep.target, name, rep.metrics)
	return 0
}

// Every scenario, at a tiny size, against a real mqim child process and
// (for the MQTT ones) a bare Mochi child: nothing lost, counts as sent.
func TestScenarios(t *testing.T) {
	checks := map[string]func(t *testing.T, rep *report, o Options){
		"dm": func(t *testing.T, rep *report, o Options) {
			want := float64(o.Pairs * o.Messages)
			if got := value(t, rep, "sent (acknowledged)"); got != want {
				t.Fatalf("%s: acknowledged %v, want %v", rep.target, got, want)
			}
			if got := value(t, rep, "received"); got != want {
				t.Fatalf("%s: received %v, want %v", rep.target, got, want)
			}
		},
		"group": func(t *testing.T, rep *report, o Options) {
			want := float64(o.Senders * o.Messages * o.Members)
			if got := value(t, rep, "received"); got != want {
				t.Fatalf("%s: received %v, want %v", rep.target, got, want)
			}
			value(t, rep, "publish-to-last-member p99")
		},
		"connections": func(t *testing.T, rep *report, o Options) {
			if got := value(t, rep, "connections"); got != float64(o.Conns) {
				t.Fatalf("%s: %v connections, want %d", rep.target, got, o.Conns)
			}
			if value(t, rep, "server RSS after") <= 0 || value(t, rep, "connect rate") <= 0 {
				t.Fatalf("%s: no RSS or rate: %+v", rep.target, rep.metrics)
			}
		},
		"http-send": func(t *testing.T, rep *report, o Options) {
			if got := value(t, rep, "received"); got != float64(o.Clients*o.Messages) {
				t.Fatalf("received %v", got)
			}
		},
		"catchup": func(t *testing.T, rep *report, o Options) {
			if got := value(t, rep, "HTTP: pages"); got != 2 {
				t.Fatalf("%v pages for 300 messages", got)
			}
		},
		"replay": func(t *testing.T, rep *report, o Options) {
			if got := value(t, rep, "devices complete"); got != float64(o.Devices) {
				t.Fatalf("%v devices complete", got)
			}
		},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			o := tiny()
			o.Scenario = s.name
			if s.name == "catchup" || s.name == "replay" {
				o.Messages = 300
			}
			if s.name == "dm" {
				o.CPUProfile = filepath.Join(t.TempDir(), "cpu.pprof")
			}
			var errb bytes.Buffer
			reps := run(t, o, &errb, nil, s.name, s.run, s.mqttOnly)
			want := 1
			if s.mqttOnly {
				want = 2
			}
			if len(reps) != want {
				t.Fatalf("%d reports, want %d", len(reps), want)
			}
			for _, rep := range reps {
				if rep.lost != 0 || (s.name != "connections" && value(t, rep, "lost") != 0) {
					t.Fatalf("%s: %d lost: %+v", rep.target, rep.lost, rep.metrics)
				}
				checks[s.name](t, rep, o)
				if rep.target == "mqim" && (s.name == "dm" || s.name == "group" || s.name == "http-send") && value(t, rep, "commits per msg") <= 0 {
					t.Fatalf("no commits per message: %+v", rep.metrics)
				}
			}
			var out bytes.Buffer
			printTable(&out, s.name, reps)
			if s.mqttOnly && !strings.Contains(out.String(), "mqim/bare") {
				t.Fatalf("no ratio column:\n%s", out.String())
			}
			if o.CPUProfile != "" {
				b, err := os.ReadFile(o.CPUProfile)
				if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
					t.Fatalf("cpu profile: %v, %d bytes", err, len(b))
				}
			}
		})
	}
}

// The flags are checked before anything starts.
func TestMainUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "scenarios:"},
		{[]string{"--scenario", "nope"}, 2, "unknown scenario"},
		{[]string{"--pairs", "0"}, 2, "positive"},
		{[]string{"--target-http", "http://x"}, 2, "go together"},
		{[]string{"--target-http", "http://x", "--target-mqtt", "x:1"}, 2, "--key"},
		{[]string{"--store", "mysql"}, 2, "--mysql-dsn"},
		{[]string{"--cluster", "1"}, 2, "at least 2"},
		{[]string{"--cluster", "3"}, 2, "--mysql-dsn"},
		{[]string{"--cluster", "3", "--mysql-dsn", "u:p@tcp(h)/", "--scenario", "replay"}, 2, "not replay"},
		{[]string{"--cluster", "3", "--mysql-dsn", "u:p@tcp(h)/", "--baseline"}, 2, "--compare-single"},
		{[]string{"--compare-single"}, 2, "go with --cluster"},
		{[]string{"extra"}, 2, "unexpected"},
	} {
		var out, errb bytes.Buffer
		code := Main(t.Context(), c.args, &out, &errb, nil)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) ||
			strings.Count(out.String()+errb.String(), "usage: mqim bench") > 1 {
			t.Fatalf("%v: exit %d, out %q, err %q", c.args, code, out.String(), errb.String())
		}
	}
}

// dm against a server on MySQL/MariaDB (scripts/test-mysql.sh sets the DSN,
// with no database name: the run gets a fresh database, dropped after).
func TestMySQL(t *testing.T) {
	dsn := os.Getenv("MQIM_TEST_MYSQL_DSN")
	if dsn == "" {
		t.Skip("MQIM_TEST_MYSQL_DSN not set")
	}
	o := tiny()
	o.Scenario, o.Baseline, o.Store, o.MySQLDSN = "dm", false, "mysql", dsn
	var errb bytes.Buffer
	reps := run(t, o, &errb, nil, "dm", runDM, true)
	if len(reps) != 1 || reps[0].lost != 0 || value(t, reps[0], "received") != float64(o.Pairs*o.Messages) {
		t.Fatalf("%+v", reps)
	}
}

// A running server is driven through --target-*: commits per message come
// from its /metrics, its CPU and RSS are not claimed. Its pprof listener
// is its own: the API port does not serve the profiler.
func TestRunningTarget(t *testing.T) {
	o := tiny()
	o.CPUProfile = filepath.Join(t.TempDir(), "cpu.pprof") // turns debug.pprof_addr on in the child
	var errb bytes.Buffer
	w := &lockedWriter{w: &errb} // shared by both runners
	srv, err := newRunner(o, io.Discard, w).target(t.Context(), "dm", "mqim")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	if code, _ := srv.api(t.Context(), "GET", "/debug/pprof/", srv.key, nil, nil); code == 200 {
		t.Fatal("the API port serves /debug/pprof/")
	}
	o = tiny()
	o.Baseline = false
	o.TargetHTTP, o.TargetMQTT, o.Key, o.TargetProf = srv.httpURL, srv.mqttAddr, srv.key, srv.pprof
	o.CPUProfile = filepath.Join(t.TempDir(), "target.pprof")
	reps := run(t, o, &errb, w, "dm", runDM, true)
	rep := reps[0]
	if rep.lost != 0 || value(t, rep, "commits per msg") <= 0 {
		t.Fatalf("%+v", rep.metrics)
	}
	for _, m := range rep.metrics {
		if strings.HasPrefix(m.Name, "server ") {
			t.Fatalf("claims %s of a server that is not its child", m.Name)
		}
	}
	if st, err := os.Stat(o.CPUProfile); err != nil || st.Size() == 0 {
		t.Fatalf("profile of the running server: %v", err)
	}
}

// dm against a cluster of two nodes on MySQL/MariaDB and a real NATS
// server (in the test process, passed with --nats-url), then against one
// node: nothing lost, every message crossed NATS (a pair's sender and
// receiver are on different nodes), each node's CPU measured, and the
// table has the cluster/single ratios.
func TestCluster(t *testing.T) {
	dsn := os.Getenv("MQIM_TEST_MYSQL_DSN")
	if dsn == "" {
		t.Skip("MQIM_TEST_MYSQL_DSN not set")
	}
	nats := testutil.StartNATS(t)
	o := tiny()
	o.Scenario, o.Baseline, o.Store, o.MySQLDSN = "dm", false, "mysql", dsn
	o.Cluster, o.NATSURL, o.CompareSingle = 2, nats.URL, true
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	reps := run(t, o, &errb, nil, "dm", runDM, true)
	if len(reps) != 2 || reps[0].target != "cluster" || reps[1].target != "single" {
		t.Fatalf("%d reports: %+v", len(reps), reps)
	}
	want := float64(o.Pairs * o.Messages)
	for _, rep := range reps {
		if rep.lost != 0 || value(t, rep, "received") != want || value(t, rep, "sent (acknowledged)") != want {
			t.Fatalf("%s: %+v", rep.target, rep.metrics)
		}
		value(t, rep, "server+NATS CPU per 1000 msgs")
	}
	c := reps[0]
	// Each message goes to its receiver's node over NATS.
	if got := value(t, c, "cluster received per msg (NATS, all nodes)"); got < 1 {
		t.Fatalf("cluster received per msg %v, want at least 1: pairs on one node?", got)
	}
	value(t, c, "cluster published per msg (NATS, all nodes)")
	value(t, c, "server CPU node 1")
	value(t, c, "server CPU node 2")
	for _, m := range c.metrics {
		if m.Name == "NATS server CPU" {
			t.Fatal("claims the CPU of a NATS server it did not start")
		}
	}
	var out bytes.Buffer
	printTable(&out, "dm", reps)
	if !strings.Contains(out.String(), "cluster/single") || !strings.Contains(out.String(), "cluster - single: latency p50") {
		t.Fatalf("no ratios:\n%s", out.String())
	}
}

// A cluster without a NATS server to start says how to get one.
func TestClusterNoNATS(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	var out, errb bytes.Buffer
	code := Main(t.Context(), []string{"--cluster", "2", "--mysql-dsn", "u:p@tcp(127.0.0.1:1)/"}, &out, &errb, nil)
	if code != 1 || !strings.Contains(errb.String(), "go install github.com/nats-io/nats-server/v2@latest") {
		t.Fatalf("exit %d, err %q", code, errb.String())
	}
}

// A sender whose connection the server closed stops (one error), instead
// of failing as fast as it can until the end; the others go on.
func TestDriveStopsGoneSender(t *testing.T) {
	for _, rate := range []float64{0, 1000} {
		o := tiny()
		o.Messages, o.Rate = 50, rate
		r := newRunner(o, io.Discard, io.Discard)
		tl := newTally(2, false)
		errs, _ := r.drive(t.Context(), tl, func(i, n int, cid string) func() bool {
			if i == 0 {
				return nil
			}
			return func() bool { return true }
		})
		if errs != 1 || tl.gone.Load() != 1 || tl.acked() != 50 {
			t.Fatalf("rate %v: %d errors, %d gone, %d acked; want 1, 1, 50", rate, errs, tl.gone.Load(), tl.acked())
		}
	}
}
