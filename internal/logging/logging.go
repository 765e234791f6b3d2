// Package logging builds mqim's one shared logger: structured (slog, text or
// JSON), with secrets and bodies redacted, and repeated warnings and errors
// (an outage, a flood of refused connections) logged at a bounded rate.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Interval is how often one cause (a message at a level, and its reason)
// is logged at most; what repeats within it is counted and reported with
// the next line of that cause.
const Interval = 10 * time.Second

// New builds the logger: level is debug, info, warn or error; format text
// or json. Attributes that can hold secrets or message bodies (packet, pk,
// payload, password, token, data) are redacted: Mochi logs whole packets on
// some refusals.
func New(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch strings.ToLower(a.Key) {
		case "packet", "pk", "payload", "password", "token", "data":
			return slog.String(a.Key, "[redacted]")
		}
		return a
	}}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(Bounded(h, Interval))
}

// Bounded wraps h so that each cause of warnings and errors, and of
// refused connections, is logged at most once per interval. A cause is the
// record's level and message and its "reason" attribute, if any. The first
// record of a cause in an interval is logged; the others are counted, and
// the next logged record of that cause carries "repeated": n.
func Bounded(h slog.Handler, interval time.Duration) slog.Handler {
	return &bounded{h: h, interval: interval, st: &bstate{causes: map[string]*cause{}}}
}

type bounded struct {
	h        slog.Handler
	interval time.Duration
	st       *bstate // shared by the handlers WithAttrs and WithGroup derive
}

type bstate struct {
	mu     sync.Mutex
	causes map[string]*cause
}

type cause struct {
	last     time.Time
	repeated int
}

// limited tells whether a record is of the kind whose repeats are bounded.
func limited(r slog.Record) bool {
	return r.Level >= slog.LevelWarn || r.Message == "connect refused"
}

func (b *bounded) Enabled(ctx context.Context, l slog.Level) bool { return b.h.Enabled(ctx, l) }

func (b *bounded) Handle(ctx context.Context, r slog.Record) error {
	if !limited(r) {
		return b.h.Handle(ctx, r)
	}
	key := r.Level.String() + "\x00" + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			key += "\x00" + a.Value.String()
			return false
		}
		return true
	})
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	b.st.mu.Lock()
	c := b.st.causes[key]
	if c != nil && now.Sub(c.last) < b.interval {
		c.repeated++
		b.st.mu.Unlock()
		return nil
	}
	repeated := 0
	if c == nil {
		if len(b.st.causes) > 10_000 {
			b.st.causes = map[string]*cause{} // bounded memory: causes are few
		}
		c = &cause{}
		b.st.causes[key] = c
	} else {
		repeated = c.repeated
	}
	c.last, c.repeated = now, 0
	b.st.mu.Unlock()
	if repeated > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", repeated))
	}
	return b.h.Handle(ctx, r)
}

func (b *bounded) WithAttrs(as []slog.Attr) slog.Handler {
	return &bounded{h: b.h.WithAttrs(as), interval: b.interval, st: b.st}
}

func (b *bounded) WithGroup(name string) slog.Handler {
	return &bounded{h: b.h.WithGroup(name), interval: b.interval, st: b.st}
}
