// Package cluster joins mqim nodes over NATS (docs/cluster.md). Every node
// serves its own MQTT connections and writes to the one shared store; a
// Node carries between them what the store does not: live events for
// devices connected elsewhere, group membership changes (so live
// subscriptions follow on every node), cache invalidations, cluster-wide
// limit charges, "disconnect this user", presence and session take-overs.
//
// A Node stands between the chat service and the node's own broker: it is
// the service's Deliverer, Subscriber, Disconnector and Peers, and it
// answers presence questions (push, the API) for the whole cluster. Without
// a cluster (cluster.nats_url empty) none of this runs: the service talks to
// the broker directly, which is the in-process bus of a single node.
//
// Events are published once per topic, with the NATS connection set not
// to echo a node's own messages back to it. A user's events are routed by
// interest: a node subscribes to a user's subject while a device of that
// user is connected to it, so it receives only its own devices' inbox
// events. Group events go to every node (prefix.g.*), where the broker
// finds the members connected there: a node learns of a new member from a
// control message, and the group's events that follow it (the member's
// "joined" first) are already on their way, so a subscription made on
// hearing of the change would come too late for them. Every node hears
// each group event once, whatever the number of members, and events from
// one node arrive in the order it sent them, the membership change before
// the events that follow it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/config"
)

// Local is this node's MQTT side (broker.Broker is).
type Local interface {
	Deliver(topic string, payload []byte, qos byte) error
	SubscribeUsers(topic string, uids []string)
	UnsubscribeUsers(topic string, uids []string)
	DisconnectUser(uid string)
	Connected(clientID string) bool
	Presence(uid string) (clientIDs []string, lastSeen int64)
	// Evict ends what this node holds of a client id that connected to
	// another node at before (Unix ms).
	Evict(clientID string, before int64)
	// EndSessionsOf marks the stored sessions a gone node served as
	// disconnected, so that they expire (in the background).
	EndSessionsOf(node string)
}

// Service takes the changes other nodes made to what it caches and the
// charges they made to cluster-wide limits (chat.Service does).
type Service interface {
	Forget(kind string, keys []string)
	ForgetAll()
	Charge(limit, key string)
	// CommitRouted commits a message routed to this node (Route) and
	// returns the answer for the node that routed it.
	CommitRouted(ctx context.Context, req []byte) []byte
}

// Options configure a Node. Config, Local and Log are required.
type Options struct {
	Config config.Cluster
	Local  Local
	Log    *slog.Logger
}

// Node is this node's membership of the cluster. Its methods are safe for
// concurrent use; none blocks on the network (NATS publishes are buffered,
// and dropped and counted when the buffer is full during an outage).
type Node struct {
	id     string
	prefix string
	hb     time.Duration
	local  Local
	log    *slog.Logger
	nc     *nats.Conn

	// in carries every message of every subscription to one goroutine, so
	// that messages from one node are handled in the order it sent them
	// (a membership change before the events that follow it).
	in   chan *nats.Msg
	svc  Service
	subs struct {
		sync.Mutex
		m map[string]*nats.Subscription // by subject
	}
	peers *peers
	// localDev holds this node's connected devices (client id → user);
	// localMu also orders their presence messages with the lists sent to a
	// hello, so that no change is overtaken by an older list.
	localMu  sync.Mutex
	localDev map[string]string

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	published, received, dropped, outages, routed atomic.Int64
}

// inbound is how many messages may wait for the node's goroutine; beyond
// it NATS drops them (counted), and the devices concerned catch up.
const inbound = 1 << 16

// New connects to NATS (retrying in the background when it cannot yet: the
// node then starts not ready) and returns a Node that handles nothing
// until Start.
func New(o Options) (*Node, error) {
	c := o.Config
	n := &Node{id: c.NodeID, prefix: c.Prefix, hb: c.Heartbeat, local: o.Local, log: o.Log,
		in: make(chan *nats.Msg, inbound), stop: make(chan struct{})}
	if n.id == "" {
		n.id = defaultNodeID()
	}
	n.subs.m = map[string]*nats.Subscription{}
	n.localDev = map[string]string{}
	n.peers = newPeers()
	opts := []nats.Option{
		nats.Name("mqim " + n.id),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// A lost NATS is noticed within a few seconds, not at the default
		// two minutes.
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if c.IsClosed() {
				return // Close, not an outage
			}
			n.outages.Add(1)
			n.log.Warn("cluster: NATS connection lost: serving this node's devices only", "node", n.id, "error", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { n.reconnected(c) }),
		// Only when the first connect had to be retried (Start says hello
		// otherwise); the handler may run before New has n.nc set.
		nats.ConnectHandler(func(c *nats.Conn) {
			n.log.Info("cluster: connected to NATS", "node", n.id)
			n.helloOn(c, "")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.dropped.Add(1)
				return
			}
			n.log.Warn("cluster: NATS error", "error", err)
		}),
	}
	switch {
	case c.NATSUser != "":
		opts = append(opts, nats.UserInfo(c.NATSUser, c.NATSPassword))
	case c.NATSToken != "":
		opts = append(opts, nats.Token(c.NATSToken))
	case c.NATSCreds != "":
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	case c.NATSNKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NATSNKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: nats_nkey_file: %w", err)
		}
		opts = append(opts, opt)
	}
	if c.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSTLSCA))
	}
	if c.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSTLSCert, c.NATSTLSKey))
	}
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats: %w", err)
	}
	n.nc = nc
	return n, nil
}

// defaultNodeID is the host name (dots made underscores) and a random
// suffix.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return strings.ReplaceAll(host, ".", "_") + "-" + hex.EncodeToString(b)
}

// ID is this node's id.
func (n *Node) ID() string { return n.id }

// Start begins handling what the other nodes send, telling svc of their
// changes, and announces this node. Call it once, before the broker
// accepts connections.
func (n *Node) Start(svc Service) error {
	n.svc = svc
	for _, s := range []string{n.subject("ctl"), n.subject("presence"), n.subject("hb"), n.subject("hello"), n.subject("g.*")} {
		if err := n.subscribe(s); err != nil {
			return err
		}
	}
	if err := n.serveCommits(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.wg.Add(2)
	go n.loop()
	go n.beat()
	n.hello("")
	return nil
}

// Close stops the node: it tells the others it is leaving (its devices
// were disconnected by the broker's close before), and closes the NATS
// connection after flushing what it queued.
func (n *Node) Close() {
	n.once.Do(func() {
		close(n.stop)
		n.wg.Wait()
		data, _ := json.Marshal(heartbeat{Node: n.id, Bye: true})
		n.publish(n.subject("hb"), data)
		_ = n.nc.Flush()
		n.nc.Close()
	})
}

// Ready is nil while NATS is connected, else why the node is not ready
// (it keeps serving its own devices).
func (n *Node) Ready() error {
	if !n.nc.IsConnected() {
		return errors.New("cluster: NATS disconnected")
	}
	return nil
}

// Stats are the node's counters (the /metrics of a cluster).
type Stats struct {
	Connected                    bool
	Peers                        int
	Published, Received, Dropped int64
	Outages                      int64
	// Routed counts the messages this node handed to their
	// conversation's owner.
	Routed int64
}

// Stats returns the node's counters since start.
func (n *Node) Stats() Stats {
	return Stats{Connected: n.nc.IsConnected(), Peers: n.peers.count(), Published: n.published.Load(),
		Received: n.received.Load(), Dropped: n.dropped.Load(), Outages: n.outages.Load(), Routed: n.routed.Load()}
}

// reconnected runs when NATS is back after an outage: the changes and
// presence the others sent meanwhile are lost, so the caches are
// dropped and the peers asked again who is connected.
func (n *Node) reconnected(c *nats.Conn) {
	n.log.Info("cluster: NATS connection back", "node", n.id)
	if n.svc != nil {
		n.svc.ForgetAll()
	}
	n.helloOn(c, "")
}

// ---- subjects

// subject is prefix.rest.
func (n *Node) subject(rest string) string { return n.prefix + "." + rest }

// topicSubject maps a chat topic (a user's inbox, a group) to its subject,
// or "" for a topic that concerns this node's devices only (reply
// topics). Ids may hold dots, which NATS takes as token separators: they
// travel as '~', which ids never hold.
func (n *Node) topicSubject(topic string) string {
	t, ok := chat.ParseTopic(topic)
	if !ok {
		return ""
	}
	kind := "u"
	if t.IsGroup() {
		kind = "g"
	}
	return n.prefix + "." + kind + "." + strings.ReplaceAll(t.ID, ".", "~")
}

// subjectTopic is topicSubject's inverse.
func (n *Node) subjectTopic(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, n.prefix+".")
	if !ok || len(rest) < 3 || rest[1] != '.' {
		return "", false
	}
	id := strings.ReplaceAll(rest[2:], "~", ".")
	switch rest[0] {
	case 'u':
		return chat.UserTopic(id), true
	case 'g':
		return chat.GroupTopic(id), true
	}
	return "", false
}

func (n *Node) subscribe(subject string) error {
	n.subs.Lock()
	defer n.subs.Unlock()
	if n.subs.m[subject] != nil {
		return nil
	}
	sub, err := n.nc.ChanSubscribe(subject, n.in)
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", subject, err)
	}
	// The shared channel is the limit; NATS's own per-subscription limits
	// would drop sooner.
	_ = sub.SetPendingLimits(-1, -1)
	n.subs.m[subject] = sub
	return nil
}

func (n *Node) unsubscribe(subject string) {
	n.subs.Lock()
	defer n.subs.Unlock()
	if sub := n.subs.m[subject]; sub != nil {
		_ = sub.Unsubscribe()
		delete(n.subs.m, subject)
	}
}

// Interest is told by the broker when a chat topic gains its first live
// subscriber on this node or loses its last (broker.Broker.OnInterest): for
// a user's inbox the node then subscribes to its subject, or stops (every
// node has all groups' subjects). Called under the broker's lock: it only
// queues the subscription with the NATS client.
func (n *Node) Interest(topic string, on bool) {
	t, ok := chat.ParseTopic(topic)
	if !ok || t.IsGroup() {
		return
	}
	subject := n.topicSubject(topic)
	if !on {
		n.unsubscribe(subject)
		return
	}
	if err := n.subscribe(subject); err != nil {
		n.log.Warn("cluster: cannot subscribe", "topic", topic, "error", err)
	}
}

// ---- what the chat service calls

var (
	_ chat.Deliverer    = (*Node)(nil)
	_ chat.Subscriber   = (*Node)(nil)
	_ chat.Disconnector = (*Node)(nil)
	_ chat.Peers        = (*Node)(nil)
)

// Deliver delivers an event to this node's devices and publishes it for
// the other nodes: a group's to every node, a user's only while another
// node has a device of that user (as presence tells: the echo of a 1:1
// message to a sender whose devices are all here is not published).
func (n *Node) Deliver(topic string, payload []byte, qos byte) error {
	err := n.local.Deliver(topic, payload, qos)
	if t, ok := chat.ParseTopic(topic); ok && !t.IsGroup() && !n.peers.hasUser(t.ID) {
		return err
	}
	if subject := n.topicSubject(topic); subject != "" {
		data := make([]byte, 1+len(payload))
		data[0] = qos
		copy(data[1:], payload)
		n.publish(subject, data)
	}
	return err
}

// SubscribeUsers subscribes the users' sessions to topic here and on every
// other node.
func (n *Node) SubscribeUsers(topic string, uids []string) {
	n.local.SubscribeUsers(topic, uids)
	n.control(control{Op: opSubscribe, Topic: topic, Users: uids})
}

// UnsubscribeUsers is SubscribeUsers' mirror.
func (n *Node) UnsubscribeUsers(topic string, uids []string) {
	n.local.UnsubscribeUsers(topic, uids)
	n.control(control{Op: opUnsubscribe, Topic: topic, Users: uids})
}

// DisconnectUser ends the user's connections on every node.
func (n *Node) DisconnectUser(uid string) {
	n.local.DisconnectUser(uid)
	n.control(control{Op: opDisconnect, Users: []string{uid}})
}

// Forgot tells the other nodes to drop what they cache of keys.
func (n *Node) Forgot(kind string, keys []string) {
	n.control(control{Op: opForget, Kind: kind, Keys: keys})
}

// Charged tells the other nodes to charge a cluster-wide limit.
func (n *Node) Charged(limit, key string) {
	n.control(control{Op: opCharge, Kind: limit, Keys: []string{key}})
}

// ---- control messages

const (
	opSubscribe   = "sub"
	opUnsubscribe = "unsub"
	opDisconnect  = "disconnect"
	opForget      = "forget"
	opCharge      = "charge"
)

// control is a message on prefix.ctl. Unknown ops are ignored, so that a
// newer node's messages do no harm to an older one.
type control struct {
	Op    string   `json:"op"`
	Topic string   `json:"topic,omitempty"`
	Users []string `json:"users,omitempty"`
	Kind  string   `json:"kind,omitempty"`
	Keys  []string `json:"keys,omitempty"`
}

func (n *Node) control(c control) {
	data, _ := json.Marshal(c)
	n.publish(n.subject("ctl"), data)
}

func (n *Node) publish(subject string, data []byte) { n.publishOn(n.nc, subject, data) }

func (n *Node) publishOn(c *nats.Conn, subject string, data []byte) {
	if err := c.Publish(subject, data); err != nil {
		n.dropped.Add(1)
		return
	}
	n.published.Add(1)
}

// loop handles every message the node's subscriptions receive, in order.
func (n *Node) loop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case m := <-n.in:
			n.received.Add(1)
			n.handle(m)
		}
	}
}

func (n *Node) handle(m *nats.Msg) {
	switch m.Subject {
	case n.subject("ctl"):
		var c control
		if json.Unmarshal(m.Data, &c) != nil {
			return
		}
		n.apply(c)
	case n.subject("presence"):
		n.presenceMsg(m.Data)
	case n.subject("hb"):
		n.heartbeatMsg(m.Data)
	case n.subject("hello"):
		n.helloMsg(m.Data)
	default:
		topic, ok := n.subjectTopic(m.Subject)
		if !ok || len(m.Data) < 1 {
			return
		}
		if err := n.local.Deliver(topic, m.Data[1:], m.Data[0]&3); err != nil {
			n.log.Warn("cluster: deliver failed", "topic", topic, "error", err)
		}
	}
}

func (n *Node) apply(c control) {
	switch c.Op {
	case opSubscribe:
		n.local.SubscribeUsers(c.Topic, c.Users)
	case opUnsubscribe:
		n.local.UnsubscribeUsers(c.Topic, c.Users)
	case opDisconnect:
		for _, uid := range c.Users {
			n.local.DisconnectUser(uid)
		}
	case opForget:
		n.svc.Forget(c.Kind, c.Keys)
	case opCharge:
		for _, k := range c.Keys {
			n.svc.Charge(c.Kind, k)
		}
	}
}
