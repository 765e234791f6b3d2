package broker

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/store"
)

// PositionStore saves how far persistent sessions have acknowledged each
// conversation (store.Sessions does).
type PositionStore interface {
	SavePositions(ctx context.Context, ps []store.Position) error
	Positions(ctx context.Context, clientID string) (map[string]int64, error)
}

// positions keeps, per persistent session (client id) and conversation,
// the highest seq up to which every event sent to the session has been
// acknowledged, from OnQosPublish and OnQosComplete (our own event payloads
// carry conv and seq). It writes what changed lazily: one multi-row upsert
// a second, and at once when a session disconnects, so a position in the
// store may lag (a replay after a crash repeats a little), never lead.
type positions struct {
	st  PositionStore
	log *slog.Logger

	mu      sync.Mutex
	clients map[string]*clientPos
	dirty   map[store.Position]struct{} // Seq 0: the entry is keyed by client and conv only
	order   uint64

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	commits atomic.Int64 // transactions written
	acked   atomic.Int64 // chat events acknowledged by persistent sessions
}

// clientPos is one session's state.
type clientPos struct {
	pids  map[uint16]sentRef // events sent and not acknowledged, by packet id
	convs map[string]*convPos
	acked chan struct{} // signalled (non-blocking) on each acknowledgement
}

// sentRef is what one packet id carries: its conversation and seq (conv
// empty: not a chat event), and when it was first sent, in send order.
type sentRef struct {
	conv  string
	seq   int64
	order uint64
}

// convPos is one conversation of one session: the position, and the seqs
// above it that were sent, ascending, with whether each is acknowledged.
type convPos struct {
	pos   int64
	known bool // pos was acknowledged or stored; else the baseline applies
	sent  []sentSeq
}

type sentSeq struct {
	seq   int64
	acked bool
}

func newPositions(st PositionStore, log *slog.Logger) *positions {
	p := &positions{st: st, log: log, clients: map[string]*clientPos{}, dirty: map[store.Position]struct{}{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *positions) client(id string) *clientPos {
	c := p.clients[id]
	if c == nil {
		c = &clientPos{pids: map[uint16]sentRef{}, convs: map[string]*convPos{}, acked: make(chan struct{}, 1)}
		p.clients[id] = c
	}
	return c
}

func (c *clientPos) conv(id string) *convPos {
	cp := c.convs[id]
	if cp == nil {
		cp = &convPos{}
		c.convs[id] = cp
	}
	return cp
}

// sent records an event sent to a persistent session (a resend of the same
// packet id changes nothing). A packet id reused for another event means
// the earlier one was dropped unsent (Mochi rolls back the inflight entry
// of an event its outbound queue could not take).
func (p *positions) sent(clientID string, pid uint16, payload []byte) {
	conv, seq := eventPosition(payload)
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.client(clientID)
	if old, ok := c.pids[pid]; ok {
		if old.conv == conv && old.seq == seq {
			return
		}
		p.forgetLocked(clientID, c, old)
	}
	p.order++
	c.pids[pid] = sentRef{conv: conv, seq: seq, order: p.order}
	if conv == "" {
		return
	}
	cp := c.conv(conv)
	if seq <= cp.pos {
		return
	}
	i, found := slices.BinarySearchFunc(cp.sent, seq, func(s sentSeq, t int64) int { return compare(s.seq, t) })
	if !found {
		cp.sent = slices.Insert(cp.sent, i, sentSeq{seq: seq})
	}
}

// complete records an acknowledgement.
func (p *positions) complete(clientID string, pid uint16) {
	p.mu.Lock()
	c := p.clients[clientID]
	if c == nil {
		p.mu.Unlock()
		return
	}
	ref, ok := c.pids[pid]
	if ok {
		delete(c.pids, pid)
		if ref.conv != "" {
			p.acked.Add(1)
			if cp := c.convs[ref.conv]; cp != nil {
				for i := range cp.sent {
					if cp.sent[i].seq == ref.seq {
						cp.sent[i].acked = true
						break
					}
				}
				p.advanceLocked(clientID, ref.conv, cp)
			}
		}
	}
	p.mu.Unlock()
	select {
	case c.acked <- struct{}{}:
	default:
	}
}

// dropped records an event that left the session unacknowledged (expired):
// it no longer holds the position back; the device was told to catch up.
func (p *positions) dropped(clientID string, pid uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clients[clientID]
	if c == nil {
		return
	}
	if ref, ok := c.pids[pid]; ok {
		p.forgetLocked(clientID, c, ref)
	}
}

// droppedEvent records an event Mochi could not queue for a connected
// session (its outbound queue was full) after giving it a packet id: it was
// never sent, so it no longer holds the position back (the device is told
// to catch up).
func (p *positions) droppedEvent(clientID string, payload []byte) {
	conv, seq := eventPosition(payload)
	if conv == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clients[clientID]
	if c == nil {
		return
	}
	for _, ref := range c.pids {
		if ref.conv == conv && ref.seq == seq {
			p.forgetLocked(clientID, c, ref)
			return
		}
	}
}

func (p *positions) forgetLocked(clientID string, c *clientPos, ref sentRef) {
	for pid, r := range c.pids {
		if r == ref {
			delete(c.pids, pid)
		}
	}
	if cp := c.convs[ref.conv]; ref.conv != "" && cp != nil {
		cp.sent = slices.DeleteFunc(cp.sent, func(s sentSeq) bool { return s.seq == ref.seq && !s.acked })
		p.advanceLocked(clientID, ref.conv, cp)
	}
}

// advanceLocked moves the position over the acknowledged prefix of sent.
func (p *positions) advanceLocked(clientID, conv string, cp *convPos) {
	n := 0
	for n < len(cp.sent) && cp.sent[n].acked {
		n++
	}
	if n == 0 {
		return
	}
	if s := cp.sent[n-1].seq; s > cp.pos || !cp.known {
		cp.pos, cp.known = max(cp.pos, s), true
		p.dirty[store.Position{ClientID: clientID, Conv: conv}] = struct{}{}
	}
	cp.sent = slices.Delete(cp.sent, 0, n)
}

// seed raises a session's positions to those stored (after a restart the
// memory has none).
func (p *positions) seed(clientID string, stored map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.client(clientID)
	for conv, seq := range stored {
		cp := c.conv(conv)
		if seq > cp.pos || !cp.known {
			cp.pos, cp.known = max(cp.pos, seq), true
			cp.sent = slices.DeleteFunc(cp.sent, func(s sentSeq) bool { return s.seq <= seq })
		}
	}
}

// snapshot returns a session's positions, and per conversation the seqs
// sent above them (acknowledged or not): a replay starts after the one and
// skips the others.
func (p *positions) snapshot(clientID string) (pos map[string]int64, sent map[string]map[int64]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pos, sent = map[string]int64{}, map[string]map[int64]bool{}
	c := p.clients[clientID]
	if c == nil {
		return pos, sent
	}
	for conv, cp := range c.convs {
		if cp.known {
			pos[conv] = cp.pos
		}
		for _, s := range cp.sent {
			if sent[conv] == nil {
				sent[conv] = map[int64]bool{}
			}
			sent[conv][s.seq] = true
		}
	}
	return pos, sent
}

// sendOrder returns the send order of a session's unacknowledged packet
// ids (0: unknown).
func (p *positions) sendOrder(clientID string) map[uint16]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint16]uint64{}
	if c := p.clients[clientID]; c != nil {
		for pid, r := range c.pids {
			out[pid] = r.order
		}
	}
	return out
}

// ackedSignal is signalled after each acknowledgement by the session.
func (p *positions) ackedSignal(clientID string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client(clientID).acked
}

// reset forgets a session entirely (a new session under the client id,
// or the end of one). Unsaved positions of it are dropped.
func (p *positions) reset(clientID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, clientID)
	for k := range p.dirty {
		if k.ClientID == clientID {
			delete(p.dirty, k)
		}
	}
}

// flushSoon asks for a write now (a session disconnected).
func (p *positions) flushSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *positions) loop() {
	defer close(p.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.flush()
			return
		case <-t.C:
		case <-p.kick:
		}
		p.flush()
	}
}

// flush writes every position that moved since the last flush, in one
// transaction. A failed write is retried at the next flush.
func (p *positions) flush() {
	p.mu.Lock()
	if len(p.dirty) == 0 {
		p.mu.Unlock()
		return
	}
	ps := make([]store.Position, 0, len(p.dirty))
	for k := range p.dirty {
		if c := p.clients[k.ClientID]; c != nil {
			if cp := c.convs[k.Conv]; cp != nil {
				ps = append(ps, store.Position{ClientID: k.ClientID, Conv: k.Conv, Seq: cp.pos})
			}
		}
	}
	clear(p.dirty)
	p.mu.Unlock()
	if len(ps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.st.SavePositions(ctx, ps); err != nil {
		p.log.Warn("session positions not saved; retrying", "positions", len(ps), "error", err)
		p.mu.Lock()
		for _, x := range ps {
			p.dirty[store.Position{ClientID: x.ClientID, Conv: x.Conv}] = struct{}{}
		}
		p.mu.Unlock()
		return
	}
	p.commits.Add(1)
}

// close writes what is left and stops the flusher. Safe to call twice.
func (p *positions) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// eventPosition reads conv and seq from one of mqim's own event payloads
// (msg, recall, edit: {"kind":...,"conv":"...","seq":N,...}) without
// decoding the whole event; conv is empty for any other payload.
func eventPosition(payload []byte) (conv string, seq int64) {
	if len(payload) < 2 || payload[0] != '{' {
		return "", 0
	}
	// A msg event has its seq right after conv, before the client's body;
	// recall and edit events end with it, after an edit's body.
	last := false
	switch {
	case bytes.HasPrefix(payload, []byte(`{"kind":"msg"`)):
	case bytes.HasPrefix(payload, []byte(`{"kind":"recall"`)), bytes.HasPrefix(payload, []byte(`{"kind":"edit"`)):
		last = true
	default:
		return "", 0
	}
	c := fieldAfter(payload, `"conv":"`)
	if c < 0 {
		return "", 0
	}
	end := bytes.IndexByte(payload[c:], '"')
	if end < 0 {
		return "", 0
	}
	s := fieldAfter(payload, `"seq":`)
	if last {
		if i := bytes.LastIndex(payload, []byte(`"seq":`)); i >= 0 {
			s = i + len(`"seq":`)
		}
	}
	if s < 0 {
		return "", 0
	}
	n := s
	for n < len(payload) && payload[n] >= '0' && payload[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(payload[s:n]), 10, 64)
	if err != nil {
		return "", 0
	}
	return string(payload[c : c+end]), v
}

// fieldAfter returns the index just after the first occurrence of key:
// mqim's events put conv (and a msg event its seq) before any
// client-supplied body, so the first occurrence is the event's own.
func fieldAfter(payload []byte, key string) int {
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return -1
	}
	return i + len(key)
}

// positionsHook feeds positions from Mochi's delivery events.
type positionsHook struct {
	mqtt.HookBase
	p *positions
}

func (h *positionsHook) ID() string { return "mqim-session-positions" }

func (h *positionsHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped:
		return true
	}
	return false
}

func (h *positionsHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline || !isPersistent(cl) {
		return
	}
	h.p.sent(cl.ID, pk.PacketID, pk.Payload)
}

func (h *positionsHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.p.complete(cl.ID, pk.PacketID)
}

func (h *positionsHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.p.dropped(cl.ID, pk.PacketID)
}
