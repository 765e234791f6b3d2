package hooks

import (
	"context"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
)

// Acker is what the Chat hook needs of the broker (broker.Broker does): end
// a connection, refuse a QoS 2 publish with a PUBREC, and answer a request
// on a device's reply topic.
type Acker interface {
	DisconnectClient(cl *mqtt.Client, why packets.Code) error
	RefuseQoS2(cl *mqtt.Client, pk packets.Packet, why packets.Code) error
	Reply(topic string, payload, correlation []byte) error
}

// ChatOptions configure the Chat hook.
type ChatOptions struct {
	Broker Acker
	Chat   *chat.Service
	// Requests answers the requests published on im/rpc.
	Requests Requester
	Config   config.Chat
}

func (o *ChatOptions) complete() bool { return o.Broker != nil && o.Chat != nil && o.Requests != nil }

// Chat is the MQTT door into the chat service. A client publish on im/ is
// never delivered as-is: it is decoded, handed to the service (which stores
// it before this hook returns, so the PUBACK follows the commit), and the
// service delivers its own canonical event. Refusals are answered as the
// delivery guarantees say (docs/protocol.md, "How a refusal reaches the sender").
type Chat struct {
	base[ChatOptions, *ChatOptions]
}

var _ mqtt.Hook = (*Chat)(nil)

// ID implements mqtt.Hook.
func (h *Chat) ID() string { return "mqim-chat" }

// Provides implements mqtt.Hook.
func (h *Chat) Provides(b byte) bool { return provides(b, mqtt.OnPublish) }

// reasonCodes maps refusal codes to MQTT 5 PUBACK reason codes; the one
// place that does.
// place that does. Only codes a PUBACK may carry (MQTT 5 §3.4.2.1).
var reasonCodes = map[string]packets.Code{
	chat.CodeInvalid:     packets.ErrPayloadFormatInvalid,
	chat.CodeTooLarge:    packets.ErrQuotaExceeded,
	chat.CodeForbidden:   packets.ErrNotAuthorized,
	chat.CodeNotMember:   packets.ErrNotAuthorized,
	chat.CodeMuted:       packets.ErrNotAuthorized,
	chat.CodeBlocked:     packets.ErrNotAuthorized,
	chat.CodeNotFound:    packets.ErrNotAuthorized,
	chat.CodeConflict:    packets.ErrNotAuthorized,
	chat.CodeRateLimited: packets.ErrQuotaExceeded,
	chat.CodeUnavailable: packets.ErrUnspecifiedError,
}

// reasonCode is the MQTT 5 reason code of a refusal.
func reasonCode(code string) packets.Code {
	if c, ok := reasonCodes[code]; ok {
		return c
	}
	return packets.ErrUnspecifiedError
}

// OnPublish implements mqtt.Hook. It runs on the sender's read goroutine and
// blocks it until the message is committed: the price of "acknowledged means
// stored", paid by that connection only.
func (h *Chat) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !strings.HasPrefix(pk.TopicName, "im/") {
		return pk, nil // server events, and plain-broker topics the ACL allowed
	}
	if pk.TopicName == chat.RequestTopic {
		return h.request(cl, pk)
	}
	uid := string(cl.Properties.Username)
	t, ok := chat.ParseTopic(pk.TopicName)
	if !ok { // the ACL refuses these first; kept for safety
		return h.refuse(cl, pk, "", &chat.Error{Code: chat.CodeInvalid, Message: "invalid topic"})
	}
	in, err := chat.Decode(pk.Payload, h.o.Config)
	if err != nil {
		cid := ""
		if in != nil {
			cid = in.CID
		}
		return h.refuse(cl, pk, cid, chat.AsError(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.o.Config.CommitTimeout+time.Second)
	defer cancel()
	switch in.Kind {
	case chat.KindMsg:
		d := &chat.Draft{From: uid, CID: in.CID, Type: in.Type, Body: in.Body, ReplyTo: in.ReplyTo, Mentions: in.Mentions, Ext: in.Ext}
		if t.IsGroup() {
			d.Group = t.ID
		} else {
			d.To = t.ID
		}
		_, err = h.o.Chat.Send(ctx, d)
	case chat.KindRead:
		_, err = h.o.Chat.MarkRead(ctx, uid, t.Conv(uid), in.Seq)
	case chat.KindTyping:
		err = h.o.Chat.Typing(ctx, uid, t)
	case chat.KindRecall:
		_, err = h.o.Chat.Recall(ctx, chat.Actor{UserID: uid}, t.Conv(uid), in.ID)
	case chat.KindEdit:
		_, err = h.o.Chat.Edit(ctx, chat.Actor{UserID: uid}, t.Conv(uid), in.ID, in.Body)
	default:
		err = chat.Errorf(chat.CodeInvalid, "kind %s is not supported yet", in.Kind)
	}
	if err != nil {
		return h.refuse(cl, pk, in.CID, chat.AsError(err))
	}
	return pk, packets.CodeSuccessIgnore
}

// refuse answers a refused publish as the delivery guarantees say: the
// error event on the sender's inbox always; then for MQTT 5 QoS 1 a PUBACK
// and for QoS 2 a PUBREC with the reason code; for MQTT 3.1.1, an ack for
// permanent refusals (so the client does not retry; rate_limited is one:
// the error event says when to try again) and a closed connection without
// ack for transient ones (so it retransmits). Nothing refused is ever
// delivered as-is.
func (h *Chat) refuse(cl *mqtt.Client, pk packets.Packet, cid string, e *chat.Error) (packets.Packet, error) {
	uid := string(cl.Properties.Username)
	h.o.Chat.SendError(uid, chat.DeviceID(cl.ID, uid), cid, e)
	if pk.FixedHeader.Qos > 0 && cl.Properties.ProtocolVersion != 5 && e.Temporary() {
		h.Log.Warn("publish not stored: disconnecting so the client retransmits", "client_id", cl.ID, "code", e.Code)
		_ = h.o.Broker.DisconnectClient(cl, packets.ErrUnspecifiedError)
		return pk, packets.ErrRejectPacket
	}
	return h.ackRefused(cl, pk, e)
}

// ackRefused acknowledges a refused publish: MQTT 5 with the reason code of
// e (a PUBREC at QoS 2), MQTT 3.1.1 and QoS 0 with a plain success (the
// error event or the request's reply says why). Sends and requests share
// it.
func (h *Chat) ackRefused(cl *mqtt.Client, pk packets.Packet, e *chat.Error) (packets.Packet, error) {
	if pk.FixedHeader.Qos == 0 || cl.Properties.ProtocolVersion != 5 {
		return pk, packets.CodeSuccessIgnore
	}
	if pk.FixedHeader.Qos == 2 {
		_ = h.o.Broker.RefuseQoS2(cl, pk, reasonCode(e.Code))
		return pk, packets.ErrRejectPacket
	}
	return pk, reasonCode(e.Code)
}
