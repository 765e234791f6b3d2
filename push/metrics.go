package push

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the Dispatcher does, as Prometheus counters and as
// plain values readable with the getters. All counters count notifications
// (one Notification = one user's devices of one platform) except Pruned and
// TokenFailed, which count device tokens. Its getters accept a nil
// *Metrics (all zero); a Dispatcher made without Metrics counts into
// unregistered ones.
type Metrics struct {
	queued, sent, failed, retried, dropped, pruned, uncertain, tokenFailed counter
}

type counter struct {
	c prometheus.Counter
	v atomic.Uint64
}

func (c *counter) add(n int) {
	if n <= 0 {
		return
	}
	c.c.Add(float64(n))
	c.v.Add(uint64(n))
}

// NewMetrics creates the counters and registers them with reg (nil: not
// registered). A counter already registered with reg (a second Metrics on
// the same registry) is shared rather than a panic.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	for _, d := range []struct {
		c          *counter
		name, help string
	}{
		{&m.queued, "mqim_push_queued_total", "Notifications accepted into the push queue."},
		{&m.sent, "mqim_push_sent_total", "Notifications in batches the push gateway accepted."},
		{&m.failed, "mqim_push_failed_total", "Notifications given up on: refused (4xx), retries exhausted, or of uncertain fate after a partial failure."},
		{&m.retried, "mqim_push_retried_total", "Notifications sent again after a retryable failure."},
		{&m.dropped, "mqim_push_dropped_total", "Notifications not queued (queue full or dispatcher closed) or abandoned in the queue at shutdown."},
		{&m.pruned, "mqim_push_pruned_total", "Device tokens pruned after a permanent push error."},
		{&m.uncertain, "mqim_push_uncertain_total", "Notifications of multi-notification batches that failed after the gateway may have queued part of them (counted in failed too, not resent)."},
		{&m.tokenFailed, "mqim_push_token_failed_total", "Device tokens the gateway reported as failed for a non-permanent reason (not pruned)."},
	} {
		d.c.c = prometheus.NewCounter(prometheus.CounterOpts{Name: d.name, Help: d.help})
		if reg == nil {
			continue
		}
		if err := reg.Register(d.c.c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(prometheus.Counter); ok {
					d.c.c = c
					continue
				}
			}
			panic(err)
		}
	}
	return m
}

func (m *Metrics) get(c func(*Metrics) *counter) uint64 {
	if m == nil {
		return 0
	}
	return c(m).v.Load()
}

// Queued returns mqim_push_queued_total.
func (m *Metrics) Queued() uint64 { return m.get(func(m *Metrics) *counter { return &m.queued }) }

// Sent returns mqim_push_sent_total.
func (m *Metrics) Sent() uint64 { return m.get(func(m *Metrics) *counter { return &m.sent }) }

// Failed returns mqim_push_failed_total.
func (m *Metrics) Failed() uint64 { return m.get(func(m *Metrics) *counter { return &m.failed }) }

// Retried returns mqim_push_retried_total.
func (m *Metrics) Retried() uint64 { return m.get(func(m *Metrics) *counter { return &m.retried }) }

// Dropped returns mqim_push_dropped_total.
func (m *Metrics) Dropped() uint64 { return m.get(func(m *Metrics) *counter { return &m.dropped }) }

// Pruned returns mqim_push_pruned_total.
func (m *Metrics) Pruned() uint64 { return m.get(func(m *Metrics) *counter { return &m.pruned }) }

// Uncertain returns mqim_push_uncertain_total.
func (m *Metrics) Uncertain() uint64 {
	return m.get(func(m *Metrics) *counter { return &m.uncertain })
}

// TokenFailed returns mqim_push_token_failed_total.
func (m *Metrics) TokenFailed() uint64 {
	return m.get(func(m *Metrics) *counter { return &m.tokenFailed })
}
