package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqim/mqim/internal/app"
)

// target is the server under test: an mqim or a bare broker this tool
// started as a child process, or a running mqim (pid 0).
type target struct {
	bare     bool
	httpURL  string // "" for the bare broker
	mqttAddr string
	key      string
	pprof    string // host:port of net/http/pprof, "" if none
	prefix   string // fresh id prefix for this run's users and groups
	pid      int    // 0: not ours (or a cluster), CPU and RSS unknown
	notes    []string

	p    *proc
	dir  string
	drop func() // removes the run's fresh database, if one was made

	// A cluster (--cluster) is a target whose nodes are mqim children on
	// one database; its own addresses and key are its first node's. nats
	// is the NATS server when this tool started it.
	nodes []*target
	nats  *proc
}

// node is where the i-th load client connects: round-robin over a
// cluster's nodes, the target itself otherwise.
func (t *target) node(i int) *target {
	if len(t.nodes) == 0 {
		return t
	}
	return t.nodes[i%len(t.nodes)]
}

// servers are the mqim (or bare) processes of the target: a cluster's
// nodes, or the target itself.
func (t *target) servers() []*target {
	if len(t.nodes) == 0 {
		return []*target{t}
	}
	return t.nodes
}

func (t *target) describe() string {
	what := "mqim"
	if t.bare {
		what = "bare Mochi"
	}
	if len(t.nodes) > 0 {
		var pids []string
		for _, n := range t.nodes {
			pids = append(pids, strconv.Itoa(n.pid))
		}
		return fmt.Sprintf("a cluster of %d mqim nodes (child pids %s) on NATS %s", len(t.nodes), strings.Join(pids, ", "), t.natsURL())
	}
	if t.pid == 0 {
		return fmt.Sprintf("running mqim at %s, %s", t.httpURL, t.mqttAddr)
	}
	return fmt.Sprintf("%s (child pid %d) at mqtt %s", what, t.pid, t.mqttAddr)
}

// liftedLimits are the settings a load run would hit, and what the child
// server gets instead.
var liftedLimits = []struct{ env, value string }{
	{"MQIM_LIMITS_SEND_RATE", "0"}, {"MQIM_LIMITS_SEND_BURST", "0"},
	{"MQIM_LIMITS_TYPING_RATE", "0"}, {"MQIM_LIMITS_TYPING_BURST", "0"},
	{"MQIM_LIMITS_GROUPS_PER_HOUR", "0"}, {"MQIM_LIMITS_GROUP_BURST", "0"},
	{"MQIM_LIMITS_LOGIN_FAILURES_PER_MINUTE", "0"}, {"MQIM_LIMITS_LOGIN_FAILURE_BURST", "0"},
	{"MQIM_LIMITS_ADDR_FAILURES_PER_MINUTE", "0"}, {"MQIM_LIMITS_ADDR_FAILURE_BURST", "0"},
	{"MQIM_MQTT_MAX_DEVICES_PER_USER", "1000000"}, {"MQIM_MQTT_MAX_SESSIONS_PER_USER", "1000000"},
	{"MQIM_CHAT_MAX_GROUP_MEMBERS", "1000000"},
}

// target starts (or names) the server for one scenario run.
func (r *runner) target(ctx context.Context, scenario, kind string) (*target, error) {
	prefix := "b" + randomHex(3)
	if kind == "mqim" && r.o.TargetHTTP != "" {
		t := &target{httpURL: strings.TrimSuffix(r.o.TargetHTTP, "/"), mqttAddr: strings.TrimPrefix(r.o.TargetMQTT, "tcp://"),
			key: r.o.Key, pprof: r.o.TargetProf, prefix: prefix}
		t.notes = append(t.notes, "running server: its CPU and RSS are not measured (not our child); its rate limits apply")
		return t, nil
	}
	if kind == "cluster" {
		return r.cluster(ctx, scenario, prefix)
	}
	var co childOpts
	if kind == "single" {
		// The cluster's single-node twin: the same settings but NATS.
		co.key, co.env = "bench-"+randomHex(16), []string{"MQIM_AUTH_JWT_SECRET=" + randomHex(32)}
	}
	return retryPorts(func() (*target, error) { return r.child(ctx, scenario, kind, prefix, co) })
}

// retryPorts retries start twice when the child exited before listening:
// a port chosen free may be taken by another process before the child
// binds it, and then a fresh set of ports is tried.
func retryPorts[T any](start func() (T, error)) (T, error) {
	var t T
	var err error
	for range 3 {
		if t, err = start(); !errors.Is(err, errNotListening) {
			return t, err
		}
	}
	return t, err
}

// childOpts are what a cluster node's child has in common with the others.
type childOpts struct {
	dsn string   // the shared database; "" makes a fresh one (with --mysql-dsn)
	key string   // the service key; "" makes a random one
	env []string // more settings (MQIM_...=...)
}

// child starts this binary as the server (kind "mqim", or a node or
// single node of a cluster comparison) or bare broker ("bare") under test.
func (r *runner) child(ctx context.Context, scenario, kind, prefix string, co childOpts) (*target, error) {
	dir, err := os.MkdirTemp("", "mqim-bench-*")
	if err != nil {
		return nil, err
	}
	t := &target{bare: kind == "bare", dir: dir, prefix: prefix}
	mode := "mqim"
	if t.bare {
		mode = "bare"
	}
	env := []string{childEnv + "=" + mode}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MQIM_") {
			env = append(env, kv)
		}
	}
	mqttAddr, err := freeAddr()
	if err != nil {
		return nil, t.fail(err)
	}
	t.mqttAddr = mqttAddr
	if t.bare {
		env = append(env, "MQIM_BENCH_ADDR="+mqttAddr)
		t.notes = append(t.notes, "bare Mochi: AllowHook only, TCP listener, default capabilities")
	} else {
		httpAddr, err := freeAddr()
		if err != nil {
			return nil, t.fail(err)
		}
		t.httpURL = "http://" + httpAddr
		t.key = co.key
		if t.key == "" {
			t.key = "bench-" + randomHex(16)
		}
		env = append(env, "MQIM_DATA_DIR="+dir, "MQIM_HTTP_ADDR="+httpAddr, "MQIM_MQTT_ADDR="+mqttAddr,
			"MQIM_MQTT_WS_ADDR=", "MQIM_AUTH_SERVICE_KEY="+t.key, "MQIM_LOG_LEVEL=warn")
		if co.dsn != "" {
			env = append(env, "MQIM_STORE_DRIVER=mysql", "MQIM_STORE_DSN="+co.dsn)
		} else if r.o.Store == "mysql" {
			dsn, drop, err := freshDatabase(ctx, r.o.MySQLDSN)
			if err != nil {
				return nil, t.fail(err)
			}
			t.drop = drop
			env = append(env, "MQIM_STORE_DRIVER=mysql", "MQIM_STORE_DSN="+dsn)
		}
		if r.o.CPUProfile != "" {
			if t.pprof, err = freeAddr(); err != nil {
				return nil, t.fail(err)
			}
			env = append(env, "MQIM_DEBUG_PPROF_ADDR="+t.pprof)
		}
		if scenario == "replay" && r.o.k() > 10000 {
			env = append(env, fmt.Sprintf("MQIM_MQTT_REPLAY_MAX=%d", r.o.k()))
			t.notes = append(t.notes, fmt.Sprintf("mqtt.replay_max raised from 10000 to K=%d", r.o.k()))
		}
		for _, l := range liftedLimits {
			env = append(env, l.env+"="+l.value)
		}
		env = append(env, co.env...)
		t.notes = append(t.notes, fmt.Sprintf("mqim child on %s, log level warn; lifted for the load: every limits.* rate "+
			"and burst 0 (off), mqtt.max_devices_per_user, mqtt.max_sessions_per_user and chat.max_group_members 1000000", r.o.Store))
	}
	if err := t.start(ctx, env, r.stderr); err != nil {
		return nil, t.fail(err)
	}
	return t, nil
}

// start execs this binary in its child mode and waits for its "listening"
// line on stdout.
func (t *target) start(ctx context.Context, env []string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "bench")
	cmd.Env = env
	cmd.Stderr = stderr
	if t.p, err = startProc(ctx, cmd, (*exec.Cmd).StdoutPipe, "listening"); err != nil {
		return err
	}
	t.pid = t.p.pid
	return nil
}

// proc is a child process this tool started.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan error // its exit
}

// startProc starts cmd, which dies with this process whatever happens to
// it, and waits (a minute at most) for a line containing ready on the
// stream pipe returns (cmd's stdout or stderr pipe; the rest of it is
// read and dropped). A child that exits first gives errNotListening, with
// its last lines.
func startProc(ctx context.Context, cmd *exec.Cmd, pipe func(*exec.Cmd) (io.ReadCloser, error), ready string) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := pipe(cmd)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan error, 1)}
	said := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var last []string
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), ready) {
				ok = true
				said <- nil
			}
			if !ok {
				last = append(last[max(0, len(last)-4):], sc.Text())
			}
		}
		if !ok {
			said <- fmt.Errorf("%w: %s", errNotListening, strings.Join(last, " | "))
		}
		p.done <- cmd.Wait()
	}()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case err = <-said:
	case <-timer.C:
		err = fmt.Errorf("%s did not get ready within a minute", cmd.Path)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL after 20 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (t *target) fail(err error) error {
	t.close()
	return err
}

// close stops the child (a cluster's nodes, then its NATS server) and
// removes its data folder and fresh database.
func (t *target) close() {
	var wg sync.WaitGroup
	for _, n := range t.nodes {
		wg.Go(n.close)
	}
	wg.Wait()
	if t.p != nil {
		t.p.stop()
	}
	if t.nats != nil {
		t.nats.stop()
	}
	if t.dir != "" {
		os.RemoveAll(t.dir)
	}
	if t.drop != nil {
		t.drop()
	}
}

var errNotListening = errors.New("the child exited before listening")

// freeAddr is a loopback address with a port free at the time of asking.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runChild is the hidden mode of a child process: "mqim" runs `mqim
// serve` (configured by the MQIM_ variables its parent set), "bare" a bare
// Mochi broker on MQIM_BENCH_ADDR.
func runChild(ctx context.Context, mode string, stdout, stderr io.Writer, environ []string) int {
	raiseNoFile(stderr)
	switch mode {
	case "mqim":
		return app.MainContext(ctx, []string{"serve"}, stdout, stderr, environ)
	case "bare":
		if err := serveBare(ctx, lookupEnv(environ, "MQIM_BENCH_ADDR"), stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "mqim bench: bare broker:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "mqim bench: unknown child mode %q\n", mode)
	return 2
}

// serveBare runs a Mochi broker with nothing but the AllowHook, its
// default capabilities and a TCP listener on addr, until ctx is done. It
// logs errors only: Mochi warns about every keepalive-0 client and every
// closed connection, which would cost the idle-connections run more than
// the connections themselves.
func serveBare(ctx context.Context, addr string, stdout, stderr io.Writer) error {
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return err
	}
	if err := s.Serve(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bare mochi listening: mqtt=%s\n", addr)
	<-ctx.Done()
	return s.Close()
}

// noFileLimit is the open-files limit after raiseNoFile.
func noFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024
	}
	return l.Cur
}

// raiseNoFile raises the soft open-files limit to the hard one (20,000
// idle connections need 20,000 descriptors on each side). Raising the hard
// limit needs CAP_SYS_RESOURCE; connections says so when it caps N.
func raiseNoFile(stderr io.Writer) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			fmt.Fprintln(stderr, "mqim bench: raising the open-files limit:", err)
		}
	}
}

// clkTck is USER_HZ, the unit of utime and stime in /proc (100 on every
// Linux architecture Go supports).
const clkTck = 100

// cpuSeconds is the process's user+system CPU time from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3, utime 14, stime 15 (1-based).
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat")
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc stat")
	}
	return (u + st) / clkTck, nil
}

// rssBytes is VmRSS from /proc/<pid>/status.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// sampler records a process's peak RSS every 50 ms until stopped.
type sampler struct {
	pid  int
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	peak int64
}

func startSampler(pid int) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{})}
	if pid == 0 {
		return s
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	if n, err := rssBytes(s.pid); err == nil {
		s.mu.Lock()
		s.peak = max(s.peak, n)
		s.mu.Unlock()
	}
}

// end stops sampling and returns the peak.
func (s *sampler) end() int64 {
	if s.pid == 0 {
		return 0
	}
	close(s.stop)
	s.wg.Wait()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// scrape reads the samples without labels from /metrics, with the
// service key.
func (t *target) scrape(ctx context.Context) (map[string]float64, error) {
	if t.httpURL == "" {
		return nil, errors.New("no /metrics")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", t.httpURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics %s: %w", name, err)
		}
		out[name] = v
	}
	return out, sc.Err()
}

// counters sums the /metrics samples of the target's servers (a cluster's
// nodes): a sample absent on one of them is left out. It fails without
// mqim_commits_total or mqim_messages_stored_total.
func (t *target) counters(ctx context.Context) (map[string]float64, error) {
	sum := map[string]float64{}
	seen := map[string]int{}
	srv := t.servers()
	for _, n := range srv {
		m, err := n.scrape(ctx)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			sum[k] += v
			seen[k]++
		}
	}
	for k, c := range seen {
		if c < len(srv) {
			delete(sum, k)
		}
	}
	for _, k := range []string{"mqim_commits_total", "mqim_messages_stored_total"} {
		if _, ok := sum[k]; !ok {
			return nil, fmt.Errorf("/metrics lacks %s", k)
		}
	}
	return sum, nil
}

// meter measures what a load phase cost the server (all the nodes of a
// cluster, and the NATS server it started): CPU seconds, RSS (peak and at
// the end) and, on mqim, commits per stored message and a cluster's NATS
// messages per stored message.
type meter struct {
	t          *target
	self0      float64
	cpu0       []float64 // per server process
	nats0      float64
	counters0  map[string]float64
	metricsErr error
	s          []*sampler
	prof       chan error
}

// measure starts a meter (and, with --cpuprofile, a CPU profile lasting
// about the load's expected length; of a cluster's first node).
func (r *runner) measure(ctx context.Context, t *target, scenario string, expect time.Duration) *meter {
	m := &meter{t: t}
	m.self0, _ = cpuSeconds(os.Getpid())
	for _, n := range t.servers() {
		c, _ := cpuSeconds(n.pid)
		m.cpu0 = append(m.cpu0, c)
		m.s = append(m.s, startSampler(n.pid))
	}
	if t.nats != nil {
		m.nats0, _ = cpuSeconds(t.nats.pid)
	}
	if !t.bare {
		m.counters0, m.metricsErr = t.counters(ctx)
	}
	if r.o.CPUProfile != "" && !t.bare {
		file := r.o.CPUProfile
		if r.o.Scenario == "all" {
			file += "." + scenario
		}
		m.prof = make(chan error, 1)
		go func() { m.prof <- fetchProfile(ctx, t.pprof, expect, file) }()
	}
	return m
}

// done adds the server's costs to rep: n is how many of what (messages,
// deliveries, connections) the load carried, for the CPU per 1000. It also
// adds the load generator's own CPU seconds, to tell when the tool, not
// the server, is what limits a run.
func (m *meter) done(ctx context.Context, r *runner, rep *report, n int64, what string) {
	var peak int64
	for _, s := range m.s {
		peak += s.end()
	}
	if self1, err := cpuSeconds(os.Getpid()); err == nil {
		rep.add("load generator CPU (this tool)", self1-m.self0, "s", false)
	}
	if srv := m.t.servers(); srv[0].pid != 0 {
		m.cpu(r, rep, srv, n, what)
		var rss int64
		var err error
		for _, s := range srv {
			var b int64
			if b, err = rssBytes(s.pid); err != nil {
				break
			}
			rss += b
		}
		if err == nil {
			rep.add("server RSS peak", float64(peak)/(1<<20), "MB", false)
			rep.add("server RSS at end", float64(rss)/(1<<20), "MB", false)
			if len(srv) > 1 {
				rep.notes = append(rep.notes, "server RSS: the sum over the nodes (of peaks sampled apart)")
			}
		}
	}
	if !m.t.bare {
		m.metrics(ctx, rep)
	}
	if m.prof != nil {
		if err := <-m.prof; err != nil {
			rep.notes = append(rep.notes, "cpu profile: "+err.Error())
		} else {
			rep.notes = append(rep.notes, "cpu profile of the server written")
		}
	}
}

// cpu adds the CPU seconds of the servers srv (summed, and per node in a
// cluster) and of the NATS server this tool started.
func (m *meter) cpu(r *runner, rep *report, srv []*target, n int64, what string) {
	per := make([]float64, len(srv))
	var sum float64
	for i, s := range srv {
		c1, err := cpuSeconds(s.pid)
		if err != nil {
			return
		}
		per[i] = c1 - m.cpu0[i]
		sum += per[i]
	}
	rep.add("server CPU", sum, "s", false)
	if n > 0 {
		rep.add("server CPU per 1000 "+what, sum*1000/float64(n), "s", true)
	}
	if len(m.t.nodes) > 0 {
		for i, c := range per {
			rep.add(fmt.Sprintf("server CPU node %d", i+1), c, "s", false)
		}
	}
	all := sum
	if m.t.nats != nil {
		if c1, err := cpuSeconds(m.t.nats.pid); err == nil {
			rep.add("NATS server CPU", c1-m.nats0, "s", false)
			all += c1 - m.nats0
		}
	}
	// In a cluster comparison both columns get the whole cost (one node
	// has no NATS to add).
	if r.o.Cluster > 0 && n > 0 {
		rep.add("server+NATS CPU per 1000 "+what, all*1000/float64(n), "s", true)
	}
}

// metrics adds what the servers' /metrics counted during the load:
// commits per stored message, a cluster's NATS messages per stored
// message, and the commits that lost a seq race to another node (when
// the server counts them).
func (m *meter) metrics(ctx context.Context, rep *report) {
	c1, err := m.t.counters(ctx)
	if err != nil || m.metricsErr != nil {
		rep.notes = append(rep.notes, fmt.Sprintf("commits per msg unknown: %v", errors.Join(err, m.metricsErr)))
		return
	}
	delta := func(name string) (float64, bool) {
		a, ok0 := m.counters0[name]
		b, ok1 := c1[name]
		return b - a, ok0 && ok1
	}
	stored, _ := delta("mqim_messages_stored_total")
	if commits, _ := delta("mqim_commits_total"); stored > 0 {
		rep.add("commits per msg", commits/stored, "x", false)
	}
	if len(m.t.nodes) > 0 && stored > 0 {
		if v, ok := delta("mqim_cluster_published_total"); ok {
			rep.add("cluster published per msg (NATS, all nodes)", v/stored, "x", false)
		}
		if v, ok := delta("mqim_cluster_received_total"); ok {
			rep.add("cluster received per msg (NATS, all nodes)", v/stored, "x", false)
		}
	}
	if v, ok := delta("mqim_commit_conflicts_total"); ok {
		rep.add("seq conflicts (commits retried)", v, "", false)
	}
}

// fetchProfile asks the server's pprof listener for a CPU profile of d
// (whole seconds, at least 1) and writes it to file.
func fetchProfile(ctx context.Context, addr string, d time.Duration, file string) error {
	if addr == "" {
		return errors.New("no pprof address (the server needs debug.pprof_addr; --target-pprof names it)")
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
