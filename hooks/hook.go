package hooks

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// base is what every mqim hook shares: Mochi's no-op defaults and typed
// options, read by Init (Mochi calls it from AddHook): the config must be a
// non-nil *O whose required collaborators are set.
type base[O any, P interface {
	*O
	complete() bool
}] struct {
	mqtt.HookBase
	o O
}

// Init implements mqtt.Hook.
func (b *base[O, P]) Init(config any) error {
	o, ok := config.(*O)
	if !ok || o == nil || !P(o).complete() {
		return mqtt.ErrInvalidConfigType
	}
	b.o = *o
	return nil
}

// provides tells whether event is one of events (a hook's Provides).
func provides(event byte, events ...byte) bool { return bytes.IndexByte(events, event) >= 0 }

// clip shortens a client-supplied value for the log.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// lazyTimeout is a context.Context that times out d after it is first
// asked for its deadline, Done channel or error, and costs no timer
// before: a lookup answered from a cache never asks. The read ACL runs
// once per recipient of every delivered event, where a timer per check
// was most of the check's cost. Call stop when done.
type lazyTimeout struct {
	d      time.Duration
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

// stoppedCtx is what a lazyTimeout is once stopped: done.
var stoppedCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (l *lazyTimeout) get() context.Context {
	l.once.Do(func() { l.ctx, l.cancel = context.WithTimeout(context.Background(), l.d) })
	return l.ctx
}

// Deadline implements context.Context.
func (l *lazyTimeout) Deadline() (time.Time, bool) { return l.get().Deadline() }

// Done implements context.Context.
func (l *lazyTimeout) Done() <-chan struct{} { return l.get().Done() }

// Err implements context.Context.
func (l *lazyTimeout) Err() error { return l.get().Err() }

// Value implements context.Context: it carries no values.
func (l *lazyTimeout) Value(any) any { return nil }

// stop releases the timer, if one was started; the context is done after.
func (l *lazyTimeout) stop() {
	l.once.Do(func() { l.ctx = stoppedCtx })
	if l.cancel != nil {
		l.cancel()
	}
}
