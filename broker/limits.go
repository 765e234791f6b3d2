package broker

import (
	"bytes"
	"context"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// limitsHook tells MQTT 5 clients the largest packet the server accepts, in
// the CONNACK's Maximum Packet Size property (Mochi enforces the limit but
// does not advertise it), so a client can refuse an oversized publish itself
// instead of being disconnected for it.
type limitsHook struct {
	mqtt.HookBase
	maxPacket uint32
}

func (h *limitsHook) ID() string { return "mqim-limits" }

func (h *limitsHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketEncode}, []byte{b})
}

// OnPacketEncode runs for every outgoing packet; it only touches CONNACKs.
func (h *limitsHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < 0x80 {
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
	return pk
}

// mochiHandler is the shared log handler as Mochi sees it. Mochi logs every
// publish a hook refuses with a reason code (each MQTT 5 refusal: a user's
// mistake, answered to that user) as "publish packet error" at ERROR; such
// records are lowered to DEBUG. Everything else passes unchanged.
type mochiHandler struct{ slog.Handler }

func (h mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && r.Message == "publish packet error" {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		low := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool { low.AddAttrs(a); return true })
		r = low
	}
	return h.Handler.Handle(ctx, r)
}

func (h mochiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return mochiHandler{h.Handler.WithAttrs(as)}
}

func (h mochiHandler) WithGroup(name string) slog.Handler {
	return mochiHandler{h.Handler.WithGroup(name)}
}
