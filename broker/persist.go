package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/store"
)

// SessionStore keeps persistent sessions and their positions
// (store.Sessions does).
type SessionStore interface {
	PositionStore
	PutSession(ctx context.Context, s *store.Session) error
	Session(ctx context.Context, clientID string) (*store.Session, error)
	ListSessions(ctx context.Context) ([]store.Session, error)
	DeleteSession(ctx context.Context, clientID string) error
	EndSession(ctx context.Context, s *store.Session) (bool, error)
	EndNodeSessions(ctx context.Context, node string, at int64) (int64, error)
	DeleteExpiredSessions(ctx context.Context, now int64) (int64, error)
}

// PersistOptions configure persistent sessions served from the store.
type PersistOptions struct {
	Store SessionStore
	// Missed reads what a session missed (chat.Service.Missed).
	Missed MissedFunc
	// ReplayMax is the most events one replay sends (mqtt.replay_max).
	ReplayMax int
	// ReplyTopic is a device's reply topic, where sync events go.
	ReplyTopic func(clientID string) string
	// Shared: other nodes serve sessions from the same store (a cluster).
	// Stored sessions are then not brought back at start (another node may
	// serve them now): a reconnect finds its session in the store instead,
	// and expired ones are swept from the store every SweepEvery.
	Shared bool
	// Node is this node's id in the cluster ("" alone): a stored session
	// names the node and the connection serving it, and only that
	// connection's end marks it disconnected.
	Node string
}

// SweepEvery is how often a node of a cluster deletes the expired
// sessions from the store (a node alone expires its own as Mochi does).
const SweepEvery = 10 * time.Minute

// Persist serves persistent sessions from the store (docs/protocol.md,
// "Persistent sessions"): an offline session holds no events; its
// positions are recorded as the device acknowledges; the session itself
// is stored, so it survives a restart; and a reconnect replays what the
// device missed, before live events. Call it once, before Start.
func (b *Broker) Persist(o PersistOptions) error {
	if o.Store == nil || o.Missed == nil || o.ReplayMax < 1 || o.ReplyTopic == nil {
		return errors.New("broker: persist: incomplete options")
	}
	p := &persist{b: b, st: o.Store, missed: o.Missed, max: o.ReplayMax, replyTopic: o.ReplyTopic,
		log: b.log, pos: newPositions(o.Store, b.log), gates: b.gates, shared: o.Shared, node: o.Node,
		stop: make(chan struct{})}
	for _, h := range []mqtt.Hook{p, &positionsHook{p: p.pos}} {
		if err := b.srv.AddHook(h, nil); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	b.ps = p
	return nil
}

// PositionCommits reports how many transactions have written session
// positions and how many chat events persistent sessions acknowledged,
// since start.
func (b *Broker) PositionCommits() (commits, acked int64) {
	if b.ps == nil {
		return 0, 0
	}
	return b.ps.pos.commits.Load(), b.ps.pos.acked.Load()
}

// persist is the Mochi hook of persistent sessions: it stores them
// (StoredClients brings them back at start), orders the resend of what a
// session had in flight, and starts the replay.
type persist struct {
	mqtt.HookBase
	b          *Broker
	st         SessionStore
	missed     MissedFunc
	max        int
	replyTopic func(string) string
	log        *slog.Logger
	pos        *positions
	gates      *gates
	shared     bool
	node       string
	// connected holds when each persistent connection's session was
	// stored as connected (its ConnectedAt), for its end (EndSession).
	connected sync.Map // *mqtt.Client -> int64
	// stop ends the sweeper of a shared store.
	stop     chan struct{}
	stopOnce sync.Once

	// established carries, from OnSessionEstablish to
	// OnSessionEstablished, what the connect found.
	established sync.Map // *mqtt.Client -> connectState
}

type connectState struct {
	existed bool // a persistent session of this client id existed
	present bool // and this connect resumes it
	// discard: a clean start in a cluster, whose session, if one is
	// stored, another node left behind.
	discard bool
	gate    *gate // held while its replay runs
}

func (p *persist) ID() string { return "mqim-persistent-sessions" }

func (p *persist) Provides(b byte) bool {
	switch b {
	case mqtt.StoredClients, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnClientExpired, mqtt.OnStopped, mqtt.OnPublishDropped:
		return true
	}
	return false
}

// OnPublishDropped implements mqtt.Hook: an event a connected session's
// full outbound queue could not take is lost to it (Mochi rolled its
// inflight entry back): the device is told to catch up.
func (p *persist) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	p.pos.droppedEvent(cl.ID, pk.Payload)
	p.b.overflow(cl.ID)
}

func ctx5() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// StoredClients implements mqtt.Hook: the stored sessions that have not
// expired come back as offline sessions, so that a reconnect within the
// expiry finds its session present. Expired ones are deleted. Each comes
// back as an MQTT 5 session whose expiry is what was left of it (a session
// cut by a crash counts as disconnected at this start).
func (p *persist) StoredClients() ([]storage.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if p.shared && p.node != "" {
		// The sessions this node served when it last stopped without
		// recording their ends (a crash) are disconnected since then.
		p.endSessionsOf(ctx, p.node)
	}
	if p.shared {
		go p.sweep()
	}
	all, err := p.st.ListSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("stored sessions: %w", err)
	}
	now := time.Now().UnixMilli()
	var out []storage.Client
	for _, s := range all {
		if s.DisconnectedAt == 0 {
			if p.shared {
				continue // connected to another node, or cut by a crash: its next connect resumes it
			}
			s.DisconnectedAt = now
		}
		if s.Expired(now) {
			if err := p.st.DeleteSession(ctx, s.ClientID); err != nil {
				p.log.Warn("expired session not deleted", "client_id", s.ClientID, "error", err)
			}
			continue
		}
		if p.shared {
			continue // loaded when it reconnects, on whichever node (load)
		}
		left := (s.DisconnectedAt + s.Expiry*1000 - now) / 1000
		out = append(out, storage.Client{ID: s.ClientID, Username: []byte(s.UserID), ProtocolVersion: 5,
			Listener: "stored", Properties: storage.ClientProperties{SessionExpiryInterval: uint32(max(left, 1)),
				SessionExpiryIntervalFlag: true}})
		p.b.reg.index(s.UserID, s.ClientID)
	}
	return out, nil
}

// OnSessionEstablish implements mqtt.Hook. It runs before Mochi takes the
// earlier session of the client id over: when this connect resumes a
// persistent one, the events it has in flight are put in send order for
// Mochi's resend, and live chat events are held back until the replay is
// done (the client is reachable from Mochi's index as soon as it is added).
func (p *persist) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	var st connectState
	if _, ok := p.b.srv.Clients.Get(cl.ID); !ok && p.shared {
		if pk.Connect.Clean {
			st.discard = true
		} else {
			p.load(cl)
		}
	}
	if old, ok := p.b.srv.Clients.Get(cl.ID); ok && !old.Net.Inline && isPersistent(old) {
		st.existed = true
		st.present = !pk.Connect.Clean
	}
	if st.present {
		if old, ok := p.b.srv.Clients.Get(cl.ID); ok {
			orderInflight(old, p.pos.sendOrder(cl.ID))
		}
		st.gate = p.gates.open(cl)
	} else {
		// A gate left by a connection that failed before it was
		// established must not hold this one back.
		p.gates.drop(cl.ID)
	}
	// Entries of connections that ended between the two hooks (a CONNACK
	// that could not be written) are dropped here: the map holds only
	// connects under way.
	p.established.Range(func(k, _ any) bool {
		if k.(*mqtt.Client).Closed() {
			p.established.Delete(k)
		}
		return true
	})
	p.established.Store(cl, st)
}

// load brings a stored session of cl's client id back as an offline
// session (in a cluster, where it may have been served by another node),
// so that Mochi and this hook find it present. A session of another user,
// or an expired one, is not brought back. It costs one read of the store,
// made only by a connect that asks to resume a session this node does not
// hold.
func (p *persist) load(cl *mqtt.Client) {
	ctx, cancel := ctx5()
	defer cancel()
	s, err := p.st.Session(ctx, cl.ID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.log.Warn("session: cannot read it", "client_id", cl.ID, "error", err)
		}
		return
	}
	if s.UserID != string(cl.Properties.Username) || s.Expired(time.Now().UnixMilli()) {
		return
	}
	old := p.b.srv.NewClient(nil, "stored", cl.ID, false)
	old.Properties.Username = []byte(s.UserID)
	old.Properties.ProtocolVersion = 5
	old.Properties.Props = packets.Properties{SessionExpiryInterval: uint32(max(s.Expiry, 1)), SessionExpiryIntervalFlag: true}
	old.Stop(packets.ErrServerShuttingDown)
	p.b.srv.Clients.Add(old)
	p.b.reg.index(s.UserID, cl.ID)
}

// OnSessionEstablished implements mqtt.Hook: it stores the session (a new
// one from now; a resumed one keeps its baseline) and starts the replay of
// a resumed one.
func (p *persist) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	v, ok := p.established.LoadAndDelete(cl)
	if !ok {
		return
	}
	st := v.(connectState)
	uid := string(cl.Properties.Username)
	ctx, cancel := ctx5()
	defer cancel()
	if !st.present {
		p.pos.reset(cl.ID)
		if st.existed || st.discard {
			if err := p.st.DeleteSession(ctx, cl.ID); err != nil {
				p.log.Warn("session: cannot delete the ended one", "client_id", cl.ID, "error", err)
			}
		}
	}
	if !isPersistent(cl) {
		if st.present {
			_ = p.st.DeleteSession(ctx, cl.ID) // resumed, but ends with this connection
		}
		if st.gate != nil {
			go p.replay(cl, st.gate, uid, p.baseline(ctx, cl.ID))
		}
		return
	}
	now := time.Now().UnixMilli()
	s := &store.Session{ClientID: cl.ID, UserID: uid, Expiry: p.expiry(cl), Baseline: now, Node: p.node, ConnectedAt: now}
	if st.present {
		s.Baseline = p.baseline(ctx, cl.ID)
	}
	p.connected.Store(cl, now)
	if err := p.st.PutSession(ctx, s); err != nil {
		// The session still works on this server; a restart would lose it.
		p.log.Warn("session: cannot store it", "client_id", cl.ID, "error", err)
	}
	if st.gate != nil {
		go p.replay(cl, st.gate, uid, s.Baseline)
	}
}

// baseline is when a resumed session began: stored, or, when the store
// has none (it failed), now: the replay then covers the positions only.
func (p *persist) baseline(ctx context.Context, clientID string) int64 {
	s, err := p.st.Session(ctx, clientID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.log.Warn("session: cannot read it", "client_id", clientID, "error", err)
		}
		return time.Now().UnixMilli()
	}
	return s.Baseline
}

// expiry is how long (seconds) cl's session outlives its connection.
func (p *persist) expiry(cl *mqtt.Client) int64 {
	maxExp := int64(p.b.srv.Options.Capabilities.MaximumSessionExpiryInterval)
	if cl.Properties.ProtocolVersion == 5 {
		return min(int64(cl.Properties.Props.SessionExpiryInterval), maxExp)
	}
	return maxExp
}

// OnDisconnect implements mqtt.Hook: a persistent session's end of
// connection is stored (its expiry runs from then) and its positions are
// written at once; a session that ends with its connection is deleted.
func (p *persist) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || cl.Net.Conn == nil {
		return // a session restored from the store, never connected here
	}
	p.gates.closeFor(cl)
	since, _ := p.connected.LoadAndDelete(cl)
	if takenOver(cl) {
		return // the new connection (here, or on another node) carries the session on
	}
	if expire {
		p.pos.reset(cl.ID)
		return
	}
	ctx, cancel := ctx5()
	defer cancel()
	p.pos.flushSoon()
	now := time.Now().UnixMilli()
	connectedAt, _ := since.(int64)
	s := &store.Session{ClientID: cl.ID, UserID: string(cl.Properties.Username), Expiry: p.expiry(cl),
		Baseline: now, DisconnectedAt: now, Node: p.node, ConnectedAt: connectedAt}
	// Only if this connection still owns the stored session: the device may
	// already be connected to another node, whose row this must not end.
	if _, err := p.st.EndSession(ctx, s); err != nil {
		p.log.Warn("session: cannot store its disconnect", "client_id", cl.ID, "error", err)
	}
}

// sweep deletes the expired sessions of a shared store every SweepEvery
// (no node holds those of a crashed one).
func (p *persist) sweep() {
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if n, err := p.st.DeleteExpiredSessions(ctx, time.Now().UnixMilli()); err != nil {
			p.log.Warn("sessions: cannot delete the expired ones", "error", err)
		} else if n > 0 {
			p.log.Info("sessions: deleted expired ones", "sessions", n)
		}
		cancel()
	}
}

// EndSessionsOf marks the stored sessions still connected through node
// as disconnected now (the node is gone, so that they expire), in the
// background. Any node that outlives it may call this; the sessions its
// devices resume elsewhere are connected again by then or soon after.
func (b *Broker) EndSessionsOf(node string) {
	if b.ps == nil || node == "" {
		return
	}
	go func() {
		ctx, cancel := ctx5()
		defer cancel()
		b.ps.endSessionsOf(ctx, node)
	}()
}

// endSessionsOf marks the stored sessions still connected through node
// (gone, or this one before a crash) as disconnected now.
func (p *persist) endSessionsOf(ctx context.Context, node string) {
	if n, err := p.st.EndNodeSessions(ctx, node, time.Now().UnixMilli()); err != nil {
		p.log.Warn("sessions: cannot end those of a node that stopped", "node", node, "error", err)
	} else if n > 0 {
		p.log.Info("sessions: ended those of a node that stopped", "node", node, "sessions", n)
	}
}

// OnClientExpired implements mqtt.Hook: an expired session is deleted
// with its positions. Mochi drops the client from its map only after this
// hook returns, so a reconnect in between would still inherit the expired
// session although the store has none: the client is dropped here first
// (unless a new connection already replaced it), so that once the stored
// session is gone no reconnect finds the old one.
func (p *persist) OnClientExpired(cl *mqtt.Client) {
	if cur, ok := p.b.srv.Clients.Get(cl.ID); ok && cur == cl {
		p.b.srv.Clients.Delete(cl.ID)
	}
	p.pos.reset(cl.ID)
	ctx, cancel := ctx5()
	defer cancel()
	if err := p.st.DeleteSession(ctx, cl.ID); err != nil {
		p.log.Warn("session: cannot delete the expired one", "client_id", cl.ID, "error", err)
	}
}

// OnStopped implements mqtt.Hook: the positions left are written.
func (p *persist) OnStopped() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.pos.close()
}

// overflowQuiet is the least time between two sync events telling one
// session that it missed live events.
const overflowQuiet = 5 * time.Second

// overflow tells a session that missed live events (its queue was full),
// once until it drains and at most once per overflowQuiet: a sync event on
// its reply topic, sent past the cap from a goroutine of its own (so at
// most one per session at a time).
func (b *Broker) overflow(clientID string) {
	if b.ps == nil {
		return
	}
	if _, told := b.overflowed.LoadOrStore(clientID, time.Now()); told {
		return
	}
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return
	}
	go func() {
		if err := b.sendDirect(cl, b.ps.replyTopic(clientID), syncEvent("overflow")); err != nil {
			b.log.Debug("sync event not sent", "client_id", clientID, "error", err)
		}
	}()
}

// index records a session restored from the store in the registry, so the
// per-user caps count it.
func (h *sessions) index(uid, clientID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.indexLocked(uid, clientID)
}

// indexLocked adds clientID to uid's sessions. Callers hold mu.
func (h *sessions) indexLocked(uid, clientID string) {
	set := h.byUser[uid]
	if set == nil {
		set = map[string]struct{}{}
		h.byUser[uid] = set
	}
	set[clientID] = struct{}{}
}
