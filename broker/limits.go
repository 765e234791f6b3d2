package broker

import (
	"bytes"

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
