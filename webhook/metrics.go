package webhook

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook counters, by receiver (its index in the
// configuration), and the before_send latency histogram.
type Metrics struct {
	reg                                         prometheus.Registerer
	queued, delivered, failed, retried, dropped *prometheus.CounterVec
	beforeSend                                  *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"receiver"}))
	}
	m := &Metrics{
		reg:       reg,
		queued:    vec("mqim_webhook_queued_total", "Webhook events accepted into a receiver's queue."),
		delivered: vec("mqim_webhook_delivered_total", "Webhook events a receiver accepted (2xx)."),
		failed:    vec("mqim_webhook_failed_total", "Webhook events given up on: refused (4xx) or out of retries."),
		retried:   vec("mqim_webhook_retried_total", "Webhook requests sent again after a network error, timeout or 5xx."),
		dropped:   vec("mqim_webhook_dropped_total", "Webhook events not queued (queue full or shutting down) or abandoned at shutdown."),
		beforeSend: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mqim_before_send_seconds", Help: "Time the before_send hook took, by result (allow, rewrite, refuse, error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"})),
	}
	return m
}

// register registers c with reg, reusing a collector already registered
// under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

// Stats are one receiver's counters.
type Stats struct {
	Queued, Delivered, Failed, Retried, Dropped uint64
	Waiting                                     int // events in its queue now
}

type counter struct {
	c prometheus.Counter
	v atomic.Uint64
}

func (c *counter) add(n int) {
	c.c.Add(float64(n))
	c.v.Add(uint64(n))
}

type receiverMetrics struct {
	queued, delivered, failed, retried, dropped counter
	q                                           chan []byte
}

// receiver returns the counters of one receiver, and registers its queue
// length and host as gauges.
func (m *Metrics) receiver(name, host string, q chan []byte) *receiverMetrics {
	rm := &receiverMetrics{q: q}
	for _, x := range []struct {
		c   *counter
		vec *prometheus.CounterVec
	}{{&rm.queued, m.queued}, {&rm.delivered, m.delivered}, {&rm.failed, m.failed}, {&rm.retried, m.retried}, {&rm.dropped, m.dropped}} {
		x.c.c = x.vec.WithLabelValues(name)
	}
	if m.reg != nil {
		labels := prometheus.Labels{"receiver": name}
		register(m.reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqim_webhook_queue",
			Help: "Webhook events waiting in a receiver's queue.", ConstLabels: labels},
			func() float64 { return float64(len(q)) }))
		register(m.reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mqim_webhook_receiver_info",
			Help:        "A configured webhook receiver: its index (the receiver label) and its URL's host.",
			ConstLabels: prometheus.Labels{"receiver": name, "host": host}},
			func() float64 { return 1 }))
	}
	return rm
}

func (rm *receiverMetrics) stats() Stats {
	return Stats{Queued: rm.queued.v.Load(), Delivered: rm.delivered.v.Load(), Failed: rm.failed.v.Load(),
		Retried: rm.retried.v.Load(), Dropped: rm.dropped.v.Load(), Waiting: len(rm.q)}
}
