package broker

import (
	"context"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// protocolHook makes what Mochi writes follow the MQTT specifications and
// mqim's contract, in the one place every outgoing packet passes
// (OnPacketEncode, on whichever goroutine writes it):
//   - MQTT 5 CONNACKs advertise the Maximum Packet Size (Mochi enforces the
//     limit but does not say it), so a client can refuse an oversized
//     publish itself instead of being disconnected for it;
//   - a 3.1.1 client is only ever sent a 3.1.1 CONNACK return code (Mochi
//     passes some MQTT 5 reason codes through unchanged), and never a
//     DISCONNECT (that packet flows only client to server in 3.1.1: the
//     connection is closed instead);
//   - a successful PUBACK/PUBREC/PUBREL/PUBCOMP carries reason 0x00 (Mochi
//     writes the granted QoS, 0x01, into a QoS 1 PUBACK);
//   - server events carry no properties but those MQTT requires (the
//     subscription identifiers of the receiving subscription, a topic alias
//     the receiver negotiated, a request's correlation data): no Message
//     Expiry Interval nobody set, nothing a client supplied.
type protocolHook struct {
	mqtt.HookBase
	maxPacket uint32
}

func (h *protocolHook) ID() string { return "mqim-protocol" }

func (h *protocolHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

// OnPacketEncode implements mqtt.Hook.
func (h *protocolHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	v5 := cl.Properties.ProtocolVersion == 5
	switch pk.FixedHeader.Type {
	case packets.Connack:
		switch {
		case v5 && pk.ReasonCode < 0x80:
			pk.Properties.MaximumPacketSize = h.maxPacket
		case !v5 && pk.ReasonCode >= 0x80:
			pk.ReasonCode = v3ConnackCode(pk.ReasonCode, cl.Properties.Props.AssignedClientID != "")
		}
	case packets.Disconnect:
		if !v5 {
			// An invalid type makes Mochi write nothing; DisconnectClient
			// ignores that and closes the connection.
			pk.FixedHeader.Type = packets.Reserved
		}
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		if pk.ReasonCode < 0x80 {
			pk.ReasonCode = 0
			pk.Properties = packets.Properties{}
		}
	case packets.Publish:
		if pk.Origin == mqtt.InlineClientId {
			p := pk.Properties
			pk.Properties = packets.Properties{SubscriptionIdentifier: p.SubscriptionIdentifier,
				TopicAlias: p.TopicAlias, TopicAliasFlag: p.TopicAliasFlag, CorrelationData: p.CorrelationData}
		}
	}
	return pk
}

// v3ConnackCode is the MQTT 3.1.1 return code for an MQTT 5 CONNACK
// refusal: 0x01 unacceptable protocol version, 0x02 identifier rejected,
// 0x04 bad user name or password, 0x05 not authorized, 0x03 server
// unavailable for everything about the server's capacity or limits.
// noClientID tells that the CONNECT had no client id (Mochi assigned one).
func v3ConnackCode(v5 byte, noClientID bool) byte {
	switch v5 {
	case packets.ErrUnsupportedProtocolVersion.Code:
		return 0x01
	case packets.ErrClientIdentifierNotValid.Code:
		return 0x02
	case packets.ErrBadUsernameOrPassword.Code:
		return 0x04
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return 0x05
	case packets.ErrUnspecifiedError.Code:
		if noClientID {
			return 0x02 // Mochi's answer to a clean=false CONNECT without a client id
		}
	}
	return 0x03
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
