// Package hooks holds mqim's Mochi hooks: the MQTT door. They are thin
// adapters that translate MQTT clients and packets into calls on the chat
// service, and refusals into MQTT codes. Mochi runs every hook
// synchronously on the client's own read goroutine (an inbound publish's
// OnPublish runs before its PUBACK), so each keeps its fast path free of
// database round trips where it can, and a slow call delays only that
// client.
package hooks

import (
	"context"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/token"
	"github.com/mqim/mqim/store"
)

// Authenticator tells which user a token acts as (chat.Service does): see
// chat.Service.Authenticate for its refusals.
type Authenticator interface {
	Authenticate(ctx context.Context, claimed, raw, addr string) (*store.User, token.Claims, error)
}

// MemberChecker answers "is uid a member of gid" from a cache.
type MemberChecker interface {
	IsMember(ctx context.Context, gid, uid string) (bool, error)
}

// Gate is what the Auth hook needs of the broker (broker.Broker does).
type Gate interface {
	RefuseConnect(cl *mqtt.Client, why packets.Code) error
	Admit(cl *mqtt.Client, uid string) error
	ExpireAt(cl *mqtt.Client, t time.Time)
	Deliverable(clientID string) bool
	DeliverableReply(clientID string) bool
}

// AuthOptions configure the Auth hook.
type AuthOptions struct {
	Users   Authenticator
	Members MemberChecker
	Broker  Gate
	// OpenTopics lets users use topics outside im/ (plain-broker use).
	OpenTopics bool
}

func (o *AuthOptions) complete() bool { return o.Users != nil && o.Members != nil && o.Broker != nil }

// Auth authenticates connections (username = user id, password = access
// token, client id = {user_id}/{device_id}), applies the per-user caps and
// the will rules, and enforces the topic ACL (docs/protocol.md, "The
// ACL"). It denies whatever it does not explicitly allow; no other auth
// hook may be added next to it (Mochi ORs their answers).
//
// Every CONNECT refusal is answered in OnConnect, with the CONNACK code
// that names the reason (Mochi's own authentication path knows only "bad
// user name or password"); OnConnectAuthenticate then admits exactly the
// connections OnConnect let through.
type Auth struct {
	base[AuthOptions, *AuthOptions]
	admitted sync.Map // *mqtt.Client -> struct{}, between OnConnect and OnConnectAuthenticate
}

var _ mqtt.Hook = (*Auth)(nil)

// ID implements mqtt.Hook.
func (h *Auth) ID() string { return "mqim-auth" }

// Provides implements mqtt.Hook.
func (h *Auth) Provides(b byte) bool {
	return provides(b, mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck)
}

// connectRefusal is a refused CONNECT: the MQTT 5 reason code (3.1.1
// clients get the matching return code) and what the log says.
type connectRefusal struct {
	code   packets.Code
	reason string
}

// OnConnect implements mqtt.Hook. It runs on the connecting client's
// goroutine before anything is set up for it, and costs one user lookup.
func (h *Auth) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	r, uid := h.check(cl, pk)
	if r == nil {
		// Mochi keeps the user name as a slice of the whole CONNECT packet,
		// token included, for the connection's lifetime: a copy of its own
		// lets the packet go (a few hundred bytes per connection).
		cl.Properties.Username = []byte(uid)
		h.admitted.Store(cl, struct{}{})
		return nil
	}
	// Never log the password: it is a token. Client-supplied names are
	// clipped: a refused client must not be able to fill the log.
	h.Log.Info("connect refused", "client_id", clip(cl.ID), "user_id", clip(uid), "reason", r.reason,
		"code", r.code.Code, "remote", cl.Net.Remote)
	if err := h.o.Broker.RefuseConnect(cl, r.code); err != nil {
		return err
	}
	return r.code
}

func (h *Auth) check(cl *mqtt.Client, pk packets.Packet) (*connectRefusal, string) {
	uid := string(pk.Connect.Username)
	if cl.ID == mqtt.InlineClientId || cl.Net.Inline {
		return &connectRefusal{packets.ErrClientIdentifierNotValid, "reserved client id"}, uid
	}
	if !chat.ValidID(uid) {
		return &connectRefusal{packets.ErrBadUsernameOrPassword, "invalid user id"}, uid
	}
	if chat.DeviceID(cl.ID, uid) == "" {
		return &connectRefusal{packets.ErrClientIdentifierNotValid, "client id must be {user_id}/{device_id}"}, uid
	}
	if w := &cl.Properties.Will; w.Flag == 1 {
		// A will is published by the broker itself, past the ACL and the
		// chat pipeline: it may only go where its user may publish plainly.
		if isIMFilter(w.TopicName) || !h.OnACLCheck(cl, w.TopicName, true) {
			return &connectRefusal{packets.ErrNotAuthorized, "will on a topic the user may not publish to"}, uid
		}
		if w.Qos > 1 {
			w.Qos = 1 // accepted at QoS 1, as the server's own messages
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, claims, err := h.o.Users.Authenticate(ctx, uid, string(pk.Connect.Password), cl.Net.Remote)
	if err != nil {
		e := chat.AsError(err)
		switch {
		case e == chat.ErrUserDisabled:
			return &connectRefusal{packets.ErrBanned, e.Message}, uid
		case e.Code == chat.CodeRateLimited:
			return &connectRefusal{packets.ErrConnectionRateExceeded, e.Message}, uid
		case e.Code == chat.CodeUnavailable:
			h.Log.Error("connect: user lookup failed", "user_id", uid, "error", err)
			return &connectRefusal{packets.ErrServerUnavailable, e.Message}, uid
		default:
			return &connectRefusal{packets.ErrBadUsernameOrPassword, e.Message}, uid
		}
	}
	if err := h.o.Broker.Admit(cl, uid); err != nil {
		return &connectRefusal{packets.ErrQuotaExceeded, err.Error()}, uid
	}
	h.o.Broker.ExpireAt(cl, claims.Expires)
	return nil, uid
}

// OnConnectAuthenticate implements mqtt.Hook: it admits the connections
// OnConnect let through.
func (h *Auth) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := h.admitted.LoadAndDelete(cl)
	return ok
}

// OnACLCheck implements mqtt.Hook. For subscriptions topic is a filter. It
// also runs once per recipient for every delivered message, so the group
// check is served from the membership cache.
func (h *Auth) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	uid := string(cl.Properties.Username)
	if strings.HasPrefix(topic, "$share/") {
		// A shared subscription: allowed only on open, non-im topics.
		parts := strings.SplitN(topic, "/", 3)
		return h.o.OpenTopics && len(parts) == 3 && !isIMFilter(parts[2]) && !strings.HasPrefix(parts[2], "$")
	}
	if !isIMFilter(topic) {
		return h.o.OpenTopics && !strings.HasPrefix(topic, "$")
	}
	switch {
	case topic == chat.RequestTopic:
		return write // anyone may ask; nobody subscribes
	case strings.HasPrefix(topic, chat.ReplyTopicPrefix):
		// Only the server publishes replies, and only to the device asking.
		return !write && topic == chat.ReplyTopic(cl.ID) && h.o.Broker.DeliverableReply(cl.ID)
	}
	t, ok := chat.ParseTopic(topic)
	if !ok {
		return false // wildcards, extra levels, bad ids
	}
	if write {
		return true // membership, blocks and mutes are the chat service's to refuse, with a code
	}
	// A read check also runs for each event about to be queued for this
	// session: a session at its queue cap gets nothing more until it drains.
	if !t.IsGroup() {
		return t.ID == uid && h.o.Broker.Deliverable(cl.ID)
	}
	ctx := &lazyTimeout{d: 5 * time.Second}
	defer ctx.stop()
	ok, err := h.o.Members.IsMember(ctx, t.ID, uid)
	if err != nil {
		h.Log.Warn("acl: membership lookup failed", "user_id", uid, "group", t.ID, "error", err)
		return false
	}
	return ok && h.o.Broker.Deliverable(cl.ID)
}

// isIMFilter tells whether a topic or filter could match anything under im/.
func isIMFilter(f string) bool {
	return f == "im" || strings.HasPrefix(f, "im/") || f == "#" || strings.HasPrefix(f, "+/") || f == "+"
}
