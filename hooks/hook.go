package hooks

import (
	"bytes"
	"strconv"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// options reads a hook's Init config: a non-nil *O that complete accepts
// (its required collaborators are set).
func options[O any](config any, complete func(*O) bool) (O, error) {
	o, ok := config.(*O)
	if !ok || o == nil || !complete(o) {
		var zero O
		return zero, mqtt.ErrInvalidConfigType
	}
	return *o, nil
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
