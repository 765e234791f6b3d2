package cluster

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Presence across the cluster. Every node tells the others each device
// that comes online or goes offline on it (prefix.presence), beats every
// cluster.heartbeat with how many devices it has (prefix.hb), and answers
// a hello (prefix.hello, sent by a node that starts or comes back from a
// NATS outage, or that hears a node it does not know or whose count
// differs from what it holds) with the full list of its devices. A node
// silent for three heartbeats is gone: its devices are offline.

// peers is what this node knows of the others' devices.
type peers struct {
	mu sync.Mutex
	// nodes by id.
	nodes map[string]*peer
	// byUser: user → client id → the node it is connected to.
	byUser map[string]map[string]string
	// lastSeen: when a user's last device on another node went offline.
	lastSeen map[string]int64
}

type peer struct {
	devices map[string]string // client id → user
	beat    time.Time
	// off counts the heartbeats in a row whose count differed from
	// len(devices).
	off int
}

func newPeers() *peers {
	return &peers{nodes: map[string]*peer{}, byUser: map[string]map[string]string{}, lastSeen: map[string]int64{}}
}

func (p *peers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.nodes)
}

// node returns the peer of id, made if new (and reports whether it was).
// Callers hold mu.
func (p *peers) node(id string) (*peer, bool) {
	pr := p.nodes[id]
	if pr != nil {
		return pr, false
	}
	pr = &peer{devices: map[string]string{}, beat: time.Now()}
	p.nodes[id] = pr
	return pr, true
}

// set records a device online (or offline) on node id. Callers hold mu.
func (p *peers) set(pr *peer, id, clientID, user string, online bool) {
	if online {
		pr.devices[clientID] = user
		m := p.byUser[user]
		if m == nil {
			m = map[string]string{}
			p.byUser[user] = m
		}
		m[clientID] = id
		return
	}
	user, ok := pr.devices[clientID]
	if !ok {
		return
	}
	delete(pr.devices, clientID)
	if m := p.byUser[user]; m != nil && m[clientID] == id {
		delete(m, clientID)
		if len(m) == 0 {
			delete(p.byUser, user)
		}
	}
	p.lastSeen[user] = time.Now().UnixMilli()
}

// clear drops every device of a node (gone, or about to send its list).
// Callers hold mu.
func (p *peers) clear(id string, pr *peer) {
	for c, u := range pr.devices {
		p.set(pr, id, c, u, false)
	}
}

// presenceMsg is a message on prefix.presence: one device's change, or a
// part of a node's list (Reset on its first part).
type presenceMsg struct {
	Node    string      `json:"node"`
	Client  string      `json:"client,omitempty"`
	User    string      `json:"user,omitempty"`
	Online  bool        `json:"online,omitempty"`
	At      int64       `json:"at,omitempty"` // when it came online (Unix ms)
	Reset   bool        `json:"reset,omitempty"`
	Devices [][2]string `json:"devices,omitempty"` // [client id, user]
}

// heartbeat is a message on prefix.hb. Bye is a node's last: it is
// stopping (its devices were disconnected), so the others drop it at once
// rather than after three silent heartbeats, and the groups it committed
// move to them.
type heartbeat struct {
	Node    string `json:"node"`
	Devices int    `json:"devices"`
	Bye     bool   `json:"bye,omitempty"`
}

// helloMsg asks To (every node when empty) for its devices.
type helloMsg struct {
	Node string `json:"node"`
	To   string `json:"to,omitempty"`
}

// LocalPresence is told by the broker of this node's devices coming online
// and going offline (broker.Broker.OnPresence); it tells the others. A
// device coming online here also ends its session on any other node
// (the take-over of its client id).
func (n *Node) LocalPresence(user, clientID string, online bool) {
	m := presenceMsg{Node: n.id, Client: clientID, User: user, Online: online}
	n.localMu.Lock()
	defer n.localMu.Unlock()
	if online {
		m.At = time.Now().UnixMilli()
		n.localDev[clientID] = user
	} else {
		delete(n.localDev, clientID)
	}
	data, _ := json.Marshal(m)
	n.publish(n.subject("presence"), data)
}

func (n *Node) presenceMsg(data []byte) {
	var m presenceMsg
	if json.Unmarshal(data, &m) != nil || m.Node == "" || m.Node == n.id {
		return
	}
	n.peers.mu.Lock()
	pr, _ := n.peers.node(m.Node)
	pr.beat = time.Now()
	if m.Reset {
		n.peers.clear(m.Node, pr)
	}
	for _, d := range m.Devices {
		n.peers.set(pr, m.Node, d[0], d[1], true)
	}
	if m.Client != "" {
		n.peers.set(pr, m.Node, m.Client, m.User, m.Online)
	}
	n.peers.mu.Unlock()
	if m.Client != "" && m.Online {
		// Writing the DISCONNECT may take a while: not on the loop.
		go n.local.Evict(m.Client, m.At)
	}
}

func (n *Node) heartbeatMsg(data []byte) {
	var h heartbeat
	if json.Unmarshal(data, &h) != nil || h.Node == "" || h.Node == n.id {
		return
	}
	n.peers.mu.Lock()
	if h.Bye {
		if pr := n.peers.nodes[h.Node]; pr != nil {
			n.peers.clear(h.Node, pr)
			delete(n.peers.nodes, h.Node)
		}
		n.peers.mu.Unlock()
		n.log.Info("cluster: node left", "node", h.Node)
		return
	}
	pr, fresh := n.peers.node(h.Node)
	pr.beat = time.Now()
	ask := fresh
	if len(pr.devices) != h.Devices {
		// Two beats in a row: a change in flight explains one.
		if pr.off++; pr.off >= 2 {
			ask, pr.off = true, 0
		}
	} else {
		pr.off = 0
	}
	n.peers.mu.Unlock()
	if ask {
		n.hello(h.Node)
	}
}

func (n *Node) helloMsg(data []byte) {
	var h helloMsg
	if json.Unmarshal(data, &h) != nil || h.Node == n.id || (h.To != "" && h.To != n.id) {
		return
	}
	n.sendDevices()
}

// hello asks node to (every node when "") send its devices.
func (n *Node) hello(node string) { n.helloOn(n.nc, node) }

func (n *Node) helloOn(c *nats.Conn, node string) {
	data, _ := json.Marshal(helloMsg{Node: n.id, To: node})
	n.publishOn(c, n.subject("hello"), data)
}

// devicesPerMessage keeps a node's list in messages far below NATS's
// default 1 MB payload limit.
const devicesPerMessage = 2000

// sendDevices publishes this node's devices, in parts, under localMu so
// that no presence change is published between its parts.
func (n *Node) sendDevices() {
	n.localMu.Lock()
	defer n.localMu.Unlock()
	all := make([][2]string, 0, len(n.localDev))
	for c, u := range n.localDev {
		all = append(all, [2]string{c, u})
	}
	for i := 0; i == 0 || i < len(all); i += devicesPerMessage {
		part := all[i:min(i+devicesPerMessage, len(all))]
		data, _ := json.Marshal(presenceMsg{Node: n.id, Reset: i == 0, Devices: part})
		n.publish(n.subject("presence"), data)
	}
}

// beat publishes heartbeats and drops the nodes that stopped beating.
func (n *Node) beat() {
	defer n.wg.Done()
	t := time.NewTicker(n.hb)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.localMu.Lock()
		count := len(n.localDev)
		n.localMu.Unlock()
		data, _ := json.Marshal(heartbeat{Node: n.id, Devices: count})
		n.publish(n.subject("hb"), data)
		var gone []string
		n.peers.mu.Lock()
		for id, pr := range n.peers.nodes {
			if time.Since(pr.beat) > 3*n.hb {
				n.log.Warn("cluster: node gone", "node", id, "devices", len(pr.devices))
				n.peers.clear(id, pr)
				delete(n.peers.nodes, id)
				gone = append(gone, id)
			}
		}
		n.peers.mu.Unlock()
		// It could not record its sessions' ends: they would never expire.
		for _, id := range gone {
			n.local.EndSessionsOf(id)
		}
	}
}

// ---- presence answers for the whole cluster

// Connected tells whether a device (client id) is connected to any node.
func (n *Node) Connected(clientID string) bool {
	if n.local.Connected(clientID) {
		return true
	}
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	for _, pr := range n.peers.nodes {
		if _, ok := pr.devices[clientID]; ok {
			return true
		}
	}
	return false
}

// Presence returns the client ids of uid's devices connected to any node,
// sorted, and when uid was last connected (now when connected, 0 when
// never seen by this node or as told by the others).
func (n *Node) Presence(uid string) ([]string, int64) {
	ids, last := n.local.Presence(uid)
	n.peers.mu.Lock()
	for c := range n.peers.byUser[uid] {
		ids = append(ids, c)
	}
	last = max(last, n.peers.lastSeen[uid])
	n.peers.mu.Unlock()
	if len(ids) == 0 {
		return ids, last
	}
	sort.Strings(ids)
	out := ids[:1]
	for _, c := range ids[1:] {
		if c != out[len(out)-1] {
			out = append(out, c)
		}
	}
	return out, time.Now().UnixMilli()
}

// hasUser tells whether another node has a device of uid connected.
func (p *peers) hasUser(uid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byUser[uid]) > 0
}

// CountRemote counts uid's devices connected to other nodes, but clientID
// (broker.Broker.CountRemote).
func (n *Node) CountRemote(uid, clientID string) int {
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	m := n.peers.byUser[uid]
	if _, ok := m[clientID]; ok {
		return len(m) - 1
	}
	return len(m)
}
