// Package chat is mqim's chat service: the single send pipeline (validate →
// persist in group commits → deliver over MQTT → hand off to push and
// webhooks) and group membership. The MQTT hook and the HTTP API are two thin
// doors into it; every rule lives here.
package chat

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/mqim/mqim/internal/config"
	"github.com/mqim/mqim/internal/queue"
	"github.com/mqim/mqim/internal/ratelimit"
	"github.com/mqim/mqim/internal/token"
	"github.com/mqim/mqim/store"
)

// Verifier checks access tokens' signatures and expiry.
type Verifier interface {
	Verify(raw string) (token.Claims, error)
}

// Deliverer publishes server events to MQTT topics (broker.Broker does). It
// is called from the service's delivery goroutine and from request
// goroutines; Deliver must not block on slow subscribers (the store is the
// source of truth, so an event that cannot be queued may be dropped).
type Deliverer interface {
	Deliver(topic string, payload []byte, qos byte) error
}

// Subscriber keeps users' MQTT sessions (live, and stored persistent ones)
// subscribed to the topics they may read (broker.Broker does). Membership
// changes call it from the delivery goroutine, in commit order, before the
// change's events are delivered, so a joiner sees its own "joined" event and
// a leaver's last event is the "left" one. A dissolve is the exception:
// its members are unsubscribed after its events, which reach them on the
// group topic too.
type Subscriber interface {
	SubscribeUsers(topic string, uids []string)
	UnsubscribeUsers(topic string, uids []string)
}

// Disconnector ends users' live MQTT connections (broker.Broker does); the
// service calls it when a user may no longer be connected (disabled).
type Disconnector interface {
	DisconnectUser(uid string)
}

// Peers are the other nodes of a cluster (cluster.Node is). They are told
// of every change this node makes to what the service caches (the kinds
// are the Cache constants), and of every charge to a limit that holds
// across the cluster (the Limit constants), so that they drop their
// copies and charge their own limiters: Forget and Charge are the other
// end. Calls come from the committer and from request goroutines; they
// must not block. Route, called from Send, hands a group message to the
// node that owns its conversation (route.go) and waits for its answer,
// or says local when this node is the owner or no owner answers;
// CommitRouted is the other end.
type Peers interface {
	Forgot(kind string, keys []string)
	Charged(limit, key string)
	Route(ctx context.Context, conv string, req []byte) (resp []byte, local bool, err error)
}

// What the service caches, as Peers and Forget name it.
const (
	CacheGroup      = "group"       // a group and its members, by group id
	CacheBlocks     = "blocks"      // whom a user blocked, by user id
	CacheFriends    = "friends"     // a user's friends, by user id
	CacheUserGroups = "user_groups" // the groups a user belongs to, by user id
)

// The limits that hold across a cluster, as Peers and Charge name them:
// failed logins (per user id and per address) and group creations, all
// rare, so every charge is told to every node.
const (
	LimitLogin  = "login"
	LimitAddr   = "addr"
	LimitGroups = "groups"
)

// Committed is told about every stored message after its commit, in seq
// order per conversation, from the delivery goroutine. It must not block
// (push and webhooks queue their work).
type Committed interface {
	Committed(m *store.Message, c *CommitInfo)
}

// CommitInfo carries what listeners of Committed may need besides the
// message: for a group message, the group and its members at send time (a
// shared snapshot: read it, never modify it). Nil for 1:1 messages.
type CommitInfo struct {
	Group   *store.Group
	Members map[string]store.Member
}

// Service is the chat service. Create it with New, start it with Start, and
// stop it with Close. All methods are safe for concurrent use.
type Service struct {
	st   store.Store
	log  *slog.Logger
	cfg  config.Chat
	out  Deliverer
	subs Subscriber
	kick Disconnector
	post []Committed
	tok  Verifier
	obs  Observer
	mod  Moderator
	// peers, if not nil, are the other nodes of the cluster.
	peers Peers

	// Per-user limits (Options.Limits).
	sendLim, typingLim, groupLim *ratelimit.Keyed
	// Failed logins, per user id and per remote address.
	loginLim, addrLim *ratelimit.Keyed
	// storeDown is set while commits fail, so that the recovery is said once.
	storeDown atomic.Bool

	groups *groupCache
	users  *userCache
	soc    *social // friends, blocks, the 1:1 policy (social.go)

	queue   chan *pending
	deliver chan []*pending
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	commits  atomic.Int64
	messages atomic.Int64
	// conflicts counts commits refused because another writer (a node of
	// the cluster) took a seq first.
	conflicts atomic.Int64

	// Owned by the committer goroutine.
	seqs    map[string]int64
	entropy *ulid.MonotonicEntropy
}

// Options are the service's collaborators and settings. Store, Log and
// Config are required. The MQTT side (Deliverer, Subscriber, Disconnector,
// all implemented by broker.Broker) may be left nil only where no MQTT
// clients exist (tests, tools): events then go nowhere.
type Options struct {
	Store        store.Store
	Log          *slog.Logger
	Config       config.Chat
	Limits       config.Limits
	Tokens       Verifier      // required for Authenticate
	CacheTTL     time.Duration // membership and user caches; 0: 5 minutes
	Deliverer    Deliverer
	Subscriber   Subscriber
	Disconnector Disconnector
	// Committed listeners (push) are told of every stored message.
	Committed []Committed
	// Observer (webhooks) is told of every event webhooks carry; nil: none.
	Observer Observer
	// Moderator (before_send) judges users' messages before they are
	// stored; nil: none.
	Moderator Moderator
	// Peers are the other nodes of a cluster; nil: this node is alone.
	Peers Peers
}

// New returns a service; call Start before sending.
func New(o Options) *Service {
	if o.CacheTTL <= 0 {
		o.CacheTTL = 5 * time.Minute
	}
	if o.Deliverer == nil {
		o.Deliverer = nowhere{}
	}
	if o.Subscriber == nil {
		o.Subscriber = nowhere{}
	}
	if o.Disconnector == nil {
		o.Disconnector = nowhere{}
	}
	var changed func(kind string, keys []string)
	if o.Peers != nil {
		changed = o.Peers.Forgot
	}
	return &Service{
		peers:     o.Peers,
		st:        o.Store,
		log:       o.Log,
		cfg:       o.Config,
		out:       o.Deliverer,
		subs:      o.Subscriber,
		kick:      o.Disconnector,
		post:      o.Committed,
		obs:       o.Observer,
		mod:       o.Moderator,
		tok:       o.Tokens,
		sendLim:   ratelimit.New(o.Limits.SendRate, o.Limits.SendBurst),
		typingLim: ratelimit.New(o.Limits.TypingRate, o.Limits.TypingBurst),
		groupLim:  ratelimit.New(o.Limits.GroupsPerHour/3600, o.Limits.GroupBurst),
		loginLim:  ratelimit.New(o.Limits.LoginFailuresPerMinute/60, o.Limits.LoginFailureBurst),
		addrLim:   ratelimit.New(o.Limits.AddrFailuresPerMinute/60, o.Limits.AddrFailureBurst),
		groups:    newGroupCache(o.Store, o.CacheTTL, tellKind(changed, CacheGroup)),
		users:     newUserCache(o.Store, o.CacheTTL),
		soc:       newSocial(o.Store, o.CacheTTL, o.Limits, changed),
		queue:     make(chan *pending, 4*o.Config.BatchMax),
		deliver:   make(chan []*pending, 1024),
		stop:      make(chan struct{}),
		seqs:      map[string]int64{},
		entropy:   ulid.Monotonic(rand.Reader, 0),
	}
}

// tellKind binds changed to one kind of cache (nil stays nil).
func tellKind(changed func(kind string, keys []string), kind string) func([]string) {
	if changed == nil {
		return nil
	}
	return func(keys []string) { changed(kind, keys) }
}

// Forget drops what the service caches of keys, of one kind (a Cache
// constant): another node of the cluster changed it (Peers.Forgot there).
// Unknown kinds are ignored, so that a newer node's kinds do no harm.
func (s *Service) Forget(kind string, keys []string) {
	switch kind {
	case CacheGroup:
		for _, k := range keys {
			s.groups.drop(k)
		}
	case CacheBlocks:
		s.soc.blocks.drop(keys...)
	case CacheFriends:
		s.soc.friends.drop(keys...)
	case CacheUserGroups:
		s.soc.groups.drop(keys...)
	}
}

// ForgetAll drops every cached group and social set: a node that lost its
// link to the others may have missed their changes.
func (s *Service) ForgetAll() {
	s.groups.reset()
	for _, c := range []*setCache{s.soc.blocks, s.soc.friends, s.soc.groups} {
		c.reset()
	}
}

// Charge charges one attempt to a cluster-wide limit (a Limit constant)
// that another node charged (Peers.Charged there).
func (s *Service) Charge(limit, key string) {
	switch limit {
	case LimitLogin:
		s.loginLim.Hit(key)
	case LimitAddr:
		s.addrLim.Hit(key)
	case LimitGroups:
		s.groupLim.Hit(key)
	}
}

// charged tells the peers of a charge to a cluster-wide limit.
func (s *Service) charged(limit, key string) {
	if s.peers != nil {
		s.peers.Charged(limit, key)
	}
}

// nowhere is the MQTT side of a service that has none.
type nowhere struct{}

func (nowhere) Deliver(string, []byte, byte) error { return nil }
func (nowhere) SubscribeUsers(string, []string)    {}
func (nowhere) UnsubscribeUsers(string, []string)  {}
func (nowhere) DisconnectUser(string)              {}

// Start runs the committer and delivery goroutines.
func (s *Service) Start() {
	s.wg.Add(2)
	go s.commitLoop()
	go s.deliverLoop()
}

// Close stops accepting sends, finishes the commits and deliveries under
// way, and returns when both goroutines have ended.
func (s *Service) Close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// Draft is a message to send, as it comes from either door.
type Draft struct {
	From     string
	To       string // a user id (1:1); empty for a group
	Group    string // a group id; empty for 1:1
	CID      string
	Type     string
	Body     json.RawMessage
	ReplyTo  string
	Mentions []string
	Ext      json.RawMessage
	// System marks a server-authored message (service key); only then may
	// Type be "system".
	System bool
	// Trusted marks a send by the product backend (the service key): it is
	// not held to the sender's rate limit.
	Trusted bool
}

// SendResult is a stored message and whether it was stored earlier (a
// resend of the same cid).
type SendResult struct {
	Msg       *store.Message
	Duplicate bool
}

// Send validates d, stores it, and returns once it is durably committed.
// Delivery over MQTT follows asynchronously, in seq order. Errors are
// *Error values.
func (s *Service) Send(ctx context.Context, d *Draft) (*SendResult, error) {
	if !d.Trusted && !d.System {
		if ok, retry := s.sendLim.Allow(d.From); !ok {
			return nil, rateLimited("sending", retry)
		}
	}
	if err := validateMessage(d, s.cfg, d.System); err != nil {
		return nil, err
	}
	if d.From != "" || !d.System {
		// The MQTT door's sender is authenticated; the service key names one.
		if !ValidID(d.From) {
			return nil, errorf(CodeInvalid, "invalid sender id")
		}
		if err := s.users.exists(ctx, d.From); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, errorf(CodeNotFound, "no user %s", d.From)
			}
			return nil, AsError(err)
		}
	}
	w, info, err := s.authorize(ctx, d)
	if err != nil {
		return nil, AsError(err)
	}
	// before_send: here, in the caller's goroutine, never in the committer's.
	if err := s.moderate(ctx, d, w); err != nil {
		return nil, err
	}
	if res, done, err := s.route(ctx, w); done {
		return res, err
	}
	return s.commitMessage(ctx, w, info)
}

// commitMessage stores a checked message write through the group commit
// and returns once it is committed (Send, and CommitRouted for a message
// another node checked).
func (s *Service) commitMessage(ctx context.Context, w *store.Write, info *CommitInfo) (*SendResult, error) {
	p, err := s.submitPending(ctx, &pending{w: w, info: info})
	if err != nil {
		if e := AsError(err); e.Code == CodeConflict {
			// Seqs still taken after retries: another writer is busy on this
			// conversation. Transient, so MQTT 3.1.1 senders retransmit.
			return nil, errorf(CodeUnavailable, "conversation busy, try again")
		}
		return nil, err
	}
	return &SendResult{Msg: p.w.Msg, Duplicate: p.dup}, nil
}

// authorize checks that d.From may send to its destination and builds the
// write.
func (s *Service) authorize(ctx context.Context, d *Draft) (*store.Write, *CommitInfo, error) {
	m := &store.Message{From: d.From, CID: d.CID, Type: d.Type, Body: store.JSON(d.Body), ReplyTo: d.ReplyTo,
		Mentions: dedupe(d.Mentions), Ext: store.JSON(d.Ext)}
	if len(m.Ext) == 0 || string(m.Ext) == "null" {
		m.Ext = nil
	}
	switch {
	case d.Group != "" && d.To != "":
		return nil, nil, errorf(CodeInvalid, "give either a user or a group, not both")
	case d.Group != "":
		if !ValidID(d.Group) {
			return nil, nil, errorf(CodeInvalid, "invalid group id")
		}
		g, err := s.groups.get(ctx, d.Group)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, errorf(CodeNotFound, "no group %s", d.Group)
			}
			return nil, nil, err
		}
		if g.group.Dissolved {
			return nil, nil, errorf(CodeNotFound, "group %s was dissolved", d.Group)
		}
		if !d.System {
			mem, ok := g.members[d.From]
			if !ok {
				return nil, nil, errorf(CodeNotMember, "not a member of %s", d.Group)
			}
			admin := mem.Role == store.RoleOwner || mem.Role == store.RoleAdmin
			if mem.MutedUntil > time.Now().UnixMilli() || (g.group.MuteAll && !admin) {
				return nil, nil, errorf(CodeMuted, "muted in %s", d.Group)
			}
		}
		m.Conv, m.To = GroupConv(d.Group), d.Group
		w := &store.Write{Msg: m, Kind: store.KindGroup}
		if !d.System {
			w.Reader = d.From
		}
		return w, &CommitInfo{Group: &g.group, Members: g.members}, nil
	case d.To != "":
		if !ValidID(d.To) {
			return nil, nil, errorf(CodeInvalid, "invalid user id")
		}
		if d.System {
			return nil, nil, errorf(CodeInvalid, "system messages go to groups")
		}
		if err := s.users.exists(ctx, d.To); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, errorf(CodeNotFound, "no user %s", d.To)
			}
			return nil, nil, err
		}
		if err := s.checkDirect(ctx, d.From, d.To); err != nil {
			return nil, nil, err
		}
		m.Conv, m.To = DirectConv(d.From, d.To), d.To
		parts := []string{d.From}
		if d.To != d.From {
			parts = append(parts, d.To)
		}
		return &store.Write{Msg: m, Kind: store.KindDirect, Participants: parts, Reader: d.From}, nil, nil
	default:
		return nil, nil, errorf(CodeInvalid, "a destination (user or group) is required")
	}
}

func dedupe(xs []string) []string {
	if len(xs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(xs))
	out := xs[:0:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// pending is one write waiting for the committer.
type pending struct {
	w    *store.Write
	done chan error
	dup  bool
	// dupOf is the write of the same sender and cid earlier in the batch.
	dupOf *pending
	// opens: this write is the first of its conversation (its Participants
	// join); set by prepare for each attempt.
	opens bool
	// after runs on the delivery goroutine, before the message is
	// delivered (membership changes update subscriptions there).
	after func()
	info  *CommitInfo
	// extra events to deliver after the message event.
	events []outEvent
	// change is set for a recall or edit record (recall.go).
	change *change
	// delivered runs on the delivery goroutine after the events were
	// delivered (a dissolve unsubscribes the members there).
	delivered func()
}

type outEvent struct {
	topic   string
	payload []byte
}

func (s *Service) submitPending(ctx context.Context, p *pending) (*pending, error) {
	p.done = make(chan error, 1)
	timeout := time.NewTimer(s.cfg.CommitTimeout)
	defer timeout.Stop()
	select {
	case s.queue <- p:
	case <-ctx.Done():
		return nil, errorf(CodeUnavailable, "cancelled")
	case <-timeout.C:
		return nil, errorf(CodeUnavailable, "the server is busy, try again")
	case <-s.stop:
		return nil, errorf(CodeUnavailable, "the server is shutting down")
	}
	select {
	case err := <-p.done:
		if err != nil {
			return nil, AsError(err)
		}
		return p, nil
	case <-ctx.Done():
		return nil, errorf(CodeUnavailable, "cancelled")
	case <-timeout.C:
		// The commit may still land; a resend with the same cid finds it.
		return nil, errorf(CodeUnavailable, "storage is slow, try again")
	}
}

// commitLoop is the group commit: it takes what has queued up while the
// previous commit ran (up to BatchMax), assigns seqs from memory, writes
// the batch in one transaction, and wakes every waiter.
func (s *Service) commitLoop() {
	defer s.wg.Done()
	defer close(s.deliver)
	for {
		var first *pending
		select {
		case first = <-s.queue:
		case <-s.stop:
			// Drain what was accepted before the stop.
			for {
				select {
				case p := <-s.queue:
					s.commitBatch([]*pending{p})
				default:
					return
				}
			}
		}
		s.commitBatch(queue.Drain(s.queue, []*pending{first}, s.cfg.BatchMax))
	}
}

func (s *Service) commitBatch(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	defer cancel()
	if err := s.commitWith(ctx, batch, false); err != nil && len(batch) > 1 && ctx.Err() == nil {
		// One write the database refuses (a duplicate member, a bad row) must
		// not fail everyone else's: the batch is retried one write at a time.
		// (With the database down, each of these fails fast too.)
		s.log.Warn("batch commit failed, retrying its writes one by one", "messages", len(batch), "error", err)
		for _, p := range batch {
			_ = s.commitWith(ctx, []*pending{p}, true)
		}
	}
}

// commitWith writes one batch (retrying seq conflicts), then wakes its
// waiters and hands it to delivery. It reports the error only when the
// waiters have not been told yet (the caller may retry the writes).
func (s *Service) commitWith(ctx context.Context, batch []*pending, alone bool) error {
	var err error
	var fresh []*pending
	for attempt := 0; attempt < 3; attempt++ {
		// Resends are rare: the unique (sender, cid) key finds them, and only
		// then (or when a write is retried alone) does prepare look cids up.
		fresh, err = s.prepare(ctx, batch, attempt > 0 || alone)
		if err != nil {
			break
		}
		writes := make([]store.Write, len(fresh))
		for i, p := range fresh {
			writes[i] = *p.w
			if !p.opens {
				writes[i].Participants = nil // the conversation and its members exist
			}
		}
		err = s.st.Commit(ctx, writes)
		if err == nil {
			break
		}
		// The seqs we handed out are not taken: forget them, reload, retry
		// on a conflict (another node wrote), give up otherwise.
		for _, p := range fresh {
			delete(s.seqs, p.w.Msg.Conv)
		}
		if !errors.Is(err, store.ErrConflict) {
			break
		}
		s.conflicts.Add(1)
	}
	if err != nil {
		if !alone && len(batch) > 1 && ctx.Err() == nil {
			return err // the caller retries the writes one by one
		}
		if errors.Is(err, store.ErrConflict) {
			s.log.Warn("commit refused", "messages", len(batch), "error", err)
		} else {
			s.storeDown.Store(true)
			s.log.Error("commit failed", "messages", len(batch), "error", err)
		}
		for _, p := range batch {
			p.done <- err
		}
		return nil
	}
	if s.storeDown.CompareAndSwap(true, false) {
		s.log.Info("store is back: commits succeed again")
	}
	if len(fresh) > 0 {
		s.commits.Add(1)
		s.messages.Add(int64(len(fresh)))
	}
	for _, p := range fresh {
		s.afterCommit(p)
	}
	for _, p := range batch {
		if p.dupOf != nil {
			*p.w.Msg = *p.dupOf.w.Msg
		}
		p.done <- p.change.refusal() // nil but for a change refused at commit time
	}
	// Duplicates go along: their echo tells the sender the original id and seq.
	s.deliver <- batch
	return nil
}

// prepare resolves duplicates (by sender and cid: within the batch, and in
// the store when lookup is set), loads the seqs of conversations not yet known in one query,
// and assigns seq, id and ts to the rest, in queue order.
func (s *Service) prepare(ctx context.Context, batch []*pending, lookup bool) ([]*pending, error) {
	if len(s.seqs) > 100_000 {
		s.seqs = map[string]int64{} // bounded memory; reloads are one query per batch
	}
	if err := s.checkChanges(ctx, batch, lookup); err != nil {
		return nil, err
	}
	var keys [][2]string
	var unknown []string
	for _, p := range batch {
		p.dup, p.dupOf = false, nil
		m := p.w.Msg
		if m.CID != "" && lookup {
			keys = append(keys, [2]string{m.From, m.CID})
		}
		if _, ok := s.seqs[m.Conv]; !ok {
			unknown = append(unknown, m.Conv)
		}
	}
	var stored map[string]*store.Message
	if len(keys) > 0 {
		var err error
		if stored, err = s.st.MessagesByCID(ctx, keys); err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		last, err := s.st.LastSeqs(ctx, unknown)
		if err != nil {
			return nil, err
		}
		for _, c := range unknown {
			s.seqs[c] = last[c] // 0 for a new conversation
		}
	}
	fresh := batch[:0:0]
	inBatch := map[string]*pending{}
	now := time.Now()
	for _, p := range batch {
		m := p.w.Msg
		if !p.change.stores() {
			continue // a no-op or refused recall or edit: no record
		}
		if m.CID != "" {
			key := m.From + "\x00" + m.CID
			if old, ok := stored[key]; ok {
				*m = *old
				p.dup = true
				continue
			}
			if first, ok := inBatch[key]; ok {
				p.dup, p.dupOf = true, first // gets first's id and seq once committed
				continue
			}
			inBatch[key] = p
		}
		// Decided per attempt: a retry after a failure may open it again.
		p.opens = s.seqs[m.Conv] == 0
		s.seqs[m.Conv]++
		m.Seq = s.seqs[m.Conv]
		m.TS = now.UnixMilli()
		m.ID = ulid.MustNew(ulid.Timestamp(now), s.entropy).String()
		fresh = append(fresh, p)
	}
	return fresh, nil
}

// afterCommit updates caches that later sends rely on; it runs on the
// committer goroutine so that the next batch sees the change.
func (s *Service) afterCommit(p *pending) {
	w := p.w
	if w.Kind != store.KindGroup {
		return
	}
	if w.NewGroup != nil || len(w.AddMembers) > 0 || len(w.RemoveMembers) > 0 || len(w.UpdateMembers) > 0 ||
		w.UpdateGroup != nil || w.DissolveGroup {
		s.groups.apply(w.Msg.To, w)
		s.soc.membershipChanged(w)
	}
}

// deliverLoop publishes committed messages in commit order.
func (s *Service) deliverLoop() {
	defer s.wg.Done()
	for batch := range s.deliver {
		for _, p := range batch {
			if !p.change.stores() {
				continue // nothing was stored, nothing to tell
			}
			if p.dup {
				// A resend: answer the sender's devices only, with the original.
				s.send(UserTopic(p.w.Msg.From), mustJSON(NewMsgEvent(p.w.Msg)), 1)
				continue
			}
			if p.after != nil {
				p.after()
			}
			s.publish(p)
			if p.delivered != nil {
				p.delivered()
			}
			for _, l := range s.post {
				l.Committed(p.w.Msg, p.info)
			}
		}
	}
}

// publish sends the msg event to the destination and echoes it to the
// sender's inbox (for groups the sender's devices are on the group topic).
func (s *Service) publish(p *pending) {
	m := p.w.Msg
	if p.change != nil {
		s.publishChange(p) // a recall or edit event instead of the msg event
		return
	}
	payload := mustJSON(NewMsgEvent(m))
	s.observe(EventMessageCreated, payload)
	s.observeGroupEvents(p.events)
	if p.w.Kind == store.KindGroup {
		s.send(GroupTopic(m.To), payload, 1)
	} else {
		s.send(UserTopic(m.To), payload, 1)
		if m.From != m.To {
			s.send(UserTopic(m.From), payload, 1)
		}
	}
	for _, e := range p.events {
		s.send(e.topic, e.payload, 1)
	}
}

func (s *Service) send(topic string, payload []byte, qos byte) {
	if err := s.out.Deliver(topic, payload, qos); err != nil {
		s.log.Warn("deliver failed", "topic", topic, "error", err)
	}
}

// Conflicts counts the commits the store refused because another writer
// had taken one of their seqs (each was retried with fresh seqs).
func (s *Service) Conflicts() int64 { return s.conflicts.Load() }

// QueueLen is how many writes wait for the committer.
func (s *Service) QueueLen() int { return len(s.queue) }

// Stats reports how many transactions committed messages and how many
// messages they stored, since start.
func (s *Service) Stats() (commits, messages int64) { return s.commits.Load(), s.messages.Load() }

// SendError tells the sender's devices that a publish from its device was
// refused.
func (s *Service) SendError(uid, device, cid string, e *Error) {
	ev := ErrorEvent{Kind: "error", CID: cid, Device: device, Code: e.Code, Message: e.Message}
	if e.Code == CodeRateLimited {
		ev.RetryAfter = e.RetryAfterSeconds()
	}
	s.send(UserTopic(uid), mustJSON(ev), 1)
}

// AdmitRequest counts one request over MQTT (im/rpc) against the user's
// send rate: rate_limited, with when to retry, past it.
func (s *Service) AdmitRequest(uid string) error {
	if ok, retry := s.sendLim.Allow(uid); !ok {
		return rateLimited("requests", retry)
	}
	return nil
}

// Typing relays a typing notice from a user to t at QoS 0; nothing is
// stored. It is relayed only inside a conversation that exists: to a group
// the user belongs to, or to a user they already have a 1:1 conversation
// with, at most at the typing rate.
func (s *Service) Typing(ctx context.Context, from string, t Target) error {
	if ok, retry := s.typingLim.Allow(from); !ok {
		return rateLimited("typing", retry)
	}
	if t.IsGroup() {
		g, err := s.groups.get(ctx, t.ID)
		if err != nil {
			return AsError(err)
		}
		if g.group.Dissolved {
			return errorf(CodeNotFound, "group %s was dissolved", t.ID)
		}
		if _, ok := g.members[from]; !ok {
			return errorf(CodeNotMember, "not a member of %s", t.ID)
		}
	} else if _, err := s.st.Conversation(ctx, from, t.Conv(from)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(CodeNotFound, "no conversation with %s", t.ID)
		}
		return AsError(err)
	}
	s.send(t.Topic(), mustJSON(TypingEvent{Kind: KindTyping, Conv: t.Conv(from), User: from}), 0)
	return nil
}

// IsMember tells whether uid belongs to gid, from the cache. Used by the
// MQTT ACL on every delivery, so it is cheap after the first call.
func (s *Service) IsMember(ctx context.Context, gid, uid string) (bool, error) {
	g, err := s.groups.get(ctx, gid)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, ok := g.members[uid]
	// A dissolved group's members stay readers until its last events reach
	// them (groupEntry.draining).
	return ok && (!g.group.Dissolved || g.draining), nil
}

func idOrNew(id string) string {
	if id != "" {
		return id
	}
	return strings.ToLower(ulid.Make().String())
}
