package broker

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Replayed is one stored message to replay to a device: the topic it is
// delivered on, its conversation and seq, and the event payload.
type Replayed struct {
	Topic   string
	Conv    string
	Seq     int64
	Payload []byte
}

// MissedFunc reads what a persistent session of user uid missed, in seq
// order per conversation, at most limit events: in each conversation the
// messages after after[conv] (where after has none, those stamped after
// baseline), leaving out the seqs in skip[conv], as the user may see them.
// It may record in after where it started in conversations it had no entry
// for. chat.Service.Missed does this.
type MissedFunc func(ctx context.Context, uid string, baseline int64, after map[string]int64,
	skip map[string]map[int64]bool, limit int) ([]Replayed, error)

// replayWindow is the most events a replay keeps unacknowledged at once
// (less when an MQTT 5 client's Receive Maximum is lower).
const replayWindow = 64

// replayPass is the most events one store read of a replay fetches.
const replayPass = 1000

// floorTTL is how long, after a replay, live events already replayed are
// still recognised and not delivered again.
const floorTTL = 10 * time.Second

// gates hold back live chat events from sessions being replayed to, so that
// none overtakes the replay or is delivered twice. The read ACL asks
// deliverable for every event about to be queued for a session; Deliver
// records the position of the event it is fanning out (Deliver calls are
// serialised), so that the check knows which event it is.
type gates struct {
	mu   sync.Mutex
	byID map[string]*gate
	n    atomic.Int32 // len(byID), read without mu on the fast path
	// rw is read-held by every fan-out that runs unserialised (no gate
	// existed when it began); open write-locks it, so that once a gate
	// exists every fan-out records its event.
	rw  sync.RWMutex
	dmu sync.Mutex // serialises Deliver while any gate exists
	cur atomic.Pointer[eventPos]
}

type eventPos struct {
	conv string
	seq  int64
}

// gate is one session's: active while its replay runs (every chat event
// is held back and counted), then floors: per conversation, the last seq
// replayed; a live event at or below it was replayed already.
type gate struct {
	cl      *mqtt.Client
	active  bool
	dropped int
	floors  map[string]int64
	timer   *time.Timer
}

func newGates() *gates { return &gates{byID: map[string]*gate{}} }

// open starts holding back chat events for cl (its replay is about to
// run), replacing the gate of an earlier connection of the same client id.
func (g *gates) open(cl *mqtt.Client) *gate {
	g.rw.Lock()
	defer g.rw.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.byID[cl.ID]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	gt := &gate{cl: cl, active: true}
	g.byID[cl.ID] = gt
	g.n.Store(int32(len(g.byID)))
	return gt
}

// beginPass resets the count of events held back during a replay pass.
func (g *gates) beginPass(gt *gate) {
	g.mu.Lock()
	gt.dropped = 0
	g.mu.Unlock()
}

// finish lifts the gate if no chat event was held back since the pass
// began (otherwise one may have been committed after the pass read the
// store: the caller reads again). The replayed positions become floors.
func (g *gates) finish(gt *gate, floors map[string]int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gt.dropped > 0 {
		return false
	}
	g.liftLocked(gt, floors)
	return true
}

// lift lifts the gate whatever was held back (the replay gave up).
func (g *gates) lift(gt *gate, floors map[string]int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.liftLocked(gt, floors)
}

func (g *gates) liftLocked(gt *gate, floors map[string]int64) {
	gt.active = false
	gt.floors = floors
	if g.byID[gt.cl.ID] == gt && gt.timer == nil {
		gt.timer = time.AfterFunc(floorTTL, func() { g.close(gt) })
	}
}

// close removes a gate (its connection ended, or its floors expired).
func (g *gates) close(gt *gate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byID[gt.cl.ID] == gt {
		delete(g.byID, gt.cl.ID)
		g.n.Store(int32(len(g.byID)))
	}
	gt.active = false
	if gt.timer != nil {
		gt.timer.Stop()
	}
}

// drop removes whatever gate a client id has.
func (g *gates) drop(clientID string) {
	g.mu.Lock()
	gt := g.byID[clientID]
	g.mu.Unlock()
	if gt != nil {
		g.close(gt)
	}
}

// closeFor removes the gate of a connection that ended.
func (g *gates) closeFor(cl *mqtt.Client) {
	g.mu.Lock()
	gt := g.byID[cl.ID]
	g.mu.Unlock()
	if gt != nil && gt.cl == cl {
		g.close(gt)
	}
}

// deliverable tells whether the event being delivered may go to clientID.
func (g *gates) deliverable(clientID string) bool {
	if g.n.Load() == 0 {
		return true
	}
	ev := g.cur.Load()
	if ev == nil || ev.conv == "" {
		// Not a stored chat event (or not a fan-out of Deliver: a
		// SUBSCRIBE's check): never held back.
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gt := g.byID[clientID]
	switch {
	case gt == nil:
		return true
	case gt.active:
		gt.dropped++
		return false
	}
	f, ok := gt.floors[ev.conv]
	if !ok {
		return true
	}
	if ev.seq <= f {
		return false
	}
	delete(gt.floors, ev.conv) // later events of conv are all new
	return true
}

// delivering brackets one fan-out: it records the event's position for
// deliverable, and serialises fan-outs while any gate exists.
func (g *gates) delivering(payload []byte, publish func() error) error {
	g.rw.RLock()
	if g.n.Load() == 0 {
		defer g.rw.RUnlock()
		return publish()
	}
	g.rw.RUnlock()
	conv, seq := eventPosition(payload)
	g.dmu.Lock()
	defer g.dmu.Unlock()
	g.cur.Store(&eventPos{conv: conv, seq: seq})
	defer g.cur.Store(nil)
	return publish()
}

// sendDirect sends one event at QoS 1 to one client only, tracked in its
// inflight like an event Mochi queued (resent at a reconnect, released by
// its PUBACK), with DUP clear. It writes on the caller's goroutine.
func (b *Broker) sendDirect(cl *mqtt.Client, topic string, payload []byte) error {
	id, err := cl.NextPacketID()
	if err != nil {
		return err
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: topic,
		Payload: payload, PacketID: uint16(id), Created: time.Now().Unix()}
	if cl.State.Inflight.Set(pk) {
		atomic.AddInt64(&b.srv.Info.Inflight, 1)
		cl.State.Inflight.DecreaseSendQuota()
	}
	b.reg.OnQosPublish(cl, pk, pk.Created, 0)
	if b.ps != nil && isPersistent(cl) {
		b.ps.pos.sent(cl.ID, pk.PacketID, payload)
	}
	return cl.WritePacket(pk)
}

// orderInflight makes Mochi resend a session's unacknowledged events in
// the order they were first sent: Mochi sorts them by uint16(Created), the
// second they were queued, which shuffles those of one second. Their
// Created become consecutive seconds from the earliest one, in send order
// (moved back as a whole if that would cross a uint16 wrap), so they
// expire at most a few seconds later than they would have.
func orderInflight(cl *mqtt.Client, order map[uint16]uint64) {
	all := cl.State.Inflight.GetAll(false)
	if len(all) < 2 {
		return
	}
	sort.SliceStable(all, func(i, j int) bool {
		oi, oj := order[all[i].PacketID], order[all[j].PacketID]
		switch {
		case oi != 0 && oj != 0:
			return oi < oj
		case all[i].Created != all[j].Created:
			return all[i].Created < all[j].Created
		}
		return oi < oj
	})
	first := all[0].Created
	for _, pk := range all {
		first = min(first, pk.Created)
	}
	last := first + int64(len(all)) - 1
	if first>>16 != last>>16 {
		first -= (last & 0xFFFF) + 1
	}
	for i := range all {
		all[i].Created = first + int64(i)
		cl.State.Inflight.Set(all[i])
	}
}

// replay sends a reconnected persistent session what it missed, from the
// store, then lifts its gate: see docs/protocol.md, "Persistent sessions".
// It runs in its own goroutine (the client's reads must run for its
// acknowledgements to arrive) and ends early when the connection does.
func (p *persist) replay(cl *mqtt.Client, gt *gate, uid string, baseline int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := p.log.With("client_id", cl.ID)
	stored, err := p.st.Positions(ctx, cl.ID)
	if err != nil {
		// Without positions a replay would repeat from the baseline: the
		// device is told to catch up itself instead.
		log.Warn("replay: cannot read positions", "error", err)
		p.endReplay(cl, gt, nil, "replay_limit")
		return
	}
	p.pos.seed(cl.ID, stored)
	after, skip := p.pos.snapshot(cl.ID)
	window := replayWindow
	if cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.ReceiveMaximum > 0 {
		window = min(window, int(cl.Properties.Props.ReceiveMaximum))
	}
	acked := p.pos.ackedSignal(cl.ID)
	budget, sent := p.max, 0
	for {
		p.gates.beginPass(gt)
		evs, err := p.missed(ctx, uid, baseline, after, skip, min(replayPass, budget+1))
		if err != nil {
			log.Warn("replay: cannot read the store", "error", err)
			p.endReplay(cl, gt, after, "replay_limit")
			return
		}
		if len(evs) == 0 {
			if p.gates.finish(gt, after) {
				log.Debug("replay done", "events", sent)
				return
			}
			continue // an event was held back meanwhile: read again
		}
		over := len(evs) > budget
		if over {
			evs = evs[:budget]
		}
		for _, ev := range evs {
			for cl.State.Inflight.Len() >= window {
				select {
				case <-acked:
				case <-time.After(100 * time.Millisecond):
				}
				if cl.Closed() {
					return
				}
			}
			if err := p.b.sendDirect(cl, ev.Topic, ev.Payload); err != nil {
				return // the connection ended: the session keeps its positions
			}
			after[ev.Conv] = max(after[ev.Conv], ev.Seq)
			sent++
		}
		budget -= len(evs)
		if over {
			log.Info("replay limit reached: the device is told to catch up", "events", sent)
			p.endReplay(cl, gt, after, "replay_limit")
			return
		}
	}
}

// endReplay ends a replay that did not deliver everything: the gate is
// lifted for good and the device gets a sync event on its reply topic.
func (p *persist) endReplay(cl *mqtt.Client, gt *gate, floors map[string]int64, reason string) {
	p.gates.lift(gt, floors)
	if err := p.b.sendDirect(cl, p.replyTopic(cl.ID), syncEvent(reason)); err != nil {
		p.log.Debug("sync event not sent", "client_id", cl.ID, "error", err)
	}
}

func syncEvent(reason string) []byte { return []byte(`{"kind":"sync","reason":"` + reason + `"}`) }
