package hooks

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
)

// GroupLister lists the groups a user belongs to.
type GroupLister interface {
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

// SessionOptions configure the Sessions hook.
type SessionOptions struct {
	Server  *mqtt.Server
	Groups  GroupLister
	Members MemberChecker
}

// Sessions subscribes every device, at session establishment, to its inbox
// and to all its groups at QoS 1, removes subscriptions to groups the user
// has left, and keeps live (and stored persistent) sessions in step when
// membership changes (it implements chat.Subscriber). Explicit client
// subscriptions to im/ topics are raised to QoS 1.
type Sessions struct {
	mqtt.HookBase
	srv     *mqtt.Server
	groups  GroupLister
	members MemberChecker

	// mu serialises subscription changes: a session being set up and a
	// membership change for the same user must not interleave.
	mu sync.Mutex
	// byUser indexes the client ids of each user's sessions (live or
	// persistent), so membership changes do not walk every client.
	byUser map[string]map[string]struct{}
	// lastSeen is when each user was last connected (Unix ms).
	lastSeen map[string]int64
	// settled holds, per client id, the connection whose subscriptions are
	// in place.
	settled map[string]*mqtt.Client
}

var (
	_ mqtt.Hook       = (*Sessions)(nil)
	_ chat.Subscriber = (*Sessions)(nil)
)

// ID implements mqtt.Hook.
func (h *Sessions) ID() string { return "mqim-sessions" }

// Provides implements mqtt.Hook.
func (h *Sessions) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired, mqtt.OnSubscribe}, []byte{b})
}

// Init implements mqtt.Hook.
func (h *Sessions) Init(config any) error {
	o, ok := config.(*SessionOptions)
	if !ok || o == nil || o.Server == nil || o.Groups == nil || o.Members == nil {
		return mqtt.ErrInvalidConfigType
	}
	h.srv, h.groups, h.members = o.Server, o.Groups, o.Members
	h.byUser = map[string]map[string]struct{}{}
	h.lastSeen = map[string]int64{}
	h.settled = map[string]*mqtt.Client{}
	return nil
}

// OnSessionEstablished implements mqtt.Hook. It runs after CONNACK (Mochi
// has no earlier point at which a takeover would not undo the change), so an
// event published in between is recovered by catch-up.
func (h *Sessions) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	uid := string(cl.Properties.Username)
	// Indexed first, so that a join committed while the groups are read
	// below subscribes this client too (Joined walks the index).
	h.mu.Lock()
	set := h.byUser[uid]
	if set == nil {
		set = map[string]struct{}{}
		h.byUser[uid] = set
	}
	set[cl.ID] = struct{}{}
	h.lastSeen[uid] = time.Now().UnixMilli()
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gids, err := h.groups.UserGroups(ctx, uid)
	if err != nil {
		// Without the list the device would silently miss its groups: make it
		// reconnect rather than run half-subscribed.
		h.Log.Error("session: cannot list groups", "client_id", cl.ID, "user_id", uid, "error", err)
		_ = h.srv.DisconnectClient(cl, packets.ErrServerBusy)
		return
	}
	want := map[string]bool{chat.UserTopic(uid): true}
	for _, g := range gids {
		want[chat.GroupTopic(g)] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range cl.State.Subscriptions.GetAll() {
		gid, stale := strings.CutPrefix(f, "im/g/")
		if !stale || want[f] {
			continue
		}
		// The list may predate a join that Joined has applied meanwhile:
		// the membership cache, updated at commit, has the last word.
		if ok, err := h.members.IsMember(ctx, gid, uid); err == nil && ok {
			continue
		}
		h.unsubscribe(cl, f)
	}
	for f := range want {
		// Likewise a leave applied meanwhile (the read ACL would stop
		// delivery anyway).
		if gid, ok := strings.CutPrefix(f, "im/g/"); ok {
			if member, err := h.members.IsMember(ctx, gid, uid); err == nil && !member {
				continue
			}
		}
		h.subscribe(cl, f)
	}
	h.settled[cl.ID] = cl
}

// Settled tells whether the live connection of a client id has its
// subscriptions in place (they are made just after CONNACK).
func (h *Sessions) Settled(clientID string) bool {
	cl, ok := h.srv.Clients.Get(clientID)
	h.mu.Lock()
	defer h.mu.Unlock()
	return ok && h.settled[clientID] == cl
}

// OnDisconnect implements mqtt.Hook: a session that ends with the
// connection leaves the index; a persistent one stays until it expires. A
// connection taken over by a reconnect of the same device changes nothing:
// the device is still online through the new connection (Mochi #483).
func (h *Sessions) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || cl.IsTakenOver() || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return
	}
	h.mu.Lock()
	h.lastSeen[string(cl.Properties.Username)] = time.Now().UnixMilli()
	h.mu.Unlock()
	if expire {
		h.forget(cl)
	}
}

// Online tells whether a device (client id) has a live connection. It reads
// Mochi's client map, where a reconnect replaces the old connection before
// that one is closed, so a takeover never shows the device offline.
func (h *Sessions) Online(clientID string) bool {
	cl, ok := h.srv.Clients.Get(clientID)
	return ok && !cl.Closed() && !cl.Net.Inline
}

// Presence is a user's connection state.
type Presence struct {
	Online   bool     `json:"online"`
	Devices  []string `json:"devices"`   // device ids connected now
	LastSeen int64    `json:"last_seen"` // Unix ms of the last connect or disconnect; 0 if never seen by this server
}

// Presence reports the connection state of each user.
func (h *Sessions) Presence(uids []string) map[string]Presence {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]Presence, len(uids))
	now := time.Now().UnixMilli()
	for _, uid := range uids {
		p := Presence{Devices: []string{}, LastSeen: h.lastSeen[uid]}
		for id := range h.byUser[uid] {
			if h.Online(id) {
				p.Devices = append(p.Devices, DeviceID(id, uid))
			}
		}
		sort.Strings(p.Devices)
		if p.Online = len(p.Devices) > 0; p.Online {
			p.LastSeen = now
		}
		out[uid] = p
	}
	return out
}

// OnClientExpired implements mqtt.Hook.
func (h *Sessions) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *Sessions) forget(cl *mqtt.Client) {
	uid := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.byUser[uid]; set != nil {
		// A newer connection with the same client id may own the session now.
		if cur, ok := h.srv.Clients.Get(cl.ID); ok && cur != cl {
			return
		}
		delete(set, cl.ID)
		delete(h.settled, cl.ID)
		if len(set) == 0 {
			delete(h.byUser, uid)
		}
	}
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

// Joined implements chat.Subscriber.
func (h *Sessions) Joined(gid string, uids []string) {
	h.each(uids, func(cl *mqtt.Client) { h.subscribe(cl, chat.GroupTopic(gid)) })
}

// Left implements chat.Subscriber.
func (h *Sessions) Left(gid string, uids []string) {
	h.each(uids, func(cl *mqtt.Client) { h.unsubscribe(cl, chat.GroupTopic(gid)) })
}

func (h *Sessions) each(uids []string, f func(cl *mqtt.Client)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, uid := range uids {
		for id := range h.byUser[uid] {
			cl, ok := h.srv.Clients.Get(id)
			if !ok || cl.Net.Inline || cl.IsTakenOver() || string(cl.Properties.Username) != uid {
				continue
			}
			f(cl)
		}
	}
}

// subscribe does what Mochi's SUBSCRIBE processing does, minus the SUBACK:
// index the filter and record it in the client's state (which a clean=false
// takeover copies to the new connection). Callers hold h.mu.
func (h *Sessions) subscribe(cl *mqtt.Client, filter string) {
	sub := packets.Subscription{Filter: filter, Qos: 1}
	if h.srv.Topics.Subscribe(cl.ID, sub) {
		atomic.AddInt64(&h.srv.Info.Subscriptions, 1)
	}
	cl.State.Subscriptions.Add(filter, sub)
}

func (h *Sessions) unsubscribe(cl *mqtt.Client, filter string) {
	if h.srv.Topics.Unsubscribe(filter, cl.ID) {
		atomic.AddInt64(&h.srv.Info.Subscriptions, -1)
	}
	cl.State.Subscriptions.Delete(filter)
}
