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
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/token"
	"github.com/mqim/mqim/store"
)

// Verifier checks access tokens.
type Verifier interface {
	Verify(raw string) (token.Claims, error)
}

// Authenticator tells whether a user accepts a verified token
// (chat.Service does).
type Authenticator interface {
	Authenticate(ctx context.Context, uid string, issuedAt time.Time) (*store.User, error)
}

// MemberChecker answers "is uid a member of gid" from a cache.
type MemberChecker interface {
	IsMember(ctx context.Context, gid, uid string) (bool, error)
}

// AuthOptions configure the Auth hook.
type AuthOptions struct {
	Tokens  Verifier
	Users   Authenticator
	Members MemberChecker
	// OpenTopics lets users use topics outside im/ (plain-broker use).
	OpenTopics bool
}

// Auth authenticates connections (username = user id, password = access
// token, client id = {user_id}/{device_id}) and enforces the topic ACL of
// docs/protocol.md ("The ACL"). It denies whatever it does not explicitly allow; no other
// auth hook may be added next to it (Mochi ORs their answers).
type Auth struct {
	mqtt.HookBase
	o AuthOptions
}

var _ mqtt.Hook = (*Auth)(nil)

// ID implements mqtt.Hook.
func (h *Auth) ID() string { return "mqim-auth" }

// Provides implements mqtt.Hook.
func (h *Auth) Provides(b byte) bool {
	return provides(b, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck)
}

// Init implements mqtt.Hook.
func (h *Auth) Init(config any) error {
	var err error
	h.o, err = options(config, func(o *AuthOptions) bool { return o.Tokens != nil && o.Users != nil && o.Members != nil })
	return err
}

// OnConnectAuthenticate implements mqtt.Hook. It costs one user lookup.
func (h *Auth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	uid := string(pk.Connect.Username)
	refuse := func(reason string) bool {
		// Never log the password: it is a token.
		h.Log.Info("connect refused", "client_id", cl.ID, "user_id", uid, "reason", reason, "remote", cl.Net.Remote)
		return false
	}
	if cl.ID == mqtt.InlineClientId || cl.Net.Inline {
		return refuse("reserved client id")
	}
	if !chat.ValidID(uid) {
		return refuse("invalid user id")
	}
	if chat.DeviceID(cl.ID, uid) == "" {
		return refuse("client id must be {user_id}/{device_id}")
	}
	claims, err := h.o.Tokens.Verify(string(pk.Connect.Password))
	if err != nil {
		return refuse("bad token")
	}
	if claims.UserID != uid {
		return refuse("token is for another user")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.o.Users.Authenticate(ctx, uid, claims.IssuedAt); err != nil {
		if e := chat.AsError(err); e.Code != chat.CodeUnavailable {
			return refuse(e.Message)
		}
		h.Log.Error("connect: user lookup failed", "user_id", uid, "error", err)
		return false
	}
	return true
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
	t, ok := chat.ParseTopic(topic)
	if !ok {
		return false // wildcards, extra levels, bad ids
	}
	if write {
		return true // membership, blocks and mutes are the chat service's to refuse, with a code
	}
	if !t.IsGroup() {
		return t.ID == uid
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := h.o.Members.IsMember(ctx, t.ID, uid)
	if err != nil {
		h.Log.Warn("acl: membership lookup failed", "user_id", uid, "group", t.ID, "error", err)
		return false
	}
	return ok
}

// isIMFilter tells whether a topic or filter could match anything under im/.
func isIMFilter(f string) bool {
	return f == "im" || strings.HasPrefix(f, "im/") || f == "#" || strings.HasPrefix(f, "+/") || f == "+"
}
