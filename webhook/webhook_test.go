package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/webhook"
)

const secret = "receiver-secret-0123456789"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder is a receiver that checks every request's signature and
// records the envelopes; answer decides the status of the n-th request
// (from 1).
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	requests []webhook.Envelope
	badSig   int
	answer   func(n int) int
}

func newRecorder(t *testing.T, answer func(n int) int) *recorder {
	r := &recorder{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ts := req.Header.Get(webhook.HeaderTimestamp)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !webhook.Verify([]byte(secret), ts, body, req.Header.Get(webhook.HeaderSignature)) {
			r.badSig++
			w.WriteHeader(401)
			return
		}
		var e webhook.Envelope
		if err := json.Unmarshal(body, &e); err != nil {
			r.badSig++
			w.WriteHeader(400)
			return
		}
		r.requests = append(r.requests, e)
		status := 200
		if r.answer != nil {
			status = r.answer(len(r.requests))
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) got() []webhook.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Envelope(nil), r.requests...)
}

func tuning() config.WebhookOptions {
	return config.WebhookOptions{Queue: 100, Workers: 2, Timeout: 5 * time.Second, MaxRetries: 3,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func start(t *testing.T, o webhook.Options) *webhook.Hub {
	t.Helper()
	if o.Log == nil {
		o.Log = quiet
	}
	h := webhook.New(o)
	h.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = h.Close(ctx)
	})
	return h
}

// done waits until receiver i has finished with everything queued to it.
func done(t *testing.T, h *webhook.Hub, i int, queued uint64) webhook.Stats {
	t.Helper()
	var s webhook.Stats
	testutil.Eventually(t, 10*time.Second, func() error {
		s = h.Stats(i)
		if s.Queued < queued || s.Delivered+s.Failed < s.Queued {
			return fmt.Errorf("receiver %d: %+v", i, s)
		}
		return nil
	})
	return s
}

func TestSignedEnvelope(t *testing.T) {
	rec := newRecorder(t, nil)
	h := start(t, webhook.Options{Receivers: []config.Webhook{{URL: rec.URL, Secret: secret}}, Tuning: tuning()})
	before := time.Now().UnixMilli()
	h.Observe("message.created", []byte(`{"kind":"msg","id":"m1"}`))
	h.Observe("conversation.read", []byte(`{"kind":"read"}`))
	done(t, h, 0, 2)
	got := rec.got()
	if len(got) != 2 || rec.badSig != 0 {
		t.Fatalf("got %+v, bad signatures %d", got, rec.badSig)
	}
	byType := map[string]webhook.Envelope{}
	for _, e := range got {
		byType[e.Type] = e
	}
	e := byType["message.created"]
	if e.ID == "" || e.TS < before || string(e.Data) != `{"kind":"msg","id":"m1"}` {
		t.Fatalf("envelope %+v", e)
	}
	if e.ID == byType["conversation.read"].ID {
		t.Fatal("two events share an id")
	}
}

// A wrong secret does not verify: the receiver's check is real.
func TestSignatureChecked(t *testing.T) {
	sig := webhook.Sign([]byte(secret), "1700000000", []byte(`{}`))
	if !webhook.Verify([]byte(secret), "1700000000", []byte(`{}`), sig) ||
		webhook.Verify([]byte("other-secret"), "1700000000", []byte(`{}`), sig) ||
		webhook.Verify([]byte(secret), "1700000001", []byte(`{}`), sig) {
		t.Fatal("signature check is wrong")
	}
	rec := newRecorder(t, nil)
	h := start(t, webhook.Options{Receivers: []config.Webhook{{URL: rec.URL, Secret: "not-the-receiver-secret"}}, Tuning: tuning()})
	h.Observe("message.created", []byte(`{}`))
	if s := done(t, h, 0, 1); s.Failed != 1 || s.Retried != 0 {
		t.Fatalf("a 401 must fail without retry: %+v", s)
	}
}

func TestRetriedUntilAcceptedThenNotAgain(t *testing.T) {
	rec := newRecorder(t, func(n int) int {
		if n <= 2 {
			return 500
		}
		return 204
	})
	h := start(t, webhook.Options{Receivers: []config.Webhook{{URL: rec.URL, Secret: secret}}, Tuning: tuning()})
	h.Observe("message.created", []byte(`{"kind":"msg"}`))
	s := done(t, h, 0, 1)
	if s.Delivered != 1 || s.Retried != 2 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	_ = h.Close(context.Background())
	got := rec.got()
	if len(got) != 3 || got[0].ID != got[1].ID || got[1].ID != got[2].ID {
		t.Fatalf("want the same event 3 times (2 failures, 1 success), got %+v", got)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	rec := newRecorder(t, func(int) int { return 422 })
	h := start(t, webhook.Options{Receivers: []config.Webhook{{URL: rec.URL, Secret: secret}}, Tuning: tuning()})
	h.Observe("message.created", []byte(`{}`))
	s := done(t, h, 0, 1)
	_ = h.Close(context.Background())
	if s.Failed != 1 || s.Retried != 0 || len(rec.got()) != 1 {
		t.Fatalf("stats %+v, requests %d", s, len(rec.got()))
	}
}

func TestRetriesBounded(t *testing.T) {
	rec := newRecorder(t, func(int) int { return 503 })
	h := start(t, webhook.Options{Receivers: []config.Webhook{{URL: rec.URL, Secret: secret}}, Tuning: tuning()})
	h.Observe("message.created", []byte(`{}`))
	s := done(t, h, 0, 1)
	if s.Failed != 1 || s.Retried != 3 || len(rec.got()) != 4 {
		t.Fatalf("stats %+v, requests %d", s, len(rec.got()))
	}
}

func TestEventFilters(t *testing.T) {
	all, groups := newRecorder(t, nil), newRecorder(t, nil)
	h := start(t, webhook.Options{Receivers: []config.Webhook{
		{URL: all.URL, Secret: secret},
		{URL: groups.URL, Secret: secret, Events: []string{"group.*", "friend.accepted"}},
	}, Tuning: tuning()})
	for _, typ := range []string{"message.created", "group.joined", "group.left", "friend.accepted", "friend.request", "groups.x"} {
		h.Observe(typ, []byte(`{}`))
	}
	done(t, h, 0, 6)
	done(t, h, 1, 3)
	var types []string
	for _, e := range groups.got() {
		types = append(types, e.Type)
	}
	if len(all.got()) != 6 || len(types) != 3 || !h.Wants("group.kicked") || h.Wants("push.requested") == false {
		t.Fatalf("all %d, filtered %v", len(all.got()), types)
	}
	h2 := webhook.New(webhook.Options{Receivers: []config.Webhook{{URL: groups.URL, Secret: secret, Events: []string{"group.*"}}}, Log: quiet})
	if h2.Wants("push.requested") || !h2.Wants("group.created") {
		t.Fatal("Wants ignores the filter")
	}
}

// A receiver that never answers, and one whose port is closed, slow
// nothing down: Observe returns at once, the healthy receiver gets every
// event, and the dead ones' queues stay bounded with the excess counted.
func TestDeadReceiverSlowsNoOther(t *testing.T) {
	healthy := newRecorder(t, nil)
	release := make(chan struct{})
	blocking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(blocking.Close)
	t.Cleanup(func() { close(release) }) // runs before blocking.Close
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	tu := tuning()
	tu.Queue, tu.Workers, tu.Timeout, tu.MaxRetries = 10, 1, time.Minute, 2
	tu.Backoff, tu.MaxBackoff = time.Minute, time.Minute // a failed event waits out its backoff
	h := start(t, webhook.Options{Receivers: []config.Webhook{
		{URL: blocking.URL, Secret: secret},
		{URL: closed, Secret: secret},
		{URL: healthy.URL, Secret: secret},
	}, Tuning: tu})
	const n = 500
	began := time.Now()
	for i := range n {
		h.Observe("message.created", fmt.Appendf(nil, `{"n":%d}`, i))
		if i%5 == 4 {
			// Let the healthy receiver keep up with its small queue.
			testutil.Eventually(t, 10*time.Second, func() error {
				if s := h.Stats(2); s.Delivered < uint64(i+1) {
					return fmt.Errorf("healthy: %+v", s)
				}
				return nil
			})
		}
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Fatalf("500 events took %v", d)
	}
	if s := done(t, h, 2, n); s.Delivered != n || s.Dropped != 0 || len(healthy.got()) != n {
		t.Fatalf("healthy receiver: %+v, %d requests", s, len(healthy.got()))
	}
	for i := range 2 {
		s := h.Stats(i)
		if s.Waiting > 10 || s.Dropped < n-10-2 || s.Queued+s.Dropped != n {
			t.Fatalf("dead receiver %d: %+v", i, s)
		}
	}
}
