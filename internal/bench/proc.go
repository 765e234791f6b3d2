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
	pid      int    // 0: not ours, CPU and RSS unknown
	notes    []string

	cmd  *exec.Cmd
	dir  string
	done chan error // the child's exit
	drop func()     // removes the run's fresh database, if one was made
}

func (t *target) describe() string {
	what := "mqim"
	if t.bare {
		what = "bare Mochi"
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
	// A port chosen free may be taken by another process before the child
	// binds it: then the child exits and a fresh set of ports is tried.
	var err error
	for range 3 {
		var t *target
		if t, err = r.child(ctx, scenario, kind, prefix); !errors.Is(err, errNotListening) {
			return t, err
		}
	}
	return nil, err
}

// child starts this binary as the server (kind "mqim") or bare broker
// ("bare") under test.
func (r *runner) child(ctx context.Context, scenario, kind, prefix string) (*target, error) {
	dir, err := os.MkdirTemp("", "mqim-bench-*")
	if err != nil {
		return nil, err
	}
	t := &target{bare: kind == "bare", dir: dir, prefix: prefix}
	env := []string{childEnv + "=" + kind}
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
		t.key = "bench-" + randomHex(16)
		env = append(env, "MQIM_DATA_DIR="+dir, "MQIM_HTTP_ADDR="+httpAddr, "MQIM_MQTT_ADDR="+mqttAddr,
			"MQIM_MQTT_WS_ADDR=", "MQIM_AUTH_SERVICE_KEY="+t.key, "MQIM_LOG_LEVEL=warn")
		if r.o.Store == "mysql" {
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
	t.cmd = exec.Command(exe, "bench")
	t.cmd.Env = env
	t.cmd.Stderr = stderr
	// The child dies with this process, whatever happens to it.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := t.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := t.cmd.Start(); err != nil {
		return err
	}
	t.pid = t.cmd.Process.Pid
	t.done = make(chan error, 1)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), "listening") {
				said = true
				ready <- nil
			}
		}
		if !said {
			ready <- errNotListening
		}
		t.done <- t.cmd.Wait()
	}()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case err := <-ready:
		return err
	case <-timer.C:
		return errors.New("the child did not listen within a minute")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *target) fail(err error) error {
	t.close()
	return err
}

// close stops the child (SIGTERM, then SIGKILL after 20 s) and removes
// its data folder.
func (t *target) close() {
	if t.cmd != nil && t.cmd.Process != nil && t.done != nil {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(20 * time.Second)
		select {
		case <-t.done:
		case <-timer.C:
			_ = t.cmd.Process.Kill()
			<-t.done
		}
		timer.Stop()
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

// counters reads mqim_commits_total and mqim_messages_stored_total from
// /metrics with the service key.
func (t *target) counters(ctx context.Context) (commits, stored float64, err error) {
	if t.httpURL == "" {
		return 0, 0, errors.New("no /metrics")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", t.httpURL+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "mqim_commits_total":
			commits, err = strconv.ParseFloat(val, 64)
			found++
		case "mqim_messages_stored_total":
			stored, err = strconv.ParseFloat(val, 64)
			found++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if found < 2 {
		return 0, 0, errors.New("/metrics lacks mqim_commits_total or mqim_messages_stored_total")
	}
	return commits, stored, sc.Err()
}

// meter measures what a load phase cost the server: CPU seconds, RSS
// (peak and at the end) and, on mqim, commits per stored message.
type meter struct {
	t                *target
	cpu0, self0      float64
	commits0, stored float64
	metricsErr       error
	s                *sampler
	prof             chan error
}

// measure starts a meter (and, with --cpuprofile, a CPU profile lasting
// about the load's expected length).
func (r *runner) measure(ctx context.Context, t *target, scenario string, expect time.Duration) *meter {
	m := &meter{t: t}
	m.self0, _ = cpuSeconds(os.Getpid())
	if t.pid != 0 {
		m.cpu0, _ = cpuSeconds(t.pid)
	}
	if !t.bare {
		m.commits0, m.stored, m.metricsErr = t.counters(ctx)
	}
	m.s = startSampler(t.pid)
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
	peak := m.s.end()
	if self1, err := cpuSeconds(os.Getpid()); err == nil {
		rep.add("load generator CPU (this tool)", self1-m.self0, "s", false)
	}
	if m.t.pid != 0 {
		cpu1, err := cpuSeconds(m.t.pid)
		if err == nil {
			rep.add("server CPU", cpu1-m.cpu0, "s", false)
			if n > 0 {
				rep.add("server CPU per 1000 "+what, (cpu1-m.cpu0)*1000/float64(n), "s", false)
			}
		}
		if rss, err := rssBytes(m.t.pid); err == nil {
			rep.add("server RSS peak", float64(peak)/(1<<20), "MB", false)
			rep.add("server RSS at end", float64(rss)/(1<<20), "MB", false)
		}
	}
	if !m.t.bare {
		c1, s1, err := m.t.counters(ctx)
		if err == nil && m.metricsErr == nil && s1 > m.stored {
			rep.add("commits per msg", (c1-m.commits0)/(s1-m.stored), "x", false)
		} else if err != nil || m.metricsErr != nil {
			rep.notes = append(rep.notes, fmt.Sprintf("commits per msg unknown: %v", errors.Join(err, m.metricsErr)))
		}
	}
	if m.prof != nil {
		if err := <-m.prof; err != nil {
			rep.notes = append(rep.notes, "cpu profile: "+err.Error())
		} else {
			rep.notes = append(rep.notes, "cpu profile of the server written")
		}
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
