package broker

import (
	"bytes"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessions is the broker's registry of MQTT sessions by user: which client
// ids each user has (live, or persistent and offline), when each user was
// last connected, and which connections have had their subscriptions set up
// (Settle). It is a Mochi hook added before every other hook, so a session
// is indexed before any later hook's OnSessionEstablished runs.
//
// mu serialises every server-side subscription change: a session being
// settled and a membership change for the same user never interleave.
type sessions struct {
	mqtt.HookBase
	srv *mqtt.Server

	mu sync.Mutex
	// byUser indexes the client ids of each user's sessions, so membership
	// changes do not walk every client.
	byUser map[string]map[string]struct{}
	// lastSeen is when each user was last connected (Unix ms).
	lastSeen map[string]int64
	// settled holds, per client id, the connection whose subscriptions are
	// in place.
	settled map[string]*mqtt.Client
}

func newSessions(srv *mqtt.Server) *sessions {
	return &sessions{srv: srv, byUser: map[string]map[string]struct{}{}, lastSeen: map[string]int64{},
		settled: map[string]*mqtt.Client{}}
}

func (h *sessions) ID() string { return "mqim-sessions-registry" }

func (h *sessions) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired}, []byte{b})
}

// OnSessionEstablished indexes the session (after CONNACK: Mochi has no
// earlier point at which a takeover would not undo a subscription).
func (h *sessions) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	uid := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.byUser[uid]
	if set == nil {
		set = map[string]struct{}{}
		h.byUser[uid] = set
	}
	set[cl.ID] = struct{}{}
	h.lastSeen[uid] = time.Now().UnixMilli()
}

// OnDisconnect: a session that ends with its connection leaves the index; a
// persistent one stays until it expires. A connection taken over by a
// reconnect of the same client id changes nothing: the device is still
// online through the new connection (mochi-mqtt/server#483).
func (h *sessions) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || takenOver(cl) {
		return
	}
	h.mu.Lock()
	h.lastSeen[string(cl.Properties.Username)] = time.Now().UnixMilli()
	h.mu.Unlock()
	if expire {
		h.forget(cl)
	}
}

// OnClientExpired: a persistent session's expiry ends it.
func (h *sessions) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *sessions) forget(cl *mqtt.Client) {
	uid := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.byUser[uid]
	if set == nil {
		return
	}
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

func takenOver(cl *mqtt.Client) bool {
	return cl.IsTakenOver() || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver)
}

// connected tells whether a client id has a live connection. Mochi's client
// map holds offline persistent sessions too; a reconnect replaces the old
// connection's entry before that one closes, so a takeover never shows the
// device offline.
func (h *sessions) connected(clientID string) bool {
	cl, ok := h.srv.Clients.Get(clientID)
	return ok && !cl.Closed() && !cl.Net.Inline
}

// presence returns the client ids of uid connected now, sorted, and when uid
// was last connected (now, if connected).
func (h *sessions) presence(uid string) ([]string, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := []string{}
	for id := range h.byUser[uid] {
		if h.connected(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > 0 {
		return ids, time.Now().UnixMilli()
	}
	return ids, h.lastSeen[uid]
}

// eachSession calls f for every session of the users, live or persistent,
// under mu.
func (h *sessions) eachSession(uids []string, f func(cl *mqtt.Client)) {
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

// settle runs decide under mu with the connection's current subscription
// filters, applies the subscriptions it adds and removes, and marks the
// connection settled.
func (h *sessions) settle(cl *mqtt.Client, decide func(current []string) (add, remove []string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var current []string
	for f := range cl.State.Subscriptions.GetAll() {
		current = append(current, f)
	}
	sort.Strings(current)
	add, remove := decide(current)
	for _, f := range remove {
		h.unsubscribe(cl, f)
	}
	for _, f := range add {
		h.subscribe(cl, f)
	}
	h.settled[cl.ID] = cl
}

// isSettled tells whether the live connection of a client id has been
// settled.
func (h *sessions) isSettled(clientID string) bool {
	cl, ok := h.srv.Clients.Get(clientID)
	h.mu.Lock()
	defer h.mu.Unlock()
	return ok && h.settled[clientID] == cl
}

// subscribe does what Mochi's SUBSCRIBE processing does, minus the SUBACK
// and the hooks: index the filter at QoS 1 and record it in the client's
// state (which a clean=false takeover copies to the new connection).
// Callers hold mu.
func (h *sessions) subscribe(cl *mqtt.Client, filter string) {
	sub := packets.Subscription{Filter: filter, Qos: 1}
	if h.srv.Topics.Subscribe(cl.ID, sub) {
		atomic.AddInt64(&h.srv.Info.Subscriptions, 1)
	}
	cl.State.Subscriptions.Add(filter, sub)
}

// unsubscribe is the mirror of subscribe. Callers hold mu.
func (h *sessions) unsubscribe(cl *mqtt.Client, filter string) {
	if h.srv.Topics.Unsubscribe(filter, cl.ID) {
		atomic.AddInt64(&h.srv.Info.Subscriptions, -1)
	}
	cl.State.Subscriptions.Delete(filter)
}
