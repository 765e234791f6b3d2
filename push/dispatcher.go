package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mqim/mqim/internal/queue"
	"github.com/mqim/mqim/internal/retry"
)

// MaxBatch is the most notifications the Dispatcher puts in one Send:
// gorush's default core.max_notification, above which it refuses the whole
// request with a 400.
const MaxBatch = 100

// Dispatcher defaults.
const (
	DefaultQueue        = 4096
	DefaultWorkers      = 4
	DefaultBatchMax     = 50
	DefaultMaxRetries   = 5
	DefaultBaseBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultPruneTimeout = 5 * time.Second
)

// DispatcherOptions configure a Dispatcher; zero values mean the defaults.
type DispatcherOptions struct {
	Queue    int // queue capacity, in notifications
	Workers  int // concurrent senders
	BatchMax int // notifications per Send, at most MaxBatch
	// MaxRetries is how many times a batch is sent again after a retryable
	// failure (so at most 1+MaxRetries sends). Negative: never retried.
	MaxRetries int
	// Retry waits are drawn uniformly from [0, min(MaxBackoff,
	// BaseBackoff·2^(retry-1))) ("full jitter").
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Prune removes a dead device token; it is called from a worker, once
	// per dead token reported, with a context bounded by PruneTimeout.
	Prune        func(ctx context.Context, platform, token string) error
	PruneTimeout time.Duration
	Log          *slog.Logger // required
	Metrics      *Metrics     // nil: counted in unregistered counters
}

// Dispatcher is a bounded queue of notifications drained by a fixed set of
// workers that batch them into Notifier.Send calls, retry retryable failures
// with backoff, and prune dead tokens. Enqueue never blocks.
//
// Failure handling:
//   - a refusal (*SendError with Retry false, i.e. a 4xx) is counted failed
//     at once, never resent;
//   - a retryable failure (5xx, network error, timeout, or an error that is
//     not a *SendError) is resent after a backoff, up to MaxRetries times,
//     then counted failed;
//   - a Partial failure (gorush's empty 500: its queue filled up part-way
//     through the request) is resent only if the batch holds one
//     notification, since nothing of it can have been queued. A larger batch
//     is NOT resent: gorush queued an unknown prefix of it, so a resend
//     would duplicate those pushes, and hammering a gateway whose queue is
//     full is unhelpful. Its notifications are counted failed and
//     "uncertain" (some were most likely delivered);
//   - dead tokens of an accepted batch are passed to Prune; tokens that
//     failed for any other reason never are.
//
// A worker waiting out a backoff holds its batch while the other workers
// go on; Close cuts such waits short.
type Dispatcher struct {
	n   Notifier
	o   DispatcherOptions
	m   *Metrics
	log *slog.Logger
	q   chan Notification

	mu     sync.RWMutex // guards closed against Enqueue's sends
	closed bool

	startOnce sync.Once
	closeOnce sync.Once
	closing   chan struct{}      // closed by Close: drain, then exit
	stop      context.Context    // cancelled when Close's ctx ends
	cancel    context.CancelFunc // cancels stop
	done      chan struct{}      // closed once every worker has exited
	wg        sync.WaitGroup

	warner retry.Warner
}

// NewDispatcher returns a stopped Dispatcher sending through n; Enqueue
// works at once (notifications wait in the queue until Start).
func NewDispatcher(n Notifier, o DispatcherOptions) *Dispatcher {
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.BatchMax <= 0 {
		o.BatchMax = DefaultBatchMax
	}
	o.BatchMax = min(o.BatchMax, MaxBatch)
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	o.MaxBackoff = max(o.MaxBackoff, o.BaseBackoff)
	if o.PruneTimeout <= 0 {
		o.PruneTimeout = DefaultPruneTimeout
	}
	d := &Dispatcher{
		n:       n,
		o:       o,
		m:       o.Metrics,
		log:     o.Log,
		q:       make(chan Notification, o.Queue),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	d.stop, d.cancel = context.WithCancel(context.Background())
	return d
}

// Metrics returns the dispatcher's metrics (possibly nil).
func (d *Dispatcher) Metrics() *Metrics { return d.m }

// Len returns the number of notifications waiting in the queue.
func (d *Dispatcher) Len() int { return len(d.q) }

// Enqueue queues n for sending and reports whether it was queued. It never
// blocks: when the queue is full or the dispatcher closed, n is dropped and
// counted. A notification with no tokens is ignored (false, not counted).
// n must not be modified afterwards.
func (d *Dispatcher) Enqueue(n Notification) bool {
	if len(n.Tokens) == 0 {
		return false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.m.dropped.add(1)
		return false
	}
	select {
	case d.q <- n:
		d.m.queued.add(1)
		return true
	default:
		d.m.dropped.add(1)
		d.warn("queue full: notification dropped", "capacity", cap(d.q))
		return false
	}
}

// Start starts the workers. Calls after the first, or after Close, do
// nothing.
func (d *Dispatcher) Start() {
	d.startOnce.Do(func() {
		d.wg.Add(d.o.Workers)
		for range d.o.Workers {
			go d.worker()
		}
		go func() {
			d.wg.Wait()
			close(d.done)
		}()
	})
}

// Close stops accepting notifications, lets the workers send what is
// queued until ctx ends, and returns once every worker has exited. Backoff
// waits are cut short: a batch waiting to be resent gets one immediate last
// attempt, and batches sent during the drain are not retried. When ctx ends
// first, sends and prunes in flight are cancelled, what is still queued is
// dropped (and counted), and Close returns ctx.Err().
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.closing)
		d.startOnce.Do(func() { // never started: nobody will drain
			d.m.dropped.add(d.drain())
			close(d.done)
		})
	})
	defer d.cancel()
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		d.cancel()
		<-d.done
		return ctx.Err()
	}
}

// drain empties the queue and returns how many notifications it held.
func (d *Dispatcher) drain() int {
	n := 0
	for {
		select {
		case <-d.q:
			n++
		default:
			return n
		}
	}
}

func (d *Dispatcher) worker() {
	defer d.wg.Done()
	batch := make([]Notification, 0, d.o.BatchMax)
	for {
		var first Notification
		select {
		case first = <-d.q:
		case <-d.closing:
			select {
			case first = <-d.q:
			default:
				return // closed and drained
			}
		}
		if d.stop.Err() != nil { // Close's deadline passed: abandon the rest
			d.m.dropped.add(1 + d.drain())
			return
		}
		// Take whatever else is already queued, without waiting.
		batch = queue.Drain(d.q, append(batch, first), d.o.BatchMax)
		d.deliver(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// errNoRetry: Close has begun, so a failed batch is not sent again.
var errNoRetry = errors.New("no retry during shutdown")

// deliver sends one batch, retrying as documented on Dispatcher.
func (d *Dispatcher) deliver(batch []Notification) {
	n := len(batch)
	final := false // Close interrupted a backoff: this attempt is the last
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d.m.retried.add(n)
		}
		res, err := d.send(batch)
		if err == nil {
			d.m.sent.add(n)
			d.result(res)
			return
		}
		if d.stop.Err() != nil {
			d.m.failed.add(n)
			d.warn("batch abandoned at shutdown", "notifications", n, "error", err)
			return
		}
		retry, partial, status := true, false, 0
		var se *SendError
		if errors.As(err, &se) {
			retry, partial, status = se.Retry, se.Partial, se.Status
		}
		switch {
		case !retry:
			d.m.failed.add(n)
			d.warn("batch refused", "notifications", n, "status", status, "error", err)
			return
		case partial && n > 1:
			d.m.failed.add(n)
			d.m.uncertain.add(n)
			d.warn("batch partly queued by the gateway before it failed; not resent to avoid duplicates",
				"notifications", n, "status", status, "error", err)
			return
		case final || attempt >= d.o.MaxRetries:
			d.m.failed.add(n)
			d.warn("batch failed", "notifications", n, "attempts", attempt+1, "status", status, "error", err)
			return
		}
		switch werr := d.wait(d.backoff(attempt + 1)); {
		case werr == nil:
		case errors.Is(werr, errNoRetry) || d.stop.Err() != nil:
			d.m.failed.add(n)
			d.warn("batch failed", "notifications", n, "attempts", attempt+1, "status", status, "error", err)
			return
		default: // Close began during the wait
			final = true
		}
	}
}

// send calls the Notifier, turning a panic into an error so that a faulty
// Notifier cannot take the process down.
func (d *Dispatcher) send(batch []Notification) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = Result{}, &SendError{Err: fmt.Errorf("notifier panic: %v", p)}
		}
	}()
	return d.n.Send(d.stop, batch)
}

var errInterrupted = errors.New("backoff interrupted by Close")

// wait waits for delay. It returns errNoRetry at once if Close has begun,
// and errInterrupted if Close begins during the wait.
func (d *Dispatcher) wait(delay time.Duration) error {
	select {
	case <-d.closing:
		return errNoRetry
	default:
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-d.closing:
		return errInterrupted
	case <-d.stop.Done():
		return errInterrupted
	}
}

// backoff returns the wait before the retry-th resend (1-based): full
// jitter over an exponentially growing, capped window.
func (d *Dispatcher) backoff(n int) time.Duration {
	return retry.Backoff(d.o.BaseBackoff, d.o.MaxBackoff, n)
}

// result handles an accepted batch: prune its dead tokens, count failures.
func (d *Dispatcher) result(res Result) {
	d.m.tokenFailed.add(res.Failed)
	if len(res.Dead) == 0 {
		return
	}
	if d.o.Prune == nil {
		d.log.Debug("push: dead tokens reported, no pruning configured", "tokens", len(res.Dead))
		return
	}
	seen := make(map[DeadToken]bool, len(res.Dead))
	for _, t := range res.Dead {
		key := DeadToken{Platform: t.Platform, Token: t.Token}
		if t.Token == "" || seen[key] {
			continue
		}
		seen[key] = true
		ctx, cancel := context.WithTimeout(d.stop, d.o.PruneTimeout)
		err := d.o.Prune(ctx, t.Platform, t.Token)
		cancel()
		if err != nil {
			d.log.Error("push: prune dead token", "platform", t.Platform, "reason", t.Reason, "token_sha256", fingerprint(t.Token), "error", err)
			continue
		}
		d.m.pruned.add(1)
		d.log.Info("push: pruned dead token", "platform", t.Platform, "reason", t.Reason, "token_sha256", fingerprint(t.Token))
	}
}

// fingerprint identifies a token in logs without revealing it.
func fingerprint(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:6])
}

// warn logs at most one warning per second, reporting how many were
// suppressed in between, so that an outage does not flood the log.
func (d *Dispatcher) warn(msg string, args ...any) {
	d.warner.Warn(d.log, "push: "+msg, args...)
}

// NotifierFunc adapts a function to the Notifier interface.
type NotifierFunc func(ctx context.Context, batch []Notification) (Result, error)

// Send calls f.
func (f NotifierFunc) Send(ctx context.Context, batch []Notification) (Result, error) {
	return f(ctx, batch)
}
