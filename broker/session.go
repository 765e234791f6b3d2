package broker

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessions is the broker's registry of MQTT sessions by user: which client
// ids each user has (live, or persistent and offline), when each user was
// last connected, which connections have had their subscriptions set up
// (Settle), how many bytes each session holds queued, and when each
// connection's token expires. It is a Mochi hook added before every other
// hook, so a session is indexed before any later hook's
// OnSessionEstablished runs.
//
// mu serialises every server-side subscription change: a session being
// settled and a membership change for the same user never interleave.
type sessions struct {
	mqtt.HookBase
	srv *mqtt.Server
	// maxQueue caps the bytes queued for one session (see queue).
	maxQueue int64
	// Overflowed counts events a session missed because its queue was full.
	overflowed atomic.Int64

	mu sync.Mutex
	// byUser indexes the client ids of each user's sessions, so membership
	// changes do not walk every client.
	byUser map[string]map[string]struct{}
	// lastSeen is when each user was last connected (Unix ms).
	lastSeen map[string]int64
	// settled holds, per client id, the connection whose subscriptions are
	// in place.
	settled map[string]*mqtt.Client
	// live holds, per client id, the connection that made the device
	// online, for the presence events (a takeover keeps the device online).
	live map[string]*mqtt.Client
	// since is when each live connection was established (Unix ms).
	since map[string]int64
	// onPresence are told when a device comes online or goes offline;
	// called under mu, so they must not block.
	onPresence []func(user, clientID string, online bool)
	// interest counts, per topic, the live connections whose
	// server-managed subscriptions include it; counted holds each client
	// id's counted filters. onInterest, if set, is told when a count leaves
	// or reaches zero (under mu).
	interest   map[string]int
	counted    map[string]map[string]struct{}
	onInterest func(topic string, on bool)
	// evicted holds the connections ended because their client id
	// connected to another node (Broker.Evict): they go offline here
	// although their stop cause is a take-over.
	evicted sync.Map // *mqtt.Client -> struct{}

	// queues holds the queue accounting of each session (client id) that
	// has been sent a QoS>0 event; qmu guards the map only. It runs for
	// every event delivered and every acknowledgement, from the fan-out and
	// from every client's read goroutine at once, so each session has its
	// own lock (a single one was the most contended lock of a group
	// fan-out) and its total is read without one.
	qmu    sync.RWMutex
	queues map[string]*queue

	// tmu guards the token deadlines: when each connection's token expires
	// (set at CONNECT), and the timer that ends it then.
	tmu       sync.Mutex
	deadlines map[*mqtt.Client]time.Time
	timers    map[*mqtt.Client]*time.Timer
}

func newSessions(srv *mqtt.Server, maxQueue int64) *sessions {
	return &sessions{srv: srv, maxQueue: maxQueue, byUser: map[string]map[string]struct{}{}, lastSeen: map[string]int64{},
		settled: map[string]*mqtt.Client{}, live: map[string]*mqtt.Client{}, queues: map[string]*queue{},
		interest: map[string]int{}, counted: map[string]map[string]struct{}{}, since: map[string]int64{},
		deadlines: map[*mqtt.Client]time.Time{}, timers: map[*mqtt.Client]*time.Timer{}}
}

func (h *sessions) ID() string { return "mqim-sessions-registry" }

// Provides implements mqtt.Hook. Mochi asks it of every hook at every
// dispatch, several times per delivered event: a switch, not a search.
func (h *sessions) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped:
		return true
	}
	return false
}

// OnSessionEstablished indexes the session (after CONNACK: Mochi has no
// earlier point at which a takeover would not undo a subscription, and a
// disconnect of the same client id still being processed would not remove
// the new entry). The per-user caps therefore count a device from just
// after its CONNACK.
func (h *sessions) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	uid := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.indexLocked(uid, cl.ID)
	h.lastSeen[uid] = time.Now().UnixMilli()
	h.since[cl.ID] = h.lastSeen[uid]
	h.startDeadline(cl)
	// A takeover replaces the live connection: the device stays online.
	if prev := h.live[cl.ID]; prev == nil {
		h.presenceChanged(cl, true)
	}
	h.live[cl.ID] = cl
}

// presenceChanged tells onPresence. Callers hold mu.
func (h *sessions) presenceChanged(cl *mqtt.Client, online bool) {
	uid := string(cl.Properties.Username)
	for _, f := range h.onPresence {
		f(uid, cl.ID, online)
	}
}

// evict marks cl as moved to another node (Broker.Evict), unless it is a
// live connection established at or after before (Unix ms).
func (h *sessions) evict(cl *mqtt.Client, before int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.live[cl.ID] == cl && !cl.Closed() && h.since[cl.ID] >= before {
		return false
	}
	h.evicted.Store(cl, struct{}{})
	return true
}

// movedAway tells whether cl's connection ended because its client id
// connected to another node.
func (h *sessions) movedAway(cl *mqtt.Client) bool {
	_, ok := h.evicted.Load(cl)
	return ok
}

// count records that filter is (on) or is no longer (off) a
// server-managed subscription of client id's live connection. Callers
// hold mu.
func (h *sessions) count(clientID, filter string, on bool) {
	set := h.counted[clientID]
	if on {
		if set == nil {
			set = map[string]struct{}{}
			h.counted[clientID] = set
		}
		if _, ok := set[filter]; ok {
			return
		}
		set[filter] = struct{}{}
		if h.interest[filter]++; h.interest[filter] == 1 && h.onInterest != nil {
			h.onInterest(filter, true)
		}
		return
	}
	if _, ok := set[filter]; !ok {
		return
	}
	delete(set, filter)
	if len(set) == 0 {
		delete(h.counted, clientID)
	}
	if h.interest[filter]--; h.interest[filter] <= 0 {
		delete(h.interest, filter)
		if h.onInterest != nil {
			h.onInterest(filter, false)
		}
	}
}

// uncount drops every filter counted for a client id (its live connection
// ended). Callers hold mu.
func (h *sessions) uncount(clientID string) {
	for f := range h.counted[clientID] {
		h.count(clientID, f, false)
	}
}

// OnDisconnect: a session that ends with its connection leaves the index; a
// persistent one stays until it expires. A connection taken over by a
// reconnect of the same client id changes nothing: the device is still
// online through the new connection (mochi-mqtt/server#483).
func (h *sessions) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.stopDeadline(cl)
	moved := h.movedAway(cl)
	if !moved {
		awaitTakeover(cl)
	}
	if cl.Net.Inline || (takenOver(cl) && !moved) {
		return
	}
	h.mu.Lock()
	h.lastSeen[string(cl.Properties.Username)] = time.Now().UnixMilli()
	// Offline only when this connection is the one that made the device
	// online (or that one is gone without a disconnect of its own) and no
	// newer one holds the client id (the taken-over flag is set a moment
	// after the new connection replaced this one).
	if l := h.live[cl.ID]; l != nil && (l == cl || l.Closed()) {
		if cur, ok := h.srv.Clients.Get(cl.ID); !ok || cur == cl {
			delete(h.live, cl.ID)
			delete(h.since, cl.ID)
			h.uncount(cl.ID)
			h.presenceChanged(cl, false)
		}
	}
	h.mu.Unlock()
	if moved {
		h.evicted.Delete(cl)
	}
	if expire || moved {
		h.forget(cl)
	}
}

// OnClientExpired: a persistent session's expiry ends it.
func (h *sessions) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *sessions) forget(cl *mqtt.Client) {
	uid := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	// A newer connection with the same client id may own the session now.
	if cur, ok := h.srv.Clients.Get(cl.ID); ok && cur != cl {
		return
	}
	h.qmu.Lock()
	delete(h.queues, cl.ID)
	h.qmu.Unlock()
	set := h.byUser[uid]
	if set == nil {
		return
	}
	delete(set, cl.ID)
	delete(h.settled, cl.ID)
	if len(set) == 0 {
		delete(h.byUser, uid)
	}
}

// takeoverWait bounds awaitTakeover.
const takeoverWait = time.Second

// awaitTakeover holds the end of a connection that a reconnect of its
// client id is taking over until Mochi has flagged it so. Mochi closes the
// old connection first and flags it after (inheritClientSession), and once
// the old connection's OnDisconnect hooks return it deletes the client id
// from its map unless flagged: an old connection that ended quickly enough
// deleted the new connection's entry, which then got no event and never
// counted as connected. The new connection's goroutine sets the flag as
// soon as its DISCONNECT to the old one is written, so this waits
// microseconds, and at most takeoverWait. A connection evicted for another
// node is never flagged: its caller skips this.
func awaitTakeover(cl *mqtt.Client) {
	if !errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) || cl.IsTakenOver() {
		return
	}
	deadline := time.Now().Add(takeoverWait)
	for !cl.IsTakenOver() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
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
	if cl.Closed() {
		return
	}
	// The interest of this client id is now exactly its subscriptions (a
	// take-over's connection inherits the counts of the one it replaced).
	now := cl.State.Subscriptions.GetAll()
	for f := range h.counted[cl.ID] {
		if _, ok := now[f]; !ok {
			h.count(cl.ID, f, false)
		}
	}
	for f := range now {
		if strings.HasPrefix(f, "im/") {
			h.count(cl.ID, f, true)
		}
	}
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
	if h.settled[cl.ID] == cl && !cl.Closed() {
		h.count(cl.ID, filter, true)
	}
}

// unsubscribe is the mirror of subscribe. Callers hold mu.
func (h *sessions) unsubscribe(cl *mqtt.Client, filter string) {
	if h.srv.Topics.Unsubscribe(filter, cl.ID) {
		atomic.AddInt64(&h.srv.Info.Subscriptions, -1)
	}
	cl.State.Subscriptions.Delete(filter)
	if h.settled[cl.ID] == cl {
		h.count(cl.ID, filter, false)
	}
}

// ---- connection counts (the per-user caps)

// counts returns how many of uid's sessions other than clientID are
// connected, and how many are persistent (connected or not).
func (h *sessions) counts(uid, clientID string) (connected, persistent int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.byUser[uid] {
		if id == clientID {
			continue // a takeover never counts against a cap
		}
		cl, ok := h.srv.Clients.Get(id)
		if !ok || cl.Net.Inline {
			continue
		}
		if !cl.Closed() {
			connected++
		}
		if isPersistent(cl) {
			persistent++
		}
	}
	return connected, persistent
}

// isPersistent tells whether a client asked for a session that outlives its
// connection (MQTT 3 clean=false, MQTT 5 session expiry > 0).
func isPersistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// ---- token deadlines

// expireAt records when a connection's token expires; the connection is
// ended then (started at session establishment).
func (h *sessions) expireAt(cl *mqtt.Client, t time.Time) {
	h.tmu.Lock()
	h.deadlines[cl] = t
	h.tmu.Unlock()
}

func (h *sessions) startDeadline(cl *mqtt.Client) {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	t, ok := h.deadlines[cl]
	if !ok {
		return
	}
	delete(h.deadlines, cl)
	h.timers[cl] = time.AfterFunc(time.Until(t), func() {
		if !cl.Closed() {
			_ = h.srv.DisconnectClient(cl, packets.ErrMaxConnectTime)
		}
	})
}

func (h *sessions) stopDeadline(cl *mqtt.Client) {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	delete(h.deadlines, cl)
	if t := h.timers[cl]; t != nil {
		t.Stop()
		delete(h.timers, cl)
	}
}

// ---- queued bytes (the per-session cap)

// queue is one session's accounting: the payload bytes of each QoS>0
// event held for it (sent and not acknowledged, or waiting while
// offline), by packet id, and their sum. A session keeps its entry until
// it ends (forget), so that no update is ever made to an entry being
// removed from the map. (An event racing a session's end may make a new
// entry for its client id: the next end of that client id removes it.)
type queue struct {
	mu    sync.Mutex
	sizes map[uint16]int64
	bytes atomic.Int64
	// checked is when reconcile last ran (Unix nanoseconds).
	checked atomic.Int64
}

// queueOf returns a session's accounting, made when create is set (else
// nil if there is none).
func (h *sessions) queueOf(clientID string, create bool) *queue {
	h.qmu.RLock()
	q := h.queues[clientID]
	h.qmu.RUnlock()
	if q != nil || !create {
		return q
	}
	h.qmu.Lock()
	defer h.qmu.Unlock()
	if q = h.queues[clientID]; q == nil {
		q = &queue{sizes: map[uint16]int64{}}
		h.queues[clientID] = q
	}
	return q
}

// OnQosPublish records an event held for a session until acknowledged
// (called again, with the same packet id, when it is resent).
func (h *sessions) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return
	}
	size := int64(len(pk.Payload) + len(pk.TopicName))
	q := h.queueOf(cl.ID, true)
	q.mu.Lock()
	q.bytes.Add(size - q.sizes[pk.PacketID])
	q.sizes[pk.PacketID] = size
	q.mu.Unlock()
}

// OnQosComplete implements mqtt.Hook: an acknowledged event leaves the queue.
func (h *sessions) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.dequeue(cl, pk.PacketID) }

// OnQosDropped implements mqtt.Hook: an expired or cleared event leaves it.
func (h *sessions) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.dequeue(cl, pk.PacketID) }

func (h *sessions) dequeue(cl *mqtt.Client, id uint16) {
	q := h.queueOf(cl.ID, false)
	if q == nil {
		return
	}
	q.mu.Lock()
	if size, ok := q.sizes[id]; ok {
		delete(q.sizes, id)
		q.bytes.Add(-size)
	}
	q.mu.Unlock()
}

// queueFull tells whether a session holds its cap of queued bytes; such a
// session does not get more events until it drains (they are in the store;
// the device catches up), so no session holds more than its cap, however
// slow or absent its device. It counts each event so skipped.
func (h *sessions) queueFull(clientID string) bool {
	full := h.queuedBytes(clientID) >= h.maxQueue
	if full && h.reconcile(clientID) {
		full = h.queuedBytes(clientID) >= h.maxQueue
	}
	if full {
		h.overflowed.Add(1)
	}
	return full
}

// reconcileEvery is how often, at most, reconcile scans a full session.
const reconcileEvery = 100 * time.Millisecond

// reconcile drops from a full session's accounting the events Mochi no
// longer holds for it, and tells whether it ran (at most once per
// reconcileEvery per session). An event the session's full outbound queue
// (mqtt.max_writes_pending) refuses was recorded by OnQosPublish, then
// Mochi rolls its inflight entry back without OnQosDropped, and
// OnPublishDropped is handed the publisher's packet, not the packet id the
// event was given: its bytes would stay counted until the packet id comes
// round again, which it never does once they fill the cap (no event is
// sent to a full session), so the session would get no live event until
// it ended.
func (h *sessions) reconcile(clientID string) bool {
	q := h.queueOf(clientID, false)
	if q == nil {
		return false
	}
	now, last := time.Now().UnixNano(), q.checked.Load()
	if now-last < int64(reconcileEvery) || !q.checked.CompareAndSwap(last, now) {
		return false
	}
	cl, ok := h.srv.Clients.Get(clientID)
	if !ok {
		return false
	}
	// An entry is recorded after its inflight one is set and removed after
	// it is deleted, so one missing from the inflight store is gone for
	// good (or being completed, which finds it removed and does nothing).
	q.mu.Lock()
	for id, size := range q.sizes {
		if _, ok := cl.State.Inflight.Get(id); !ok {
			delete(q.sizes, id)
			q.bytes.Add(-size)
		}
	}
	q.mu.Unlock()
	return true
}

// queuedBytes is what one session holds queued.
func (h *sessions) queuedBytes(clientID string) int64 {
	if q := h.queueOf(clientID, false); q != nil {
		return q.bytes.Load()
	}
	return 0
}
