package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// httpClient is shared by every HTTP call of a run, with enough idle
// connections for the concurrent senders.
var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}

// api calls the target's HTTP API as bearer and decodes a 2xx answer into
// out (when not nil).
func (t *target) api(ctx context.Context, method, path, bearer string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.httpURL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

// users creates n users (prefix-tag-i) with tokens, 16 at a time, and
// returns their ids and tokens. On the bare broker it only names them.
func (t *target) users(ctx context.Context, tag string, n int) ([]string, []string, error) {
	uids := make([]string, n)
	toks := make([]string, n)
	for i := range uids {
		uids[i] = fmt.Sprintf("%s-%s%d", t.prefix, tag, i)
	}
	if t.bare {
		return uids, toks, nil
	}
	err := parallel(ctx, n, 16, func(i int) error {
		if _, err := t.api(ctx, "PUT", "/v1/users/"+uids[i], t.key, map[string]string{"name": uids[i]}, nil); err != nil {
			return err
		}
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := t.api(ctx, "POST", "/v1/users/"+uids[i]+"/tokens", t.key, map[string]int{"ttl_seconds": 86400}, &tok); err != nil {
			return err
		}
		toks[i] = tok.Token
		return nil
	})
	return uids, toks, err
}

// parallel runs f(0..n-1) on workers goroutines and returns the first
// error (the others stop taking work).
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// dial connects one MQTT 3.1.1 device with paho. topics are subscribed at
// QoS 1 on the bare broker (mqim subscribes its devices itself). onMsg
// runs on paho's router goroutine, in arrival order.
func (t *target) dial(uid, device, token string, clean bool, topics []string, onMsg func(payload []byte)) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + t.mqttAddr).SetClientID(uid + "/" + device).SetUsername(uid).SetPassword(token).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(30 * time.Second).
		SetKeepAlive(2 * time.Minute).SetOrderMatters(true).SetWriteTimeout(30 * time.Second)
	if onMsg == nil {
		onMsg = func([]byte) {}
	}
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { onMsg(m.Payload()) })
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s/%s: %v", uid, device, tok.Error())
	}
	if t.bare && len(topics) > 0 {
		filters := map[string]byte{}
		for _, tp := range topics {
			filters[tp] = 1
		}
		st := c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) { onMsg(m.Payload()) })
		if !st.WaitTimeout(30*time.Second) || st.Error() != nil {
			c.Disconnect(0)
			return nil, fmt.Errorf("subscribe %s: %v", uid, st.Error())
		}
	}
	return c, nil
}

// sourceAddr spreads connections to a loopback server over the source
// addresses 127.0.0.2 to 127.0.0.65: with tens of thousands of connections
// from one source address the kernel's search for a free ephemeral port
// costs more than the connection (and is this machine's cost, not the
// server's). For other servers it is nil: the kernel chooses.
func sourceAddr(server string, i int) net.Addr {
	host, _, err := net.SplitHostPort(server)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%64))}
}

// event is the part of a `msg` event the tool reads. On the bare broker the
// sender's payload carries the same fields.
type event struct {
	Kind string `json:"kind"`
	Code string `json:"code"` // of an error event
	Conv string `json:"conv"`
	Seq  int64  `json:"seq"`
	From string `json:"from"`
	CID  string `json:"cid"`
}

// newCID names message n of sender s, sent at ts: "s.n.unixnano".
func newCID(s, n int, ts time.Time) string {
	return strconv.Itoa(s) + "." + strconv.Itoa(n) + "." + strconv.FormatInt(ts.UnixNano(), 10)
}

// parseCID reverses newCID.
func parseCID(cid string) (s, n int, ts time.Time, ok bool) {
	a, rest, ok1 := strings.Cut(cid, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return 0, 0, time.Time{}, false
	}
	s, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	ns, err3 := strconv.ParseInt(c, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, time.Time{}, false
	}
	return s, n, time.Unix(0, ns), true
}

// payload is what a sender publishes: on mqim a text message with the cid,
// on the bare broker the event fields themselves (seq is the sender's own
// count there).
func (t *target) payload(cid, from, conv string, n int) []byte {
	if t.bare {
		return fmt.Appendf(nil, `{"kind":"msg","conv":%q,"seq":%d,"from":%q,"cid":%q,"type":"text","body":{"text":"bench message %d"}}`,
			conv, n+1, from, cid, n)
	}
	return fmt.Appendf(nil, `{"cid":%q,"type":"text","body":{"text":"bench message %d"}}`, cid, n)
}

// sender is the record of what one sender sent: per message n, whether it
// was acknowledged, how many receivers got it, and the slowest receipt.
type sender struct {
	mu        sync.Mutex
	acked     []bool
	refused   []bool // the server answered with an error event (an MQTT 3.1.1 refusal is acknowledged too)
	delivered []int32
	last      []time.Duration
}

// next registers message n before it is published.
func (s *sender) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked = append(s.acked, false)
	s.refused = append(s.refused, false)
	s.delivered = append(s.delivered, 0)
	s.last = append(s.last, 0)
	return len(s.acked) - 1
}

func (s *sender) ack(n int) {
	s.mu.Lock()
	s.acked[n] = true
	s.mu.Unlock()
}

// tally gathers the receipts of one run.
type tally struct {
	senders  []*sender
	checkSeq bool // mqim: seq must grow by one per conversation
	received atomic.Int64
	ignored  atomic.Int64 // msg events that are not this run's
	disorder atomic.Int64 // duplicates, and messages before one already seen
	seqBad   atomic.Int64
	bad      atomic.Int64 // unparsable payloads
	refused  atomic.Int64 // error events answering a send (rate_limited, ...)
	gone     atomic.Int64 // senders stopped because the server closed their connection
	codeMu   sync.Mutex
	codes    map[string]int64
	lastRecv atomic.Int64 // unix nanos of the latest receipt
}

func newTally(senders int, checkSeq bool) *tally {
	t := &tally{checkSeq: checkSeq}
	for range senders {
		t.senders = append(t.senders, &sender{})
	}
	return t
}

// receiver is one device's view: the newest n seen per sender, the last
// seq per conversation, its latencies.
type receiver struct {
	t       *tally
	mu      sync.Mutex
	maxSeen map[int]int
	lastSeq map[string]int64
	lat     []time.Duration
}

func (t *tally) receiver() *receiver {
	return &receiver{t: t, maxSeen: map[int]int{}, lastSeq: map[string]int64{}}
}

// onMsg records one received payload.
func (r *receiver) onMsg(payload []byte) {
	now := time.Now()
	var ev event
	if err := json.Unmarshal(payload, &ev); err != nil {
		r.t.bad.Add(1)
		return
	}
	if ev.Kind == "error" {
		r.t.refuse(ev)
		return
	}
	if ev.Kind != "msg" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t.checkSeq {
		if last, ok := r.lastSeq[ev.Conv]; ok && ev.Seq != last+1 {
			r.t.seqBad.Add(1)
		}
		r.lastSeq[ev.Conv] = ev.Seq
	}
	s, n, ts, ok := parseCID(ev.CID)
	if !ok || s < 0 || s >= len(r.t.senders) {
		r.t.ignored.Add(1)
		return
	}
	if seen, ok := r.maxSeen[s]; ok && n <= seen {
		r.t.disorder.Add(1)
		return
	}
	r.maxSeen[s] = n
	lat := now.Sub(ts)
	r.lat = append(r.lat, lat)
	sd := r.t.senders[s]
	sd.mu.Lock()
	if n < len(sd.delivered) {
		sd.delivered[n]++
		sd.last[n] = max(sd.last[n], lat)
	}
	sd.mu.Unlock()
	r.t.received.Add(1)
	r.t.lastRecv.Store(now.UnixNano())
}

// refuse records an error event: the send its cid names was refused,
// whatever its PUBACK said.
func (t *tally) refuse(ev event) {
	t.refused.Add(1)
	t.codeMu.Lock()
	if t.codes == nil {
		t.codes = map[string]int64{}
	}
	t.codes[ev.Code]++
	t.codeMu.Unlock()
	s, n, _, ok := parseCID(ev.CID)
	if !ok || s < 0 || s >= len(t.senders) {
		return
	}
	sd := t.senders[s]
	sd.mu.Lock()
	if n < len(sd.refused) {
		sd.refused[n] = true
	}
	sd.mu.Unlock()
}

// onSenderMsg is a sending device's handler: it reads only error events
// (its other events are its own messages' echoes).
func (t *tally) onSenderMsg(p []byte) {
	if !bytes.Contains(p, []byte(`"kind":"error"`)) {
		return
	}
	var ev event
	if json.Unmarshal(p, &ev) == nil && ev.Kind == "error" {
		t.refuse(ev)
	}
}

// refusals lists the error codes seen, "code×n".
func (t *tally) refusals() string {
	t.codeMu.Lock()
	defer t.codeMu.Unlock()
	var out []string
	for c, n := range t.codes {
		out = append(out, fmt.Sprintf("%s×%d", c, n))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// acked counts the acknowledged messages that were not refused.
func (t *tally) acked() int64 {
	var n int64
	for _, s := range t.senders {
		s.mu.Lock()
		for i, a := range s.acked {
			if a && !s.refused[i] {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// lost counts the acknowledged messages that fewer than want receivers got
// (receivers count a message once, so a duplicate never hides a loss).
func (t *tally) lost(want int32) int64 {
	var n int64
	for _, s := range t.senders {
		s.mu.Lock()
		for i, a := range s.acked {
			if a && !s.refused[i] && s.delivered[i] < want {
				n += int64(want - s.delivered[i])
			}
		}
		s.mu.Unlock()
	}
	return n
}

// lastMember is the publish-to-last-receiver latency of every message that
// all want receivers got.
func (t *tally) lastMember(want int32) []time.Duration {
	var out []time.Duration
	for _, s := range t.senders {
		s.mu.Lock()
		for i, d := range s.delivered {
			if d >= want {
				out = append(out, s.last[i])
			}
		}
		s.mu.Unlock()
	}
	return out
}

// settle waits until want deliveries arrived, or until none arrived for
// quiet, or ctx ends.
func (t *tally) settle(ctx context.Context, want int64, quiet time.Duration) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last, since := t.received.Load(), time.Now()
	for t.received.Load() < want {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n := t.received.Load(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > quiet {
			return
		}
	}
}

// latencies merges every receiver's latencies.
func latencies(rs []*receiver) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		r.mu.Lock()
		out = append(out, r.lat...)
		r.mu.Unlock()
	}
	return out
}

// RawConnect opens an MQTT 3.1.1 connection with a minimal CONNECT
// (clean session, keepalive 0), reads the CONNACK, which must accept it,
// and returns the socket: an idle device that costs its own side almost
// nothing. local, when not nil, is the source address. The broker's
// memory measurements use it too.
func RawConnect(ctx context.Context, addr string, local net.Addr, clientID, user, pass string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: local}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 0, ClientIdentifier: clientID,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: pass != "", Password: []byte(pass)}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(buf.Bytes()); err != nil {
		c.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("connack % x: refused", ack)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
