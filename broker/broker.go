// Package broker builds mqim's embedded Mochi MQTT server: listeners (TCP,
// TLS, WebSocket) with a CONNECT deadline, capabilities sized for a chat
// server, and the shared logger. It owns connectivity and offers the rest of
// mqim what it needs of MQTT, so that nothing else reaches into Mochi's
// internals: deliver an event to a topic, tell whether a device is
// connected and who is online, keep users' sessions subscribed to the topics
// they may read, and end connections.
package broker

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/config"
)

// Broker wraps the Mochi server. Its methods are safe for concurrent use.
type Broker struct {
	srv *mqtt.Server
	log *slog.Logger
	reg *sessions
	// replier publishes replies that carry correlation data (Reply).
	replier *mqtt.Client
	// gates hold live events back from sessions being replayed to; ps
	// serves persistent sessions from the store (nil until Persist).
	gates *gates
	ps    *persist
	// overflowed holds the client ids told to catch up, and when (one sync
	// event per overflow, at most one per overflowQuiet).
	overflowed sync.Map
	// Per-user caps (Admit); countRemote counts devices on other nodes.
	maxDevices, maxSessions int
	countRemote             func(uid, clientID string) int
	mu                      sync.Mutex
	lns                     []listeners.Listener
	closed                  bool
}

// New builds the server and its listeners from cfg; nothing listens until
// Start. Hooks are added with AddHook before Start; they run after the
// broker's own (its session registry among them).
func New(cfg config.MQTT, log *slog.Logger) (*Broker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	// Inbound QoS 2 is accepted with its whole handshake (the chat hook
	// answers a refused one with a PUBREC itself: mochi-mqtt/server#510);
	// mqim's own events go out at QoS 1.
	caps.MaximumQos = 2
	// A PUBACK is a bare success or a refusal, never an echo of the
	// publisher's properties.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// The outbound queue is a channel allocated at its full capacity for
	// every connection (8 bytes a slot): mqtt.max_writes_pending is the
	// largest per-connection cost mqim can choose (see its default).
	caps.MaximumClientWritesPending = int32(cfg.MaxWritesPending)
	caps.MaximumInflight = cfg.MaxInflight
	caps.ReceiveMaximum = cfg.ReceiveMaximum
	caps.MaximumSessionExpiryInterval = uint32(cfg.MaxSessionExpiry / time.Second)
	caps.MaximumMessageExpiryInterval = int64(cfg.MaxMessageExpiry / time.Second)
	if cfg.MaxClients > 0 {
		caps.MaximumClients = cfg.MaxClients
	}
	// Nothing a client publishes on im/ is retained: the chat hook consumes
	// every such publish (it is never delivered as-is). Shared subscriptions
	// on im/ are refused by the ACL hook. Both stay available for
	// plain-broker topics.
	b := &Broker{log: log, gates: newGates(), maxDevices: cfg.MaxDevicesPerUser, maxSessions: cfg.MaxSessionsPerUser}
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient:           true,
		Capabilities:           caps,
		Logger:                 slog.New(mochiHandler{log.Handler()}),
		SysTopicResendInterval: int64(cfg.SysTopicInterval / time.Second),
		// Memory per connection (docs/operations.md, "Memory per
		// connection"): the read buffer is allocated for every connection,
		// idle or not, for its lifetime; 1 KiB holds any usual chat packet
		// whole, and a bigger one (up to mqtt.max_packet_size) costs no
		// more than a few reads: Mochi reads a packet's body with
		// io.ReadFull, which bypasses the buffer once it is empty. The
		// write "buffer" is only a threshold: Mochi allocates it when writes
		// queue up behind one another and frees it at each flush, so a
		// larger one costs idle connections nothing and batches busy ones.
		ClientNetWriteBufferSize: 4096,
		ClientNetReadBufferSize:  1024,
	})
	b.reg = newSessions(b.srv, cfg.MaxSessionQueueBytes)
	b.replier = newReplier(b.srv)
	for _, h := range []mqtt.Hook{b.reg, &protocolHook{maxPacket: cfg.MaxPacketSize}} {
		if err := b.srv.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	var tlsCfg *tls.Config
	if cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("broker: tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	add := func(l listeners.Listener) {
		b.lns = append(b.lns, &deadlineListener{Listener: l, timeout: cfg.ConnectTimeout, srv: b.srv, log: log})
	}
	if cfg.Addr != "" {
		add(listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Addr}))
	}
	if cfg.TLSAddr != "" {
		add(listeners.NewTCP(listeners.Config{ID: "tls", Address: cfg.TLSAddr, TLSConfig: tlsCfg}))
	}
	if cfg.WSAddr != "" {
		add(newWebsocket("ws", cfg.WSAddr, nil, cfg.ConnectTimeout, cfg.MaxPacketSize))
	}
	return b, nil
}

// OnPresence adds f to the listeners told when a device (its client id)
// comes online (its session is established) or goes offline (its
// connection ends, unless a reconnect of the same client id here took it
// over). f is called under the registry's lock, in the order of the
// changes: it must not block. Call before Start.
func (b *Broker) OnPresence(f func(user, clientID string, online bool)) {
	b.reg.onPresence = append(b.reg.onPresence, f)
}

// OnInterest sets f to be told when a chat topic gains its first live
// connection subscribed to it here (on) and when it loses its last (off):
// what a node of a cluster needs events of from the others. Only the
// subscriptions the server manages count (inboxes, groups, reply topics).
// f is called under the registry's lock: it must not block. Call before
// Start.
func (b *Broker) OnInterest(f func(topic string, on bool)) { b.reg.onInterest = f }

// CountRemote sets f to count uid's devices connected to other nodes (but
// clientID), so that mqtt.max_devices_per_user holds across a cluster.
// Call before Start.
func (b *Broker) CountRemote(f func(uid, clientID string) int) { b.countRemote = f }

// Evict ends whatever this node holds of a client id that has connected to
// another node of the cluster: a live connection is closed (MQTT 5
// DISCONNECT 0x8E Session taken over) and an offline persistent session is
// dropped, both without touching the stored session, which the other node
// now serves (so it neither expires nor is rewritten here). A live
// connection established here at or after before (Unix ms; the other
// node's connect) is newer and stays. It may block on writing the
// DISCONNECT.
func (b *Broker) Evict(clientID string, before int64) {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Net.Inline || !b.reg.evict(cl, before) {
		return
	}
	if !cl.Closed() {
		_ = b.srv.DisconnectClient(cl, packets.ErrSessionTakenOver)
	}
	if cur, ok := b.srv.Clients.Get(clientID); ok && cur == cl {
		b.srv.Clients.Delete(clientID)
	}
	b.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	b.gates.drop(clientID)
	if b.ps != nil {
		b.ps.pos.flushSoon()
	}
	b.reg.forget(cl)
}

// AddHook registers a Mochi hook; call before Start.
func (b *Broker) AddHook(h mqtt.Hook, config any) error { return b.srv.AddHook(h, config) }

// Start opens the listeners and starts serving. It does not block.
func (b *Broker) Start() error {
	for _, l := range b.lns {
		if err := b.srv.AddListener(l); err != nil {
			return fmt.Errorf("broker: listen %s: %w", l.ID(), err)
		}
	}
	return b.srv.Serve()
}

// Addr returns the bound address of the listener with the given id ("tcp",
// "tls", "ws"), or "" if there is none.
func (b *Broker) Addr(id string) string {
	for _, l := range b.lns {
		if l.ID() == id {
			return l.Address()
		}
	}
	return ""
}

// Listening tells whether the broker has been started and not closed.
func (b *Broker) Listening() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed && len(b.lns) > 0
}

// Close disconnects everyone and stops the listeners. Safe to call twice.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.srv.Close()
}

// Deliver publishes payload on topic from the server itself, at qos, to every
// subscriber the ACL lets read it. It runs the fan-out synchronously in the
// caller's goroutine but never blocks on a slow subscriber (Mochi drops
// instead, and the store remains the source of truth).
func (b *Broker) Deliver(topic string, payload []byte, qos byte) error {
	return b.gates.delivering(payload, func() error { return b.srv.Publish(topic, payload, false, qos) })
}

// Connected tells whether a device (client id) has a live connection. It
// is the one answer to that question in mqim (push, presence, tests).
func (b *Broker) Connected(clientID string) bool { return b.reg.connected(clientID) }

// ClientsConnected is how many MQTT connections are open.
func (b *Broker) ClientsConnected() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// Presence returns the client ids of uid's devices connected now, sorted,
// and when uid was last connected to this server (Unix ms; now when
// connected, 0 when never seen).
func (b *Broker) Presence(uid string) (clientIDs []string, lastSeen int64) {
	return b.reg.presence(uid)
}

// DisconnectUser closes every live connection of user uid.
func (b *Broker) DisconnectUser(uid string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() || string(cl.Properties.Username) != uid {
			continue
		}
		_ = b.srv.DisconnectClient(cl, packets.ErrAdministrativeAction)
	}
}

// DisconnectClient ends one connection, telling an MQTT 5 client why.
func (b *Broker) DisconnectClient(cl *mqtt.Client, why packets.Code) error {
	return b.srv.DisconnectClient(cl, why)
}

// SubscribeUsers subscribes every session of the users (live, and stored
// persistent ones, which then queue) to topic at QoS 1.
func (b *Broker) SubscribeUsers(topic string, uids []string) {
	b.reg.eachSession(uids, func(cl *mqtt.Client) { b.reg.subscribe(cl, topic) })
}

// UnsubscribeUsers removes topic from every session of the users.
func (b *Broker) UnsubscribeUsers(topic string, uids []string) {
	b.reg.eachSession(uids, func(cl *mqtt.Client) { b.reg.unsubscribe(cl, topic) })
}

// Settle sets up the subscriptions of a just-established session: decide is
// called with the connection's current filters and returns the filters to
// subscribe (at QoS 1) and to remove. It runs under the lock that
// SubscribeUsers and UnsubscribeUsers take, so a membership change applied
// while the caller read what it wants is not undone, provided decide checks
// the current membership (it must not block for long: it holds every
// subscription change of the server). Call it from OnSessionEstablished.
func (b *Broker) Settle(cl *mqtt.Client, decide func(current []string) (add, remove []string)) {
	b.reg.settle(cl, decide)
}

// Admit applies the per-user caps to a connecting client of user uid: an
// error (saying which cap) when uid already has mqtt.max_devices_per_user
// devices connected, or the client asks for a persistent session and uid
// has mqtt.max_sessions_per_user of them. A reconnect of the same client id
// is a takeover and never counts.
func (b *Broker) Admit(cl *mqtt.Client, uid string) error {
	connected, persistent := b.reg.counts(uid, cl.ID)
	if b.countRemote != nil {
		connected += b.countRemote(uid, cl.ID)
	}
	if connected >= b.maxDevices {
		return fmt.Errorf("%d devices connected, the most one user may have", connected)
	}
	if isPersistent(cl) && persistent >= b.maxSessions {
		return fmt.Errorf("%d persistent sessions, the most one user may have", persistent)
	}
	return nil
}

// ExpireAt ends a connection when its token expires, at t (MQTT 5
// DISCONNECT 0xA0 Maximum connect time; 3.1.1 closed). Call it while the
// CONNECT is processed; the timer runs from session establishment until the
// connection ends.
func (b *Broker) ExpireAt(cl *mqtt.Client, t time.Time) { b.reg.expireAt(cl, t) }

// RefuseConnect answers a CONNECT with a refusal: why is an MQTT 5 reason
// code, sent to a 3.1.1 client as the matching 3.1.1 return code.
func (b *Broker) RefuseConnect(cl *mqtt.Client, why packets.Code) error {
	return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack},
		ReasonCode: why.Code, Properties: packets.Properties{ReasonString: why.Reason}})
}

// RefuseQoS2 answers an MQTT 5 QoS 2 publish with a PUBREC carrying the
// refusal, which ends its exchange (Mochi would answer a PUBACK:
// mochi-mqtt/server#510).
func (b *Broker) RefuseQoS2(cl *mqtt.Client, pk packets.Packet, why packets.Code) error {
	return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID,
		ReasonCode: why.Code, Properties: packets.Properties{ReasonString: why.Reason}})
}

// Deliverable tells whether an event may be queued for a session now. Not
// when the session is offline: a persistent session holds no copies, it is
// replayed from the store when it reconnects. Not while a reconnected
// session's replay runs (a live chat event would overtake it; the replay
// reads it from the store), nor a chat event the replay already sent. And
// not when the session holds mqtt.max_session_queue_bytes already (the
// event is in the store and the device catches up: it is told so once per
// overflow, with a sync event on its reply topic). Mochi's only
// per-recipient check before it queues an event is the read ACL, so the
// ACL hook asks this there; each overflow refusal is counted in
// Overflowed.
func (b *Broker) Deliverable(clientID string) bool {
	return b.gates.deliverable(clientID) && b.DeliverableReply(clientID)
}

// DeliverableReply is Deliverable for a device's reply topic, whose events
// (answers, sync events) are not in the store: never held back by a
// replay.
func (b *Broker) DeliverableReply(clientID string) bool {
	if !b.reg.connected(clientID) {
		return false
	}
	if b.reg.queueFull(clientID) {
		b.overflow(clientID)
		return false
	}
	if at, ok := b.overflowed.Load(clientID); ok && time.Since(at.(time.Time)) > overflowQuiet {
		b.overflowed.Delete(clientID) // drained: a later overflow is told again
	}
	return true
}

// QueuedBytes is how many bytes of events one session holds queued.
func (b *Broker) QueuedBytes(clientID string) int64 { return b.reg.queuedBytes(clientID) }

// Overflowed counts events that sessions missed because their queue was at
// its cap (mqtt.max_session_queue_bytes).
func (b *Broker) Overflowed() int64 { return b.reg.overflowed.Load() }

// Settled tells whether the live connection of a client id has had its
// subscriptions set up by Settle (they are made just after CONNACK).
func (b *Broker) Settled(clientID string) bool { return b.reg.isSettled(clientID) }

// deadlineListener closes connections that do not complete CONNECT in time.
// It wraps the Mochi listener rather than the net.Listener because the
// WebSocket upgrade clears deadlines set on the raw socket; Mochi replaces
// the deadline with the keepalive once CONNECT is read.
//
// It also owns closing its connections, working around two Mochi v2.7.9
// shutdown bugs: the CloseFn Mochi passes lists clients with
// Clients.GetByListener, which takes the read lock twice and deadlocks
// Server.Close against a concurrent connect or disconnect
// (mochi-mqtt/server#488); and Mochi counts connections with a WaitGroup
// whose Add runs on the connection's goroutine, racing with the Wait in
// Server.Close. Close therefore disconnects the clients itself, closes the
// connections still before CONNECT, and returns only when every connection
// it let through has ended, so Mochi's Wait finds nothing left to wait for.
type deadlineListener struct {
	listeners.Listener
	timeout time.Duration
	srv     *mqtt.Server
	log     *slog.Logger

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
	active  sync.WaitGroup // Add under mu while !closing, so before Wait
}

// Close implements listeners.Listener.
func (l *deadlineListener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(func(id string) {
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Net.Inline && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.active.Wait()
}

// Serve implements listeners.Listener.
func (l *deadlineListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			return c.Close()
		}
		if l.conns == nil {
			l.conns = map[net.Conn]struct{}{}
		}
		l.conns[c] = struct{}{}
		l.active.Add(1)
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			l.active.Done()
		}()
		_ = c.SetDeadline(time.Now().Add(l.timeout))
		if err := establish(id, c); err != nil {
			// A connection's end is routine (EOF, a silent client, a refused
			// CONNECT the auth hook logged): Mochi's listeners would log
			// every one of them at WARN.
			l.log.Debug("mqtt connection ended", "listener", id, "error", err)
		}
		return nil
	})
}
