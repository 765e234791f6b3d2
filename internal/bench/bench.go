// Package bench is `mqim bench`: a load tool that drives mqim through its
// real doors (MQTT 3.1.1 with paho, raw MQTT for idle connections, the HTTP
// API) and reports throughput, publish-to-receipt latency, errors, lost
// messages and what the load cost the server.
//
// By default the tool starts the server under test itself, as a child
// process of the same binary (os.Executable re-executed with the hidden
// mode MQIM_BENCH_CHILD=mqim, which runs `mqim serve` with a generated
// configuration in a fresh temporary data folder, loopback ports chosen
// free, log level warn, and the per-user rate limits and caps a load run
// would hit lifted). Because the server is its own process, its CPU seconds
// (/proc/<pid>/stat utime+stime) and memory (/proc/<pid>/status VmRSS,
// sampled: peak and at the end) are the server's alone, not the load
// generator's, although both share the machine's cores. With --baseline
// the same MQTT traffic then runs against a bare Mochi broker
// (github.com/mochi-mqtt/server/v2 with only the AllowHook, a TCP listener,
// default capabilities), also a child process (MQIM_BENCH_CHILD=bare), and
// the tool prints mqim/bare ratios.
//
// With --cluster N (and --mysql-dsn) the server under test is a cluster:
// N mqim children on one fresh database, joined over a NATS server (a
// nats-server child process on a free loopback port, or --nats-url), the
// load clients spread round-robin over the nodes, the server's CPU and
// RSS summed over the nodes (and the NATS child's CPU apart), and the
// NATS messages per stored message read from the nodes' /metrics. With
// --compare-single the same scenario then runs against one node on the
// same MySQL server, without NATS, and the tool prints cluster/single
// ratios.
//
// With --target-http, --target-mqtt and --key it drives a running server
// instead; then the server's CPU and memory are unknown and only what
// /metrics offers is reported. In every mode commits per message come from
// the deltas of mqim_commits_total and mqim_messages_stored_total on
// /metrics, read with the service key.
//
// A message is lost when it was acknowledged (PUBACK, or HTTP 201) and a
// receiver that should have it did not get it exactly once, in seq order
// per conversation; the command exits 1 when any was lost.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqim/mqim/internal/app"
)

// Command is `mqim bench`, for app.Main.
func Command() app.Command {
	return app.Command{Name: "bench", Help: "load-test mqim (and a bare Mochi broker with --baseline) and print the numbers", Run: Main}
}

// childEnv names the hidden mode of a child process: "mqim" or "bare".
const childEnv = "MQIM_BENCH_CHILD"

// Options are the flags of `mqim bench`.
type Options struct {
	Scenario   string
	Baseline   bool
	Duration   time.Duration
	Messages   int // per sender (dm, group, http-send); K for catchup and replay
	Rate       float64
	Pairs      int
	Members    int
	Senders    int
	Conns      int
	DevPerUser int
	Clients    int
	Devices    int
	Store      string
	MySQLDSN   string
	TargetHTTP string
	TargetMQTT string
	Key        string
	TargetProf string
	CPUProfile string
	ToolProf   string
	JSON       bool
	Timeout    time.Duration
	// Cluster is the number of mqim nodes (0: one server, no NATS).
	Cluster       int
	NATSURL       string // the cluster's NATS; "" starts a nats-server
	CompareSingle bool   // also run against one node and print cluster/single
}

// scenarios lists the scenarios in the order `all` runs them.
var scenarios = []struct {
	name, help string
	run        func(ctx context.Context, r *runner, t *target) (*report, error)
	mqttOnly   bool // has a bare-broker twin
	cluster    bool // spreads its clients over a cluster's nodes
}{
	{"dm", "P sender/receiver pairs, QoS 1, 1:1 (--pairs, --rate, --duration | --messages)", runDM, true, true},
	{"group", "one group of M online members, S senders (--members, --senders, --rate)", runGroup, true, true},
	{"connections", "N idle authenticated raw MQTT 3.1.1 connections: connect rate, RSS per connection (--conns)", runConnections, true, false},
	{"http-send", "C concurrent HTTP clients POST /v1/messages to receivers on MQTT (--clients)", runHTTPSend, false, true},
	{"catchup", "a device pages in K missed messages over HTTP and over im/rpc (--messages, default 10000)", runCatchup, false, false},
	{"replay", "D persistent sessions miss K messages and reconnect (--devices, --messages, default 10000)", runReplay, false, false},
}

// Main runs `mqim bench [flags]` (args are those after "bench"), or the
// hidden child mode named by MQIM_BENCH_CHILD.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	if mode := lookupEnv(environ, childEnv); mode != "" {
		return runChild(ctx, mode, stdout, stderr, environ)
	}
	var o Options
	fs := flag.NewFlagSet("mqim bench", flag.ContinueOnError)
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	fs.StringVar(&o.Scenario, "scenario", "dm", "scenario: "+strings.Join(names, ", ")+", or all")
	fs.BoolVar(&o.Baseline, "baseline", false, "also run the MQTT scenarios (dm, group, connections) against a bare Mochi broker and print mqim/bare ratios")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "load time of dm, group and http-send (unless --messages is set)")
	fs.IntVar(&o.Messages, "messages", 0, "dm, group, http-send: messages per sender instead of --duration; catchup, replay: K missed messages (default 10000)")
	fs.Float64Var(&o.Rate, "rate", 0, "dm, group, http-send: offered messages/s over all senders (0: each sends when its previous one was acknowledged)")
	fs.IntVar(&o.Pairs, "pairs", 50, "dm: sender/receiver pairs")
	fs.IntVar(&o.Members, "members", 500, "group: online members (senders included)")
	fs.IntVar(&o.Senders, "senders", 5, "group: members that send")
	fs.IntVar(&o.Conns, "conns", 20000, "connections: idle connections (capped by the open-files limit; the tool says so)")
	fs.IntVar(&o.DevPerUser, "devices-per-user", 1, "connections: connections per user (mqim creates N/this users)")
	fs.IntVar(&o.Clients, "clients", 16, "http-send: concurrent HTTP clients, each sending to its own MQTT receiver")
	fs.IntVar(&o.Devices, "devices", 4, "replay: persistent-session devices (one user each, all in one group)")
	fs.StringVar(&o.Store, "store", "sqlite", "store of the server the tool starts: sqlite (a temporary file) or mysql (needs --mysql-dsn)")
	fs.StringVar(&o.MySQLDSN, "mysql-dsn", "", "MySQL/MariaDB DSN for the server the tool starts (implies --store mysql); without a database name (user:pass@tcp(host:port)/) each run gets a fresh database, dropped afterwards; with one the server migrates and uses it")
	fs.StringVar(&o.TargetHTTP, "target-http", "", "drive a running server at this HTTP URL instead of starting one (with --target-mqtt and --key)")
	fs.StringVar(&o.TargetMQTT, "target-mqtt", "", "MQTT TCP address (host:port) of the running server")
	fs.StringVar(&o.Key, "key", "", "service key of the running server (also read from $MQIM_SERVICE_KEY)")
	fs.StringVar(&o.TargetProf, "target-pprof", "", "debug.pprof_addr (host:port) of the running server, for --cpuprofile")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the server under test, taken during the load, to this file (with all: FILE.SCENARIO)")
	fs.StringVar(&o.ToolProf, "tool-cpuprofile", "", "write a CPU profile of this tool (the load generator) over the whole run to this file")
	fs.BoolVar(&o.JSON, "json", false, "also print the results as JSON lines")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up on one scenario's run after this long")
	fs.IntVar(&o.Cluster, "cluster", 0, "run dm, group and http-send against a cluster of N (at least 2) mqim nodes on one fresh database of --mysql-dsn, joined over NATS")
	fs.StringVar(&o.NATSURL, "nats-url", "", "--cluster: the NATS server the nodes use (default: start nats-server, from $PATH or $HOME/go/bin, on a free loopback port)")
	fs.BoolVar(&o.CompareSingle, "compare-single", false, "--cluster: also run each scenario against one node on the same MySQL server, without NATS, and print cluster/single ratios")
	head := func(w io.Writer) {
		fmt.Fprintf(w, "usage: mqim bench [flags]\n\nscenarios:\n")
		for _, s := range scenarios {
			fmt.Fprintf(w, "  %-12s %s\n", s.name, s.help)
		}
		fmt.Fprintf(w, "\nflags:\n")
	}
	if code, ok := app.ParseFlags(fs, args, stdout, stderr, head); !ok {
		return code
	}
	if o.Key == "" {
		o.Key = lookupEnv(environ, "MQIM_SERVICE_KEY")
	}
	if o.MySQLDSN != "" {
		o.Store = "mysql"
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(stderr, "mqim bench:", err)
		return 2
	}
	lost, err := Run(ctx, o, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "mqim bench:", err)
		return 1
	}
	if lost > 0 {
		fmt.Fprintf(stderr, "mqim bench: %d messages lost\n", lost)
		return 1
	}
	return 0
}

func (o Options) check() error {
	switch {
	case o.Store != "sqlite" && o.Store != "mysql":
		return fmt.Errorf("--store %q is not sqlite or mysql", o.Store)
	case o.Store == "mysql" && o.MySQLDSN == "" && o.TargetHTTP == "":
		return errors.New("--store mysql needs --mysql-dsn")
	case (o.TargetHTTP == "") != (o.TargetMQTT == ""):
		return errors.New("--target-http and --target-mqtt go together")
	case o.TargetHTTP != "" && o.Key == "":
		return errors.New("--target-http needs --key (or $MQIM_SERVICE_KEY)")
	case o.TargetHTTP != "" && o.Baseline:
		// The bare broker is started here; a remote target's machine may differ.
		return errors.New("--baseline compares with a broker this tool starts: not with --target-http")
	case o.Cluster < 0 || o.Cluster == 1:
		return errors.New("--cluster needs at least 2 nodes")
	case o.Cluster > 0 && o.MySQLDSN == "":
		return errors.New("--cluster needs --mysql-dsn: the nodes share one MySQL store")
	case o.Cluster > 0 && o.TargetHTTP != "":
		return errors.New("--cluster starts its own nodes: not with --target-http")
	case o.Cluster > 0 && o.Baseline:
		return errors.New("--baseline compares one node with a bare broker; compare a cluster with one node with --compare-single")
	case o.Cluster == 0 && (o.CompareSingle || o.NATSURL != ""):
		return errors.New("--compare-single and --nats-url go with --cluster")
	case o.Pairs < 1 || o.Members < 2 || o.Senders < 1 || o.Senders > o.Members || o.Conns < 1 || o.Clients < 1 ||
		o.Devices < 1 || o.DevPerUser < 1 || o.Messages < 0 || o.Rate < 0 || o.Duration <= 0:
		return errors.New("sizes must be positive (and --senders at most --members)")
	}
	if o.Scenario == "all" {
		return nil
	}
	for _, s := range scenarios {
		if s.name == o.Scenario {
			if o.Cluster > 0 && !s.cluster {
				return fmt.Errorf("--cluster runs dm, group and http-send, not %s", s.name)
			}
			return nil
		}
	}
	return fmt.Errorf("unknown scenario %q", o.Scenario)
}

// Run runs the chosen scenarios, prints a table for each and returns the
// number of lost messages over all runs.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) (int64, error) {
	raiseNoFile(stderr)
	if o.ToolProf != "" {
		f, err := os.Create(o.ToolProf)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	if o.Cluster > 0 && o.NATSURL == "" {
		if _, err := natsServer(); err != nil {
			return 0, err
		}
	}
	r := newRunner(o, stdout, stderr)
	var lost int64
	for _, s := range scenarios {
		if o.Scenario != "all" && o.Scenario != s.name || o.Cluster > 0 && !s.cluster {
			continue
		}
		reps, err := r.scenario(ctx, s.name, s.run, s.mqttOnly)
		for _, rep := range reps {
			lost += rep.lost
		}
		if len(reps) > 0 {
			printTable(stdout, s.name, reps)
			if o.JSON {
				printJSON(stdout, s.name, reps)
			}
		}
		if err != nil {
			return lost, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return lost, nil
}

// scenario runs one scenario against mqim, then (with --baseline, for
// the MQTT scenarios) against a bare broker; with --cluster against a
// cluster, then (with --compare-single) against one node.
func (r *runner) scenario(ctx context.Context, name string, run func(context.Context, *runner, *target) (*report, error),
	hasBare bool) ([]*report, error) {
	var reps []*report
	kinds := []string{"mqim"}
	switch {
	case r.o.Cluster > 0 && r.o.CompareSingle:
		kinds = []string{"cluster", "single"}
	case r.o.Cluster > 0:
		kinds = []string{"cluster"}
	case r.o.Baseline && hasBare:
		kinds = append(kinds, "bare")
	}
	for _, kind := range kinds {
		rep, err := r.once(ctx, name, kind, run)
		if rep != nil {
			reps = append(reps, rep)
		}
		if err != nil {
			return reps, fmt.Errorf("%s: %w", kind, err)
		}
	}
	return reps, nil
}

func (r *runner) once(ctx context.Context, name, kind string, run func(context.Context, *runner, *target) (*report, error)) (*report, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	t, err := r.target(ctx, name, kind)
	if err != nil {
		return nil, err
	}
	defer t.close()
	fmt.Fprintf(r.stderr, "mqim bench: %s against %s\n", name, t.describe())
	rep, err := run(ctx, r, t)
	if rep != nil {
		rep.target = kind
		rep.notes = append(t.notes, rep.notes...)
		// The cost rows (the meter's) go after the scenario's own.
		slices.SortStableFunc(rep.metrics, func(a, b metric) int { return costRow(a) - costRow(b) })
	}
	return rep, err
}

func costRow(m metric) int {
	for _, p := range []string{"server", "NATS ", "load generator", "commits per msg", "cluster ", "seq conflicts"} {
		if strings.HasPrefix(m.Name, p) {
			return 1
		}
	}
	return 0
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// defaultK is K for catchup and replay when --messages is not set.
const defaultK = 10000

func (o Options) k() int {
	if o.Messages > 0 {
		return o.Messages
	}
	return defaultK
}

// runner carries the options and outputs through a run.
type runner struct {
	o              Options
	stdout, stderr io.Writer
}

// newRunner makes a runner. The children write to stderr too: a stderr
// that is not a file (which they would get as is) is locked.
func newRunner(o Options, stdout, stderr io.Writer) *runner {
	if _, ok := stderr.(*os.File); !ok {
		stderr = &lockedWriter{w: stderr}
	}
	return &runner{o: o, stdout: stdout, stderr: stderr}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logf reports progress on stderr.
func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "mqim bench: "+format+"\n", args...)
}
