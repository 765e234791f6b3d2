// Package webhook tells the product backend what happens in mqim: signed
// JSON events POSTed to the configured receivers (docs/webhooks.md), and
// the synchronous before_send moderation hook.
//
// Hub implements chat.Observer: Observe never blocks. Each receiver has its
// own bounded queue and workers, so a slow or dead receiver delays nothing
// else, other receivers included; what does not fit its queue is dropped
// and counted. Delivery is at least once: a failed request (network error,
// timeout, 5xx) is retried with full-jitter exponential backoff, with the
// same event id, a bounded number of times; a 4xx is never retried.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/retry"
)

// Header names of a signed request.
const (
	HeaderTimestamp = "X-Mqim-Timestamp"
	HeaderSignature = "X-Mqim-Signature"
)

// Sign returns the X-Mqim-Signature value of body signed at ts (Unix
// seconds): "sha256=" and the hex HMAC-SHA256 of "ts.body".
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a signature made by Sign (for receivers written in Go, and
// tests).
func Verify(secret []byte, ts string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sig))
}

// Envelope is what a receiver gets.
type Envelope struct {
	ID   string          `json:"id"`   // unique per event; a retry reuses it
	Type string          `json:"type"` // message.created, group.joined, ...
	TS   int64           `json:"ts"`   // Unix ms
	Data json.RawMessage `json:"data"`
}

// Options configure a Hub.
type Options struct {
	Receivers []config.Webhook
	Tuning    config.WebhookOptions
	Log       *slog.Logger // required
	Metrics   *Metrics     // nil: unregistered counters
	// Transport makes each receiver's client; nil: a clone of
	// http.DefaultTransport per receiver.
	Transport func() http.RoundTripper
}

// Hub sends webhook events to every receiver that wants them.
type Hub struct {
	rs  []*receiver
	log *slog.Logger
}

var _ chat.Observer = (*Hub)(nil)

// New returns a stopped Hub (events queue until Start).
func New(o Options) *Hub {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	t := o.Tuning
	t.Queue = max(t.Queue, 1)
	t.Workers = max(t.Workers, 1)
	t.MaxRetries = max(t.MaxRetries, 0)
	if t.Timeout <= 0 {
		t.Timeout = 10 * time.Second
	}
	if t.Backoff <= 0 {
		t.Backoff = time.Second
	}
	t.MaxBackoff = max(t.MaxBackoff, t.Backoff)
	h := &Hub{log: o.Log}
	for i, rc := range o.Receivers {
		var rt http.RoundTripper
		if o.Transport != nil {
			rt = o.Transport()
		} else {
			rt = http.DefaultTransport.(*http.Transport).Clone()
		}
		r := &receiver{
			name:    strconv.Itoa(i),
			url:     rc.URL,
			secret:  []byte(rc.Secret),
			filter:  rc.Events,
			t:       t,
			client:  &http.Client{Transport: rt, Timeout: t.Timeout},
			log:     o.Log,
			q:       make(chan []byte, t.Queue),
			closing: make(chan struct{}),
			done:    make(chan struct{}),
		}
		r.stop, r.cancel = context.WithCancel(context.Background())
		r.m = o.Metrics.receiver(r.name, host(rc.URL), r.q)
		h.rs = append(h.rs, r)
	}
	return h
}

// host is the URL's host, what the metrics may show of a receiver (never
// its path or query, which may hold secrets).
func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// Len is the number of receivers.
func (h *Hub) Len() int { return len(h.rs) }

// Wants tells whether some receiver takes events of type typ.
func (h *Hub) Wants(typ string) bool {
	for _, r := range h.rs {
		if r.wants(typ) {
			return true
		}
	}
	return false
}

// Stats returns receiver i's counters.
func (h *Hub) Stats(i int) Stats { return h.rs[i].m.stats() }

// Start runs every receiver's workers.
func (h *Hub) Start() {
	for _, r := range h.rs {
		r.start()
	}
}

// Close stops accepting events, lets the workers send what is queued
// (without further retries) until ctx ends, then cancels what is in flight
// and drops (and counts) the rest.
func (h *Hub) Close(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(h.rs))
	for i, r := range h.rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.close(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Observe implements chat.Observer: it wraps data in an envelope with a new
// id and queues it for each receiver that wants typ. It never blocks.
func (h *Hub) Observe(typ string, data []byte) {
	var body []byte
	for _, r := range h.rs {
		if !r.wants(typ) {
			continue
		}
		if body == nil {
			var err error
			body, err = json.Marshal(Envelope{ID: ulid.Make().String(), Type: typ, TS: time.Now().UnixMilli(), Data: data})
			if err != nil {
				h.log.Error("webhook: event not encodable", "type", typ, "error", err)
				return
			}
		}
		r.enqueue(body)
	}
}

// receiver is one webhook URL with its queue and workers.
type receiver struct {
	name   string // its index in the configuration: the metrics label
	url    string
	secret []byte
	filter []string
	t      config.WebhookOptions
	client *http.Client
	log    *slog.Logger
	m      *receiverMetrics
	warner retry.Warner

	mu     sync.RWMutex // guards closed against enqueue's sends
	closed bool
	q      chan []byte

	startOnce, closeOnce sync.Once
	closing              chan struct{}      // closed by close: drain, then exit
	stop                 context.Context    // cancelled when close's ctx ends
	cancel               context.CancelFunc // cancels stop
	done                 chan struct{}      // closed when every worker has exited
	wg                   sync.WaitGroup
}

func (r *receiver) wants(typ string) bool {
	if len(r.filter) == 0 {
		return true
	}
	for _, f := range r.filter {
		if f == "*" || f == typ || strings.HasSuffix(f, ".*") && strings.HasPrefix(typ, f[:len(f)-1]) {
			return true
		}
	}
	return false
}

func (r *receiver) enqueue(body []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.m.dropped.add(1)
		return
	}
	select {
	case r.q <- body:
		r.m.queued.add(1)
	default:
		r.m.dropped.add(1)
		r.warn("queue full: event dropped", "capacity", cap(r.q))
	}
}

func (r *receiver) warn(msg string, args ...any) {
	r.warner.Warn(r.log, "webhook: "+msg, append(args, "receiver", r.name)...)
}

func (r *receiver) start() {
	r.startOnce.Do(func() {
		r.wg.Add(r.t.Workers)
		for range r.t.Workers {
			go r.worker()
		}
		go func() {
			r.wg.Wait()
			close(r.done)
		}()
	})
}

func (r *receiver) close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.closing)
		r.startOnce.Do(func() { // never started: nobody drains
			r.m.dropped.add(r.drain())
			close(r.done)
		})
	})
	defer r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return ctx.Err()
	}
}

func (r *receiver) drain() int {
	n := 0
	for {
		select {
		case <-r.q:
			n++
		default:
			return n
		}
	}
}

func (r *receiver) worker() {
	defer r.wg.Done()
	for {
		var body []byte
		select {
		case body = <-r.q:
		case <-r.closing:
			select {
			case body = <-r.q:
			default:
				return
			}
		}
		if r.stop.Err() != nil {
			r.m.dropped.add(1 + r.drain())
			return
		}
		r.deliver(body)
	}
}

// deliver POSTs one event until it is accepted (2xx), refused (4xx, or
// any other non-retryable answer) or out of attempts.
func (r *receiver) deliver(body []byte) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.m.retried.add(1)
		}
		status, err := r.post(body)
		switch {
		case err == nil && status/100 == 2:
			r.m.delivered.add(1)
			return
		case err == nil && status < 500:
			r.m.failed.add(1)
			r.warn("event refused, not retried", "status", status)
			return
		}
		if attempt >= r.t.MaxRetries || r.stop.Err() != nil {
			r.m.failed.add(1)
			r.warn("event failed", "attempts", attempt+1, "status", status, "error", errText(err))
			return
		}
		if !r.wait(retry.Backoff(r.t.Backoff, r.t.MaxBackoff, attempt+1)) {
			// Closing: one last attempt, no more waits.
			status, err = r.post(body)
			if err == nil && status/100 == 2 {
				r.m.delivered.add(1)
			} else {
				r.m.failed.add(1)
				r.warn("event failed at shutdown", "attempts", attempt+2, "status", status, "error", errText(err))
			}
			return
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// wait waits for d; false if Close began before or during it.
func (r *receiver) wait(d time.Duration) bool {
	select {
	case <-r.closing:
		return false
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.closing:
		return false
	}
}

// post sends body once, freshly signed, and returns the status.
func (r *receiver) post(body []byte) (int, error) {
	return postSigned(r.stop, r.client, r.url, r.secret, body, func(resp *http.Response) error {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return nil
	})
}

// postSigned POSTs body signed with secret and hands a response to read.
func postSigned(ctx context.Context, c *http.Client, u string, secret, body []byte, read func(*http.Response) error) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mqim-webhook")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := c.Do(req)
	if err != nil {
		return 0, redact(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, read(resp)
}

// redact drops the URL (whose path or query may hold a secret) from a
// client error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
