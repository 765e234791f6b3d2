package push_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/push"
	"github.com/mqim/mqim/push/gorush"
	"github.com/mqim/mqim/push/gorush/gorushtest"
	"github.com/mqim/mqim/store"
)

type harness struct {
	fake   *gorushtest.Server
	client *gorush.Client
	d      *push.Dispatcher
	m      *push.Metrics
	logs   *testutil.LogBuffer
}

// newHarness wires a dispatcher to a fake gorush. Unset options get test
// values: millisecond backoffs, 2 workers.
func newHarness(t *testing.T, o push.DispatcherOptions, clientTimeout time.Duration) *harness {
	t.Helper()
	h := &harness{fake: gorushtest.Start(t), logs: &testutil.LogBuffer{}}
	if clientTimeout == 0 {
		clientTimeout = 5 * time.Second
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.client = gorush.New(h.fake.URL, clientTimeout, nil, log)
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.BaseBackoff == 0 {
		o.BaseBackoff = time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 4 * time.Millisecond
	}
	o.Log = log
	h.m = push.NewMetrics(prometheus.NewRegistry())
	o.Metrics = h.m
	h.d = push.NewDispatcher(h.client, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.d.Close(ctx)
		h.client.CloseIdleConnections()
	})
	return h
}

func (h *harness) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

type counts struct{ queued, sent, failed, retried, dropped, pruned, uncertain, tokenFailed uint64 }

func (h *harness) counts() counts {
	return counts{h.m.Queued(), h.m.Sent(), h.m.Failed(), h.m.Retried(), h.m.Dropped(), h.m.Pruned(), h.m.Uncertain(), h.m.TokenFailed()}
}

func note(i int, platform string) push.Notification {
	return push.Notification{
		UserID: fmt.Sprintf("u%d", i), Platform: platform, Tokens: []string{fmt.Sprintf("tok-%d", i)},
		Title: "t", Body: "b", Badge: i, ThreadID: "c1", Data: map[string]any{"conv": "c1", "seq": i},
	}
}

// start enqueues ns and starts the dispatcher.
func (h *harness) start(t *testing.T, ns ...push.Notification) {
	t.Helper()
	enqueueAll(t, h.d, ns...)
	h.d.Start()
}

// await polls the counts until done holds.
func (h *harness) await(t *testing.T, within time.Duration, done func(counts) bool) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		if c := h.counts(); !done(c) {
			return fmt.Errorf("counts %+v", c)
		}
		return nil
	})
}

// wantCounts fails unless the counts are exactly want.
func (h *harness) wantCounts(t *testing.T, want counts) {
	t.Helper()
	if c := h.counts(); c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
}

// notes returns note(0, platform) to note(n-1, platform).
func notes(n int, platform string) []push.Notification {
	ns := make([]push.Notification, n)
	for i := range ns {
		ns[i] = note(i, platform)
	}
	return ns
}

func enqueueAll(t *testing.T, d *push.Dispatcher, ns ...push.Notification) {
	t.Helper()
	for _, n := range ns {
		if !d.Enqueue(n) {
			t.Fatalf("Enqueue(%s) refused", n.UserID)
		}
	}
}

func TestBatchingQueued(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Queue: 1000, Workers: 3, BatchMax: 50}, 0)
	h.start(t, notes(450, store.PlatformAndroid)...)
	h.close(t)
	if got := h.fake.Requests(); got != 9 {
		t.Fatalf("%d requests, want 9", got)
	}
	toks := h.fake.Tokens()
	seen := map[string]bool{}
	for _, tok := range toks {
		seen[tok] = true
	}
	if len(toks) != 450 || len(seen) != 450 {
		t.Fatalf("received %d tokens (%d distinct), want 450", len(toks), len(seen))
	}
	h.wantCounts(t, counts{queued: 450, sent: 450})
}

func TestBatchingLive(t *testing.T) {
	const workers, batchMax = 4, 50
	h := newHarness(t, push.DispatcherOptions{Queue: 1000, Workers: workers, BatchMax: batchMax}, 0)
	h.fake.SetDelay(20 * time.Millisecond)
	h.d.Start()
	enqueueAll(t, h.d, notes(450, store.PlatformIOS)...)
	h.await(t, 10*time.Second, sent(450))
	// Each worker may take a small first batch before the rest is queued.
	if got, max := h.fake.Requests(), (450+batchMax-1)/batchMax+workers; got > max {
		t.Fatalf("%d requests, want <= %d", got, max)
	}
	if len(h.fake.Tokens()) != 450 {
		t.Fatalf("received %d tokens", len(h.fake.Tokens()))
	}
}

func TestBatchMaxClampedToGorushLimit(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Queue: 300, Workers: 1, BatchMax: 500}, 0)
	h.start(t, notes(250, store.PlatformAndroid)...)
	h.close(t)
	if h.fake.Requests() != 3 || h.m.Sent() != 250 || h.m.Failed() != 0 {
		t.Fatalf("requests %d counts %+v", h.fake.Requests(), h.counts())
	}
}

// exchange is one dispatcher run against a fake gorush with failures
// injected: notes are enqueued, the dispatcher is started and, once until
// holds (at once when nil), closed. The fake must then have seen requests
// requests and accepted received notifications, and the counts be want.
type exchange struct {
	name               string
	opts               push.DispatcherOptions
	inject             func(f *gorushtest.Server)
	notes              []push.Notification
	until              func(counts) bool
	requests, received int
	want               counts
	check              func(t *testing.T, h *harness) // further checks, or nil
}

func runExchanges(t *testing.T, cases []exchange) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts, 0)
			tc.inject(h.fake)
			h.start(t, tc.notes...)
			if tc.until != nil {
				h.await(t, 5*time.Second, tc.until)
			}
			h.close(t)
			if got, rec := h.fake.Requests(), len(h.fake.Received()); got != tc.requests || rec != tc.received {
				t.Fatalf("requests %d received %d, want %d and %d", got, rec, tc.requests, tc.received)
			}
			h.wantCounts(t, tc.want)
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

func sent(n uint64) func(counts) bool   { return func(c counts) bool { return c.sent == n } }
func failed(n uint64) func(counts) bool { return func(c counts) bool { return c.failed == n } }

func Test4xxNotRetried(t *testing.T) {
	cases := []exchange{{
		name:     "over limit",
		opts:     push.DispatcherOptions{Workers: 1, BatchMax: 10},
		inject:   func(f *gorushtest.Server) { f.SetMaxNotification(5) },
		notes:    notes(8, store.PlatformAndroid),
		requests: 1,
		want:     counts{queued: 8, failed: 8},
	}}
	for _, code := range []int{400, 401, 404, 413, 429} {
		cases = append(cases, exchange{
			name: fmt.Sprint(code),
			opts: push.DispatcherOptions{Workers: 1},
			inject: func(f *gorushtest.Server) {
				f.FailNext(1, code, `{"code":400,"message":"Missing notifications field."}`)
			},
			notes:    []push.Notification{note(1, store.PlatformIOS), note(2, store.PlatformIOS)},
			requests: 1,
			want:     counts{queued: 2, failed: 2},
		})
	}
	runExchanges(t, cases)
}

func Test5xxRetried(t *testing.T) {
	runExchanges(t, []exchange{{
		name: "then succeeds",
		opts: push.DispatcherOptions{Workers: 1, MaxRetries: 3},
		inject: func(f *gorushtest.Server) {
			f.FailNext(1, 502, "<html>bad gateway</html>")
			f.FailNext(1, 503, "")
		},
		notes:    []push.Notification{note(1, store.PlatformIOS), note(2, store.PlatformAndroid)},
		until:    sent(2),
		requests: 3, received: 2,
		want: counts{queued: 2, sent: 2, retried: 4},
	}, {
		name:     "until MaxRetries then failed",
		opts:     push.DispatcherOptions{Workers: 1, MaxRetries: 3},
		inject:   func(f *gorushtest.Server) { f.FailNext(100, 503, `{"code":503,"message":"unavailable"}`) },
		notes:    []push.Notification{note(1, store.PlatformIOS)},
		until:    failed(1),
		requests: 1 + 3,
		want:     counts{queued: 1, failed: 1, retried: 3},
	}})
	t.Run("backoff is observed", func(t *testing.T) {
		// With full jitter a single wait may be ~0, but 4 retries over
		// windows of 40, 80, 80, 80ms wait 140ms on average, and the
		// maximum wait bounds the total from above.
		h := newHarness(t, push.DispatcherOptions{Workers: 1, MaxRetries: 4, BaseBackoff: 40 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}, 0)
		h.fake.FailNext(100, 500, "x")
		enqueueAll(t, h.d, note(1, store.PlatformIOS))
		start := time.Now()
		h.d.Start()
		h.await(t, 5*time.Second, failed(1))
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("retries took %v, backoff cap is 80ms", el)
		}
		if h.fake.Requests() != 5 || h.m.Retried() != 4 {
			t.Fatalf("requests %d counts %+v", h.fake.Requests(), h.counts())
		}
	})
}

func TestEmpty500(t *testing.T) {
	runExchanges(t, []exchange{{
		name:     "multi-notification batch not resent",
		opts:     push.DispatcherOptions{Workers: 1, BatchMax: 10},
		inject:   func(f *gorushtest.Server) { f.QueueFullNext(1, 1) }, // gorush queues the first, then fails
		notes:    []push.Notification{note(1, store.PlatformIOS), note(2, store.PlatformIOS), note(3, store.PlatformAndroid)},
		requests: 1, received: 1, // no resend
		want: counts{queued: 3, failed: 3, uncertain: 3},
		check: func(t *testing.T, h *harness) {
			if r := h.fake.Received(); r[0].Tokens[0] != "tok-1" {
				t.Fatalf("received %+v", r)
			}
			if !strings.Contains(h.logs.String(), "partly queued") {
				t.Fatalf("no warning logged:\n%s", h.logs.String())
			}
		},
	}, {
		name:     "single notification resent",
		opts:     push.DispatcherOptions{Workers: 1, BatchMax: 10},
		inject:   func(f *gorushtest.Server) { f.QueueFullNext(1, 0) },
		notes:    []push.Notification{note(1, store.PlatformIOS)},
		until:    sent(1),
		requests: 2, received: 1, // exactly once
		want: counts{queued: 1, sent: 1, retried: 1},
	}, {
		name:     "500 with a body resent whole",
		opts:     push.DispatcherOptions{Workers: 1, BatchMax: 10},
		inject:   func(f *gorushtest.Server) { f.FailNext(1, 500, `{"code":500,"message":"oops"}`) },
		notes:    []push.Notification{note(1, store.PlatformIOS), note(2, store.PlatformIOS)},
		until:    sent(2),
		requests: 2, received: 2,
		want: counts{queued: 2, sent: 2, retried: 2},
	}})
}

func TestGorushDown(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Queue: 50, Workers: 2, BatchMax: 5, MaxRetries: 2}, 0)
	h.fake.Down()
	h.d.Start()
	var slowest time.Duration
	accepted := 0
	for i := range 200 {
		start := time.Now()
		if h.d.Enqueue(note(i, store.PlatformAndroid)) {
			accepted++
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 100*time.Millisecond {
		t.Fatalf("an Enqueue took %v", slowest)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if c := h.counts(); c.failed != uint64(accepted) {
			return fmt.Errorf("accepted %d, counts %+v", accepted, c)
		}
		return nil
	})
	c := h.counts()
	if c.sent != 0 || c.queued != uint64(accepted) || c.dropped != uint64(200-accepted) || c.pruned != 0 {
		t.Fatalf("counts %+v", c)
	}
	if c.retried == 0 || c.retried > 2*c.queued {
		t.Fatalf("retried %d for %d queued with MaxRetries 2", c.retried, c.queued)
	}
	if h.fake.Requests() != 0 {
		t.Fatalf("%d requests reached a down server", h.fake.Requests())
	}
	h.fake.Up()
	enqueueAll(t, h.d, note(1000, store.PlatformAndroid))
	h.await(t, 5*time.Second, sent(1))
	h.close(t)
}

func TestSlowGorushNeverBlocksEnqueue(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Queue: 100, Workers: 2, BatchMax: 10}, time.Minute)
	h.fake.SetDelay(time.Minute)
	h.d.Start()
	start := time.Now()
	accepted := 0
	for i := range 5000 {
		if h.d.Enqueue(note(i, store.PlatformIOS)) {
			accepted++
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("5000 Enqueue calls took %v", el)
	}
	c := h.counts()
	if c.dropped == 0 || c.queued+c.dropped != 5000 || c.queued != uint64(accepted) {
		t.Fatalf("counts %+v", c)
	}
	// Close gives up at its deadline: in-flight requests are cancelled and
	// what is queued is dropped; every notification is accounted for.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := h.d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Close took %v", el)
	}
	c = h.counts()
	if c.sent+c.failed+c.dropped != 5000 || c.sent != 0 {
		t.Fatalf("counts %+v do not add up to 5000", c)
	}
	if h.d.Len() != 0 {
		t.Fatalf("%d left in queue", h.d.Len())
	}
}

func TestFullQueueDropsAndNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		fake := gorushtest.New()
		defer fake.Close()
		client := gorush.New(fake.URL, 5*time.Second, nil, slog.New(slog.DiscardHandler))
		defer client.CloseIdleConnections()
		m := push.NewMetrics(nil)
		d := push.NewDispatcher(client, push.DispatcherOptions{Queue: 10, Workers: 8, BatchMax: 3, Metrics: m,
			BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
		accepted := 0
		for i := range 50 {
			if d.Enqueue(note(i, store.PlatformIOS)) {
				accepted++
			}
		}
		if accepted != 10 || m.Dropped() != 40 || m.Queued() != 10 {
			t.Fatalf("accepted %d queued %d dropped %d", accepted, m.Queued(), m.Dropped())
		}
		d.Start()
		fake.FailNext(2, 503, "") // some retries in flight too
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if m.Sent()+m.Failed() != 10 {
			t.Fatalf("sent %d failed %d", m.Sent(), m.Failed())
		}
		if d.Enqueue(note(99, store.PlatformIOS)) || m.Dropped() != 41 {
			t.Fatal("Enqueue after Close must be refused and counted")
		}
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before+2 {
			return fmt.Errorf("%d goroutines, %d before", n, before)
		}
		return nil
	})
}

func TestCloseBeforeStart(t *testing.T) {
	m := push.NewMetrics(nil)
	d := push.NewDispatcher(push.NotifierFunc(func(context.Context, []push.Notification) (push.Result, error) {
		t.Error("Send called")
		return push.Result{}, nil
	}), push.DispatcherOptions{Metrics: m})
	for i := range 3 {
		d.Enqueue(note(i, store.PlatformIOS))
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Start() // no-op after Close
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Queued() != 3 || m.Dropped() != 3 {
		t.Fatalf("queued %d dropped %d", m.Queued(), m.Dropped())
	}
}

func TestCloseInterruptsBackoff(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Workers: 1, BaseBackoff: time.Hour, MaxBackoff: time.Hour}, 0)
	h.fake.FailNext(1, 503, "")
	h.start(t, note(1, store.PlatformIOS))
	testutil.Eventually(t, 5*time.Second, func() error {
		if h.fake.Requests() != 1 {
			return errors.New("no request yet")
		}
		return nil
	})
	start := time.Now()
	h.close(t)
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Close took %v with an hour-long backoff", el)
	}
	// Close interrupts the wait and makes one last attempt, which the fake
	// accepts (if Close won the race against the worker entering its wait,
	// the batch is failed without the attempt).
	c := h.counts()
	if c.sent+c.failed != 1 || c.queued != 1 {
		t.Fatalf("counts %+v", c)
	}
	if c.sent == 1 && (h.fake.Requests() != 2 || c.retried != 1) {
		t.Fatalf("requests %d counts %+v", h.fake.Requests(), c)
	}
}

func TestDrainOnClose(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Queue: 500, Workers: 2, BatchMax: 7}, 0)
	h.fake.SetDelay(2 * time.Millisecond)
	h.d.Start()
	enqueueAll(t, h.d, notes(300, store.PlatformAndroid)...)
	h.close(t)
	h.wantCounts(t, counts{queued: 300, sent: 300})
	if len(h.fake.Tokens()) != 300 {
		t.Fatalf("received %d", len(h.fake.Tokens()))
	}
}

// pruner records Prune calls.
type pruner struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (p *pruner) prune(_ context.Context, platform, token string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, platform+"/"+token)
	return p.err
}

func (p *pruner) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]string(nil), p.calls...)
	sort.Strings(out)
	return out
}

func TestPrune(t *testing.T) {
	cases := []struct {
		name, platform, errText string
		prune                   bool
	}{
		{"Unregistered", store.PlatformIOS, "Unregistered", true},
		{"BadDeviceToken", store.PlatformIOS, "BadDeviceToken", true},
		{"DeviceTokenNotForTopic", store.PlatformIOS, "DeviceTokenNotForTopic", true},
		{"ExpiredToken", store.PlatformIOS, "ExpiredToken", true},
		{"FCM not found", store.PlatformAndroid, "Requested entity was not found.", true},
		{"DNS", store.PlatformIOS, "dial tcp: lookup api.push.apple.com: no such host", false},
		{"DNS full", store.PlatformIOS, `Post "https://api.push.apple.com/3/device/x": dial tcp: lookup api.push.apple.com: no such host`, false},
		{"timeout", store.PlatformIOS, `Post "https://api.push.apple.com/3/device/x": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, false},
		{"i/o timeout", store.PlatformAndroid, "dial tcp 142.250.0.95:443: i/o timeout", false},
		{"FCM auth", store.PlatformAndroid, "auth: cannot fetch token: Post \"https://oauth2.googleapis.com/token\": dial tcp: lookup oauth2.googleapis.com: no such host", false},
		{"APNs config", store.PlatformIOS, "TopicDisallowed", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &pruner{}
			h := newHarness(t, push.DispatcherOptions{Workers: 1, Prune: p.prune}, 0)
			const dead = "secret-token-0123456789abcdef"
			h.fake.FailToken(dead, tc.errText)
			n := note(1, tc.platform)
			n.Tokens = []string{"fine-token", dead}
			h.start(t, n)
			h.close(t)
			var want []string
			wantCounts := counts{queued: 1, sent: 1, tokenFailed: 1}
			if tc.prune {
				want = []string{tc.platform + "/" + dead}
				wantCounts = counts{queued: 1, sent: 1, pruned: 1}
			}
			if got := p.got(); !equal(got, want) {
				t.Fatalf("pruned %v, want %v", got, want)
			}
			if c := h.counts(); c != wantCounts {
				t.Fatalf("counts %+v, want %+v", c, wantCounts)
			}
			if strings.Contains(h.logs.String(), dead) {
				t.Fatalf("token logged:\n%s", h.logs.String())
			}
		})
	}
}

func TestPruneAll(t *testing.T) {
	p := &pruner{}
	h := newHarness(t, push.DispatcherOptions{Workers: 2, Prune: p.prune}, 0)
	h.fake.SetAndroidMaxRetry(1) // duplicate log entries: prune once
	var want []string
	var batch []push.Notification
	for i, tc := range []struct{ platform, errText string }{
		{store.PlatformIOS, "Unregistered"}, {store.PlatformIOS, "BadDeviceToken"}, {store.PlatformIOS, "DeviceTokenNotForTopic"},
		{store.PlatformIOS, "ExpiredToken"}, {store.PlatformAndroid, "Requested entity was not found."},
		{store.PlatformIOS, "dial tcp: lookup api.push.apple.com: no such host"}, {store.PlatformAndroid, "context deadline exceeded"},
	} {
		tok := fmt.Sprintf("tok-%s-%d", tc.platform, i)
		h.fake.FailToken(tok, tc.errText)
		if i < 5 {
			want = append(want, tc.platform+"/"+tok)
		}
		n := note(i, tc.platform)
		n.Tokens = []string{tok}
		batch = append(batch, n)
	}
	h.start(t, batch...)
	h.close(t)
	sort.Strings(want)
	if got := p.got(); !equal(got, want) {
		t.Fatalf("pruned %v, want %v", got, want)
	}
	h.wantCounts(t, counts{queued: 7, sent: 7, pruned: 5, tokenFailed: 2})
}

func TestPruneErrorNotCounted(t *testing.T) {
	p := &pruner{err: errors.New("db down")}
	h := newHarness(t, push.DispatcherOptions{Workers: 1, Prune: p.prune}, 0)
	h.fake.FailToken("tok-1", "Unregistered")
	h.start(t, note(1, store.PlatformIOS))
	h.close(t)
	if len(p.got()) != 1 || h.m.Pruned() != 0 {
		t.Fatalf("calls %v pruned %d", p.got(), h.m.Pruned())
	}
	if !strings.Contains(h.logs.String(), "db down") || strings.Contains(h.logs.String(), "tok-1") {
		t.Fatalf("logs:\n%s", h.logs.String())
	}
}

func TestNetworkFailureNeverPrunes(t *testing.T) {
	p := &pruner{}
	h := newHarness(t, push.DispatcherOptions{Workers: 1, MaxRetries: 1, Prune: p.prune}, 30*time.Millisecond)
	h.fake.FailToken("tok-1", "Unregistered") // would be dead, if gorush answered
	h.fake.SetDelay(time.Minute)              // it never does: client timeouts
	h.start(t, note(1, store.PlatformIOS))
	h.await(t, 5*time.Second, failed(1))
	if len(p.got()) != 0 || h.m.Pruned() != 0 || h.fake.Requests() != 2 {
		t.Fatalf("prune calls %v requests %d", p.got(), h.fake.Requests())
	}
}

func TestDisabledPlatformDroppedByGorush(t *testing.T) {
	h := newHarness(t, push.DispatcherOptions{Workers: 1}, 0)
	h.start(t, note(1, store.PlatformHuawei), note(2, store.PlatformHuawei))
	h.close(t)
	// The dispatcher cannot tell: gorush answered 200 (counts 0).
	if h.fake.Counts() != 0 || len(h.fake.Received()) != 0 || h.fake.Dropped() != 2 {
		t.Fatalf("counts %d received %d dropped %d", h.fake.Counts(), len(h.fake.Received()), h.fake.Dropped())
	}
	h.wantCounts(t, counts{queued: 2, sent: 2})
	if !strings.Contains(h.logs.String(), "counted fewer tokens") {
		t.Fatal("no warning about gorush dropping notifications")
	}
}

func TestNotifierPanicAndGenericErrors(t *testing.T) {
	m := push.NewMetrics(nil)
	var mu sync.Mutex
	calls := 0
	d := push.NewDispatcher(push.NotifierFunc(func(context.Context, []push.Notification) (push.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch calls {
		case 1:
			return push.Result{}, errors.New("some transport error") // retried
		case 2:
			return push.Result{}, nil
		default:
			panic("boom")
		}
	}), push.DispatcherOptions{Workers: 1, Metrics: m, BaseBackoff: time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	enqueueAll(t, d, note(1, store.PlatformIOS))
	d.Start()
	testutil.Eventually(t, 5*time.Second, func() error {
		if m.Sent() != 1 {
			return fmt.Errorf("sent %d", m.Sent())
		}
		return nil
	})
	enqueueAll(t, d, note(2, store.PlatformIOS))
	testutil.Eventually(t, 5*time.Second, func() error {
		if m.Failed() != 1 {
			return fmt.Errorf("failed %d", m.Failed())
		}
		return nil
	})
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Retried() != 1 {
		t.Fatalf("retried %d", m.Retried())
	}
}

func TestEnqueueIgnoresEmpty(t *testing.T) {
	m := push.NewMetrics(nil)
	d := push.NewDispatcher(push.NotifierFunc(func(context.Context, []push.Notification) (push.Result, error) {
		return push.Result{}, nil
	}), push.DispatcherOptions{Metrics: m})
	if d.Enqueue(push.Notification{Platform: store.PlatformIOS}) || m.Queued() != 0 || m.Dropped() != 0 {
		t.Fatal("empty notification queued or counted")
	}
	_ = d.Close(context.Background())
}

func TestNilMetrics(t *testing.T) {
	var m *push.Metrics
	if m.Queued()+m.Sent()+m.Failed()+m.Retried()+m.Dropped()+m.Pruned()+m.Uncertain()+m.TokenFailed() != 0 {
		t.Fatal("nil metrics not zero")
	}
	h := newHarness(t, push.DispatcherOptions{}, 0)
	d := push.NewDispatcher(h.client, push.DispatcherOptions{Queue: 1, Log: slog.New(slog.DiscardHandler)})
	d.Start()
	d.Enqueue(note(1, store.PlatformIOS))
	d.Enqueue(note(2, store.PlatformIOS))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := push.NewMetrics(reg)
	m2 := push.NewMetrics(reg) // same registry: shared, no panic
	d := push.NewDispatcher(push.NotifierFunc(func(context.Context, []push.Notification) (push.Result, error) {
		return push.Result{}, nil
	}), push.DispatcherOptions{Queue: 1, Metrics: m, Log: slog.New(slog.DiscardHandler)})
	d.Enqueue(note(1, store.PlatformIOS))
	d.Enqueue(note(2, store.PlatformIOS))
	_ = d.Close(context.Background())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
	}
	for _, name := range []string{"mqim_push_queued_total", "mqim_push_sent_total", "mqim_push_failed_total",
		"mqim_push_retried_total", "mqim_push_dropped_total", "mqim_push_pruned_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s not registered (have %v)", name, got)
		}
	}
	if got["mqim_push_queued_total"] != 1 || got["mqim_push_dropped_total"] != 2 || m.Dropped() != 2 || m2.Dropped() != 0 {
		t.Fatalf("values %v dropped %d", got, m.Dropped())
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNoRetryOnceClosing(t *testing.T) {
	// Batches sent during Close's drain get a single attempt.
	h := newHarness(t, push.DispatcherOptions{Workers: 1, BatchMax: 1}, 0)
	h.fake.FailNext(100, 503, "")
	h.start(t, note(1, store.PlatformIOS), note(2, store.PlatformIOS))
	h.close(t)
	c := h.counts()
	if c.failed != 2 || c.sent != 0 || c.retried > 1 || h.fake.Requests() > 3 {
		t.Fatalf("requests %d counts %+v", h.fake.Requests(), c)
	}
}
