package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqim/mqim/chat"
)

// fleet is a set of connected paho clients, disconnected together.
type fleet struct {
	mu      sync.Mutex
	clients []paho.Client
}

func (f *fleet) add(c paho.Client) {
	f.mu.Lock()
	f.clients = append(f.clients, c)
	f.mu.Unlock()
}

func (f *fleet) close() {
	f.mu.Lock()
	cs := f.clients
	f.clients = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Disconnect(50) })
	}
	wg.Wait()
}

// publishFunc publishes message n of sender i (cid made at ts) and returns
// a wait that reports whether it was acknowledged, or nil when the sender
// can send no more (the server closed its connection).
type publishFunc func(i, n int, cid string) (wait func() bool)

// mqttPublish publishes at QoS 1 on topic(i) with paho and waits for the
// PUBACK.
func (t *target) mqttPublish(cs []paho.Client, topic, from, conv func(i int) string) publishFunc {
	return func(i, n int, cid string) func() bool {
		if !cs[i].IsConnectionOpen() {
			return nil
		}
		tok := cs[i].Publish(topic(i), 1, false, t.payload(cid, from(i), conv(i), n))
		return func() bool { return tok.WaitTimeout(30*time.Second) && tok.Error() == nil }
	}
}

// drive runs the senders of tl: each sends its next message when the
// previous one was acknowledged, or (with --rate) on a schedule that
// offers rate messages/s over all senders without waiting. It stops after
// --messages per sender or --duration, and returns the failed sends and
// how long sending took.
func (r *runner) drive(ctx context.Context, tl *tally, publish publishFunc) (int64, time.Duration) {
	var errs atomic.Int64
	start := time.Now()
	deadline := start.Add(r.o.Duration)
	more := func(n int) bool {
		if ctx.Err() != nil {
			return false
		}
		if r.o.Messages > 0 {
			return n < r.o.Messages
		}
		return time.Now().Before(deadline)
	}
	senders := len(tl.senders)
	var wg sync.WaitGroup
	for i, sd := range tl.senders {
		wg.Go(func() {
			if r.o.Rate <= 0 {
				for n := 0; more(n); n++ {
					k := sd.next()
					wait := publish(i, k, newCID(i, k, time.Now()))
					if wait == nil {
						errs.Add(1)
						tl.gone.Add(1)
						return
					}
					if wait() {
						sd.ack(k)
					} else {
						errs.Add(1)
					}
				}
				return
			}
			interval := time.Duration(float64(senders) / r.o.Rate * float64(time.Second))
			at := start.Add(interval * time.Duration(i) / time.Duration(senders))
			waits := make(chan func(), 1<<14)
			var acker sync.WaitGroup
			acker.Go(func() {
				for w := range waits {
					w()
				}
			})
			for n := 0; more(n); n++ {
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				at = at.Add(interval)
				k := sd.next()
				wait := publish(i, k, newCID(i, k, time.Now()))
				if wait == nil {
					errs.Add(1)
					tl.gone.Add(1)
					break
				}
				waits <- func() {
					if wait() {
						sd.ack(k)
					} else {
						errs.Add(1)
					}
				}
			}
			close(waits)
			acker.Wait()
		})
	}
	wg.Wait()
	return errs.Load(), time.Since(start)
}

// warm sends one message per sender (cid "warm.N"; receivers do not
// count it) and waits until want receivers saw theirs, so that every
// device's session is established before the load starts.
func warm(ctx context.Context, publish publishFunc, senders int, warmed *atomic.Int64, want int64) error {
	for i := range senders {
		if w := publish(i, 0, fmt.Sprintf("warm.%d", i)); w == nil || !w() {
			return fmt.Errorf("warm-up publish of sender %d not acknowledged", i)
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.Now().Add(30 * time.Second)
	for warmed.Load() < want {
		if time.Now().After(limit) {
			return fmt.Errorf("warm-up: %d of %d receivers got their message within 30 s", warmed.Load(), want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// counted wraps a receiver so that warm-up messages are counted apart.
func counted(rc *receiver, warmed *atomic.Int64) func([]byte) {
	return func(p []byte) {
		if isWarm(p) {
			warmed.Add(1)
			rc.onMsg(p) // keeps the seq check's starting point
			return
		}
		rc.onMsg(p)
	}
}

func isWarm(p []byte) bool { return strings.Contains(string(p), `"cid":"warm.`) }

// finish adds what every message scenario reports.
func (r *runner) finish(ctx context.Context, rep *report, m *meter, tl *tally, rs []*receiver, start time.Time,
	sendDur time.Duration, errs int64, want int32, label string) {
	tl.settle(ctx, tl.acked()*int64(want), 10*time.Second)
	acked := tl.acked() // again: a refusal's error event may come after its PUBACK
	received := tl.received.Load()
	if want > 1 {
		m.done(ctx, r, rep, received, "deliveries")
	} else {
		m.done(ctx, r, rep, acked, "msgs")
	}
	end := time.Unix(0, tl.lastRecv.Load())
	if end.Before(start) {
		end = start.Add(sendDur)
	}
	rep.add(label, float64(received)/end.Sub(start).Seconds(), "/s", true)
	rep.add("sent (acknowledged)", float64(acked), "", false)
	rep.add("acknowledged per second", float64(acked)/sendDur.Seconds(), "/s", false)
	rep.add("received", float64(received), "", false)
	rep.latencies("latency", latencies(rs))
	rep.lost = tl.lost(want)
	rep.add("errors (send failed or unacknowledged)", float64(errs), "", false)
	rep.add("duplicate or out of order", float64(tl.disorder.Load()), "", false)
	if tl.checkSeq {
		rep.add("seq gaps per conversation", float64(tl.seqBad.Load()), "", false)
		rep.lost += tl.seqBad.Load()
	}
	rep.add("unparsable payloads", float64(tl.bad.Load()), "", false)
	if n := tl.gone.Load(); n > 0 {
		rep.add("senders disconnected by the server", float64(n), "", false)
		rep.notes = append(rep.notes, fmt.Sprintf("%d senders stopped: the server closed their connection "+
			"(its log says why); their receivers' losses after that count as lost", n))
	}
	if n := tl.refused.Load(); n > 0 || tl.checkSeq {
		rep.add("refused (error events)", float64(n), "", false)
		if n > 0 {
			rep.notes = append(rep.notes, "refusals: "+tl.refusals()+" (not counted as sent)")
		}
	}
	rep.add("lost", float64(rep.lost), "", false)
}

// pairs creates n senders and n receivers (users and tokens).
func (t *target) pairs(ctx context.Context, n int) (su, st, ru, rt []string, err error) {
	if su, st, err = t.users(ctx, "s", n); err != nil {
		return
	}
	ru, rt, err = t.users(ctx, "r", n)
	return
}

// runDM: P pairs; sender i publishes to receiver i's inbox.
func runDM(ctx context.Context, r *runner, t *target) (*report, error) {
	p := r.o.Pairs
	su, st, ru, rt, err := t.pairs(ctx, p)
	if err != nil {
		return nil, err
	}
	tl := newTally(p, !t.bare)
	var f fleet
	defer f.close()
	rs := make([]*receiver, p)
	senders := make([]paho.Client, p)
	var warmed atomic.Int64
	err = parallel(ctx, p, 16, func(i int) error {
		rs[i] = tl.receiver()
		// In a cluster the sender is on the node after its receiver's.
		c, err := t.node(i).dial(ru[i], "bench", rt[i], true, []string{chat.UserTopic(ru[i])}, counted(rs[i], &warmed))
		if err != nil {
			return err
		}
		f.add(c)
		if senders[i], err = t.node(i+1).dial(su[i], "bench", st[i], true, nil, tl.onSenderMsg); err != nil {
			return err
		}
		f.add(senders[i])
		return nil
	})
	if err != nil {
		return nil, err
	}
	publish := t.mqttPublish(senders, func(i int) string { return chat.UserTopic(ru[i]) },
		func(i int) string { return su[i] }, func(i int) string { return chat.DirectConv(su[i], ru[i]) })
	rep := &report{}
	rep.add("pairs", float64(p), "", false)
	return rep, r.load(ctx, t, "dm", rep, tl, rs, publish, &warmed, 1, "delivered msgs/s")
}

// load warms up (every receiver got its senders' warm-up message), then
// drives the senders and reports what the receivers got; want is the
// receivers of each message.
func (r *runner) load(ctx context.Context, t *target, scenario string, rep *report, tl *tally, rs []*receiver,
	publish publishFunc, warmed *atomic.Int64, want int32, label string) error {
	if err := warm(ctx, publish, len(tl.senders), warmed, int64(len(tl.senders))*int64(want)); err != nil {
		return err
	}
	if r.o.Rate > 0 {
		rep.add("offered rate", r.o.Rate, "/s", false)
	}
	m := r.measure(ctx, t, scenario, r.loadTime())
	start := time.Now()
	errs, sendDur := r.drive(ctx, tl, publish)
	r.finish(ctx, rep, m, tl, rs, start, sendDur, errs, want, label)
	return nil
}

// loadTime is how long a load phase is expected to last (for the profile).
func (r *runner) loadTime() time.Duration {
	if r.o.Messages > 0 {
		return time.Second
	}
	return r.o.Duration
}

// runGroup: one group of M online members; the first S send into it.
func runGroup(ctx context.Context, r *runner, t *target) (*report, error) {
	mn, s := r.o.Members, r.o.Senders
	uids, toks, err := t.users(ctx, "m", mn)
	if err != nil {
		return nil, err
	}
	gid := t.prefix + "-g"
	if !t.bare {
		if _, err := t.api(ctx, "POST", "/v1/groups", t.key, map[string]any{"id": gid, "name": gid, "owner": uids[0], "members": uids[1:]}, nil); err != nil {
			return nil, err
		}
	}
	topic := chat.GroupTopic(gid)
	tl := newTally(s, !t.bare)
	var f fleet
	defer f.close()
	rs := make([]*receiver, mn)
	cs := make([]paho.Client, mn)
	var warmed atomic.Int64
	err = parallel(ctx, mn, 16, func(i int) error {
		rs[i] = tl.receiver()
		c, err := t.node(i).dial(uids[i], "bench", toks[i], true, []string{topic}, counted(rs[i], &warmed))
		if err != nil {
			return err
		}
		cs[i] = c
		f.add(c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	publish := t.mqttPublish(cs, func(int) string { return topic }, func(i int) string { return uids[i] },
		func(int) string { return chat.GroupConv(gid) })
	rep := &report{}
	rep.add("members", float64(mn), "", false)
	rep.add("senders", float64(s), "", false)
	if err := r.load(ctx, t, "group", rep, tl, rs, publish, &warmed, int32(mn), "deliveries/s"); err != nil {
		return rep, err
	}
	rep.latencies("publish-to-last-member", tl.lastMember(int32(mn)))
	return rep, nil
}

// runConnections: N idle raw MQTT 3.1.1 connections (keepalive 0).
func runConnections(ctx context.Context, r *runner, t *target) (*report, error) {
	rep := &report{}
	n := r.o.Conns
	// Each side holds one descriptor per connection, plus its own files.
	if lim := int(noFileLimit()); n > lim-200 {
		rep.notes = append(rep.notes, fmt.Sprintf("--conns %d capped to %d: the open-files limit is %d per process (ulimit -n; "+
			"the hard limit can be raised only with CAP_SYS_RESOURCE, e.g. by root outside a container) and the server and this tool "+
			"each hold one descriptor per connection plus their own", n, lim-200, lim))
		n = lim - 200
	}
	perUser := r.o.DevPerUser
	users := (n + perUser - 1) / perUser
	t0 := time.Now()
	uids, toks, err := t.users(ctx, "c", users)
	if err != nil {
		return nil, err
	}
	httpClient.CloseIdleConnections()
	if !t.bare {
		rep.notes = append(rep.notes, fmt.Sprintf("%d users (%d connections each) created in %v", users, perUser, time.Since(t0).Round(time.Millisecond)))
	}
	rssBefore := settledRSS(ctx, t.pid)
	m := r.measure(ctx, t, "connections", 10*time.Second)
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var failed atomic.Int64
	start := time.Now()
	_ = parallel(ctx, n, 64, func(i int) error {
		u := uids[i/perUser]
		c, err := RawConnect(ctx, t.mqttAddr, sourceAddr(t.mqttAddr, i), fmt.Sprintf("%s/c%d", u, i), u, toks[i/perUser])
		if err != nil {
			if failed.Add(1) == 1 {
				r.logf("connect %d: %v", i, err)
			}
			return nil
		}
		conns[i] = c
		return nil
	})
	elapsed := time.Since(start)
	rssAfter := settledRSS(ctx, t.pid)
	ok := int64(n) - failed.Load()
	rep.add("connections", float64(ok), "", false)
	rep.add("connect rate", float64(ok)/elapsed.Seconds(), "/s", true)
	rep.add("connect time", elapsed.Seconds(), "s", false)
	rep.add("errors (refused or failed)", float64(failed.Load()), "", false)
	if t.pid != 0 && ok > 0 {
		rep.add("server RSS before", float64(rssBefore)/(1<<20), "MB", false)
		rep.add("server RSS after", float64(rssAfter)/(1<<20), "MB", false)
		rep.add("server RSS per connection", float64(rssAfter-rssBefore)/float64(ok)/1024, "KB", true)
	}
	m.done(ctx, r, rep, ok, "connections")
	return rep, nil
}

// settledRSS polls the RSS every 100 ms until it has not grown (by more
// than 64 KiB) for 500 ms, at most 10 s, and returns the last sample. No
// GC is forced.
func settledRSS(ctx context.Context, pid int) int64 {
	if pid == 0 {
		return 0
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	peak, _ := rssBytes(pid)
	last := peak
	stable, limit := time.Now(), time.Now().Add(10*time.Second)
	for time.Since(stable) < 500*time.Millisecond && time.Now().Before(limit) {
		select {
		case <-ctx.Done():
			return last
		case <-tick.C:
		}
		last, _ = rssBytes(pid)
		if last > peak+64<<10 {
			peak, stable = last, time.Now()
		}
	}
	return last
}

// runHTTPSend: C HTTP clients POST /v1/messages as C senders (the service
// key names them), each to its own receiver on MQTT.
func runHTTPSend(ctx context.Context, r *runner, t *target) (*report, error) {
	c := r.o.Clients
	su, _, ru, rt, err := t.pairs(ctx, c)
	if err != nil {
		return nil, err
	}
	tl := newTally(c, true)
	var f fleet
	defer f.close()
	rs := make([]*receiver, c)
	var warmed atomic.Int64
	err = parallel(ctx, c, 16, func(i int) error {
		rs[i] = tl.receiver()
		cl, err := t.node(i).dial(ru[i], "bench", rt[i], true, nil, counted(rs[i], &warmed))
		if err == nil {
			f.add(cl)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var firstErr atomic.Value
	publish := func(i, n int, cid string) func() bool {
		// In a cluster the request goes to the node after its receiver's.
		_, err := t.node(i+1).api(ctx, "POST", "/v1/messages", t.key, map[string]any{"from": su[i], "to": ru[i], "type": "text",
			"body": map[string]string{"text": fmt.Sprintf("bench message %d", n)}, "cid": cid}, nil)
		if err != nil {
			firstErr.CompareAndSwap(nil, err.Error())
		}
		return func() bool { return err == nil }
	}
	rep := &report{}
	rep.add("HTTP clients", float64(c), "", false)
	if err := r.load(ctx, t, "http-send", rep, tl, rs, publish, &warmed, 1, "delivered msgs/s"); err != nil {
		return rep, err
	}
	if e := firstErr.Load(); e != nil {
		rep.notes = append(rep.notes, "first send error: "+e.(string))
	}
	return rep, nil
}

// seed stores k messages through the server's normal send path: 32
// concurrent POST /v1/messages from one sender to a user or a group.
func (t *target) seed(ctx context.Context, from, to, group string, k int) (time.Duration, error) {
	start := time.Now()
	err := parallel(ctx, k, 32, func(i int) error {
		in := map[string]any{"from": from, "type": "text", "body": map[string]string{"text": fmt.Sprintf("missed %d", i)},
			"cid": fmt.Sprintf("seed-%d", i)}
		if group != "" {
			in["group"] = group
		} else {
			in["to"] = to
		}
		_, err := t.api(ctx, "POST", "/v1/messages", t.key, in, nil)
		return err
	})
	return time.Since(start), err
}

// awaitOffline polls GET /v1/presence until none of uids is online
// (at most 30 s).
func (t *target) awaitOffline(ctx context.Context, uids []string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.Now().Add(30 * time.Second)
	for {
		var p map[string]struct {
			Online bool `json:"online"`
		}
		if _, err := t.api(ctx, "GET", "/v1/presence?user_ids="+strings.Join(uids, ","), t.key, nil, &p); err != nil {
			return err
		}
		online := 0
		for _, u := range uids {
			if p[u].Online {
				online++
			}
		}
		if online == 0 {
			return nil
		}
		if time.Now().After(limit) {
			return fmt.Errorf("%d devices still online 30 s after disconnecting", online)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// seqCheck follows the seqs a reader gets: each must be the next one.
type seqCheck struct {
	next       int64
	got, wrong int64
}

func (c *seqCheck) see(seq int64) {
	if seq == c.next {
		c.next++
		c.got++
		return
	}
	c.wrong++
	if seq > c.next {
		c.next = seq + 1
	}
}

// runCatchup: a device that missed K messages pages them in, over HTTP and
// over im/rpc.
func runCatchup(ctx context.Context, r *runner, t *target) (*report, error) {
	k := r.o.k()
	uids, toks, err := t.users(ctx, "u", 2)
	if err != nil {
		return nil, err
	}
	conv := chat.DirectConv(uids[0], uids[1])
	seedDur, err := t.seed(ctx, uids[0], uids[1], "", k)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	rep := &report{}
	rep.add("missed messages K", float64(k), "", false)
	rep.add("seeded msgs/s (32 HTTP senders)", float64(k)/seedDur.Seconds(), "/s", false)
	m := r.measure(ctx, t, "catchup", time.Second)
	// Over HTTP.
	hc := seqCheck{next: 1}
	start := time.Now()
	pages := 0
	for after := int64(0); ; pages++ {
		var page []event
		if _, err := t.api(ctx, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=200", conv, after), toks[1], nil, &page); err != nil {
			return nil, err
		}
		for _, e := range page {
			hc.see(e.Seq)
			after = e.Seq
		}
		if len(page) < 200 {
			break
		}
	}
	httpDur := time.Since(start)
	// Over im/rpc, from a device that connects now.
	replies := make(chan []byte, 16)
	c, err := t.dial(uids[1], "rpc", toks[1], true, nil, func(p []byte) {
		if strings.Contains(string(p), `"kind":"reply"`) {
			replies <- p
		}
	})
	if err != nil {
		return nil, err
	}
	defer c.Disconnect(50)
	rc := seqCheck{next: 1}
	start = time.Now()
	var rpcErr error
	for after, id := int64(0), 0; ; id++ {
		req, _ := json.Marshal(map[string]any{"id": fmt.Sprint(id), "method": "messages",
			"params": map[string]any{"conv": conv, "after_seq": after, "limit": 200}})
		c.Publish(chat.RequestTopic, 1, false, req)
		var rep struct {
			Result []event `json:"result"`
			Error  *struct {
				Code, Message string
			} `json:"error"`
		}
		select {
		case p := <-replies:
			if err := json.Unmarshal(p, &rep); err != nil {
				rpcErr = err
			}
		case <-time.After(30 * time.Second):
			rpcErr = fmt.Errorf("no reply to request %d within 30 s", id)
		case <-ctx.Done():
			rpcErr = ctx.Err()
		}
		if rpcErr == nil && rep.Error != nil {
			rpcErr = fmt.Errorf("rpc: %s %s", rep.Error.Code, rep.Error.Message)
		}
		if rpcErr != nil {
			break
		}
		for _, e := range rep.Result {
			rc.see(e.Seq)
			after = e.Seq
		}
		if len(rep.Result) < 200 {
			break
		}
	}
	rpcDur := time.Since(start)
	m.done(ctx, r, rep, int64(2*k), "msgs read")
	rep.add("HTTP: time for all K", httpDur.Seconds(), "s", false)
	rep.add("HTTP: msgs/s", float64(hc.got)/httpDur.Seconds(), "/s", false)
	rep.add("HTTP: pages", float64(pages+1), "", false)
	rep.add("im/rpc: time for all K", rpcDur.Seconds(), "s", false)
	rep.add("im/rpc: msgs/s", float64(rc.got)/rpcDur.Seconds(), "/s", false)
	rep.add("out of order or duplicate", float64(hc.wrong+rc.wrong), "", false)
	rep.lost = max(0, int64(k)-hc.got) + max(0, int64(k)-rc.got) + hc.wrong + rc.wrong
	rep.add("lost", float64(rep.lost), "", false)
	return rep, rpcErr
}

// runReplay: D persistent sessions (clean=false) miss K group messages
// while offline and get them from the store's replay when they reconnect.
func runReplay(ctx context.Context, r *runner, t *target) (*report, error) {
	k, d := r.o.k(), r.o.Devices
	uids, toks, err := t.users(ctx, "p", d+1)
	if err != nil {
		return nil, err
	}
	gid := t.prefix + "-g"
	if _, err := t.api(ctx, "POST", "/v1/groups", t.key, map[string]any{"id": gid, "name": gid, "owner": uids[0], "members": uids[1:]}, nil); err != nil {
		return nil, err
	}
	devs := uids[1:]
	// Open the persistent sessions, then leave.
	err = parallel(ctx, d, 16, func(i int) error {
		c, err := t.dial(devs[i], "p", toks[i+1], false, nil, nil)
		if err != nil {
			return err
		}
		c.Disconnect(100)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A message sent before the server saw a device leave would be
	// delivered live (and acknowledged), not replayed.
	if err := t.awaitOffline(ctx, devs); err != nil {
		return nil, err
	}
	seedDur, err := t.seed(ctx, uids[0], "", gid, k)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	rep := &report{}
	rep.add("devices D", float64(d), "", false)
	rep.add("missed messages K (each)", float64(k), "", false)
	rep.add("seeded msgs/s (32 HTTP senders)", float64(k)/seedDur.Seconds(), "/s", false)
	type dev struct {
		mu     sync.Mutex
		check  seqCheck
		seeded int64
		syncs  int64
		done   chan struct{}
		at     time.Duration
	}
	ds := make([]*dev, d)
	var f fleet
	defer f.close()
	m := r.measure(ctx, t, "replay", time.Second)
	start := time.Now()
	err = parallel(ctx, d, 16, func(i int) error {
		dv := &dev{done: make(chan struct{})}
		ds[i] = dv
		c, err := t.dial(devs[i], "p", toks[i+1], false, nil, func(p []byte) {
			var ev event
			if json.Unmarshal(p, &ev) != nil {
				return
			}
			dv.mu.Lock()
			defer dv.mu.Unlock()
			switch {
			case ev.Kind == "sync":
				dv.syncs++
			case ev.Kind == "msg" && strings.HasPrefix(ev.CID, "seed-"):
				if dv.seeded == 0 {
					dv.check.next = ev.Seq
				}
				dv.check.see(ev.Seq)
				dv.seeded++
				if dv.seeded == int64(k) {
					dv.at = time.Since(start)
					close(dv.done)
				}
			}
		})
		if err == nil {
			f.add(c)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// Wait for every device, or until none got anything for 10 s.
	var slowest time.Duration
	complete := 0
	progress := func() (n int64) {
		for _, dv := range ds {
			dv.mu.Lock()
			n += dv.seeded
			dv.mu.Unlock()
		}
		return n
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last, since := int64(-1), time.Now()
	for _, dv := range ds {
		for waiting := true; waiting; {
			select {
			case <-dv.done:
				complete++
				slowest = max(slowest, dv.at)
				waiting = false
			case <-tick.C:
				if n := progress(); n != last {
					last, since = n, time.Now()
				} else if time.Since(since) > 10*time.Second {
					waiting = false
				}
			case <-ctx.Done():
				waiting = false
			}
		}
	}
	m.done(ctx, r, rep, int64(k*d), "msgs replayed")
	rep.add("time to the last message", slowest.Seconds(), "s", false)
	rep.add("devices complete", float64(complete), "", false)
	var wrong, got, syncs int64
	for _, dv := range ds {
		dv.mu.Lock()
		wrong += dv.check.wrong
		got += dv.check.got
		syncs += dv.syncs
		dv.mu.Unlock()
	}
	rep.add("replayed msgs/s (all devices)", float64(got)/slowest.Seconds(), "/s", false)
	rep.add("out of order or duplicate", float64(wrong), "", false)
	rep.add("sync events (replay_limit or overflow)", float64(syncs), "", false)
	rep.lost = max(0, int64(k*d)-got) + wrong
	rep.add("lost", float64(rep.lost), "", false)
	return rep, nil
}
