package hooks

import (
	"context"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
)

// GroupLister lists the groups a user belongs to.
type GroupLister interface {
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

// Settler sets up a new session's subscriptions and can end a connection
// (broker.Broker does).
type Settler interface {
	Settle(cl *mqtt.Client, decide func(current []string) (add, remove []string))
	DisconnectClient(cl *mqtt.Client, why packets.Code) error
}

// SessionOptions configure the Sessions hook.
type SessionOptions struct {
	Broker  Settler
	Groups  GroupLister
	Members MemberChecker
}

func (o *SessionOptions) complete() bool {
	return o.Broker != nil && o.Groups != nil && o.Members != nil
}

// Sessions subscribes every device, at session establishment, to its inbox,
// its reply topic and all its groups at QoS 1, and removes subscriptions to groups the
// user has left, so that clients never need to SUBSCRIBE. Membership changes
// later update the sessions through the chat service and the broker.
// Explicit client subscriptions to im/ topics are raised to QoS 1.
type Sessions struct {
	base[SessionOptions, *SessionOptions]
}

var _ mqtt.Hook = (*Sessions)(nil)

// ID implements mqtt.Hook.
func (h *Sessions) ID() string { return "mqim-sessions" }

// Provides implements mqtt.Hook.
func (h *Sessions) Provides(b byte) bool {
	return provides(b, mqtt.OnSessionEstablished, mqtt.OnSubscribe, mqtt.OnPacketEncode)
}

// OnPacketEncode implements mqtt.Hook: an MQTT 5 client that asks for
// Response Information in its CONNECT gets its reply topic in the CONNACK.
func (h *Sessions) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < 0x80 && cl.Properties.ProtocolVersion == 5 &&
		cl.Properties.Props.RequestResponseInfo == 1 {
		pk.Properties.ResponseInfo = chat.ReplyTopic(cl.ID)
	}
	return pk
}

// OnSessionEstablished implements mqtt.Hook. It runs after CONNACK (Mochi
// has no earlier point at which a takeover would not undo the change), so an
// event published in between is recovered by catch-up. It costs one query
// (the user's groups).
func (h *Sessions) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	uid := string(cl.Properties.Username)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The broker indexed the session before this hook ran, so a join
	// committed while the groups are read subscribes this client too.
	gids, err := h.o.Groups.UserGroups(ctx, uid)
	if err != nil {
		// Without the list the device would silently miss its groups: make it
		// reconnect rather than run half-subscribed.
		h.Log.Error("session: cannot list groups", "client_id", cl.ID, "user_id", uid, "error", err)
		_ = h.o.Broker.DisconnectClient(cl, packets.ErrServerBusy)
		return
	}
	want := map[string]bool{chat.UserTopic(uid): true, chat.ReplyTopic(cl.ID): true}
	for _, g := range gids {
		want[chat.GroupTopic(g)] = true
	}
	// The list may predate a join or leave applied meanwhile: the
	// membership cache, updated at commit, has the last word.
	member := func(gid string) bool {
		ok, err := h.o.Members.IsMember(ctx, gid, uid)
		return err == nil && ok
	}
	h.o.Broker.Settle(cl, func(current []string) (add, remove []string) {
		for _, f := range current {
			if t, ok := chat.ParseTopic(f); ok && t.IsGroup() && !want[f] && !member(t.ID) {
				remove = append(remove, f)
			}
		}
		for f := range want {
			if t, _ := chat.ParseTopic(f); t.IsGroup() && !member(t.ID) {
				continue
			}
			add = append(add, f)
		}
		return add, remove
	})
}

// OnSubscribe implements mqtt.Hook: im/ subscriptions are always QoS 1.
func (h *Sessions) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	for i := range pk.Filters {
		if strings.HasPrefix(pk.Filters[i].Filter, "im/") {
			pk.Filters[i].Qos = 1
		}
	}
	return pk
}
