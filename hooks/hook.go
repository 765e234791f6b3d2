package hooks

import (
	"bytes"
	"strconv"

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
