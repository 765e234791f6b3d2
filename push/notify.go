package push

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/store"
)

// Directory is what the planner reads from the store.
type Directory interface {
	User(ctx context.Context, id string) (*store.User, error)
	DevicesOf(ctx context.Context, userIDs []string) ([]store.Device, error)
	PushStates(ctx context.Context, conv string, userIDs []string) (map[string]store.PushState, error)
}

// Presence tells whether a device (MQTT client id) is connected
// (broker.Broker does).
type Presence interface {
	Connected(clientID string) bool
}

// Enqueuer accepts notifications without blocking (Dispatcher does).
type Enqueuer interface {
	Enqueue(n Notification) bool
}

// PlannerOptions configure a Planner.
type PlannerOptions struct {
	Store    Directory
	Presence Presence
	Out      Enqueuer
	Log      *slog.Logger
	IOSTopic string // APNs topic for iOS devices that registered none
	Queue    int    // messages waiting for a push decision
	Workers  int
}

// Planner decides who gets a push for each stored message (docs/operations.md, "Offline push with gorush")
// and hands the notifications to the dispatcher. It implements
// chat.Committed: Committed only queues (or drops and counts), so the
// delivery goroutine never waits on the database or on gorush.
type Planner struct {
	o     PlannerOptions
	jobs  chan job
	wg    sync.WaitGroup
	once  sync.Once
	names sync.Map // user id -> cachedName
	// Dropped counts messages whose push decision was dropped (queue full).
	Dropped atomic.Int64
	// Planned counts messages whose push decision is made (notifications
	// handed to the dispatcher, or none needed).
	Planned atomic.Int64
}

var _ chat.Committed = (*Planner)(nil)

type job struct {
	m    *store.Message
	info *chat.CommitInfo
}

type cachedName struct {
	name string
	at   time.Time
}

// NewPlanner returns a planner; Start runs its workers.
func NewPlanner(o PlannerOptions) *Planner {
	if o.Queue < 1 {
		o.Queue = 10000
	}
	if o.Workers < 1 {
		o.Workers = 2
	}
	return &Planner{o: o, jobs: make(chan job, o.Queue)}
}

// Start runs the workers.
func (p *Planner) Start() {
	for i := 0; i < p.o.Workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				p.plan(j)
				p.Planned.Add(1)
			}
		}()
	}
}

// Close finishes the queued decisions and stops the workers.
func (p *Planner) Close() {
	p.once.Do(func() { close(p.jobs) })
	p.wg.Wait()
}

// Committed implements chat.Committed. It never blocks.
func (p *Planner) Committed(m *store.Message, info *chat.CommitInfo) {
	if m.Type == "system" {
		return // membership and settings changes are not worth waking a phone
	}
	select {
	case p.jobs <- job{m, info}:
	default:
		p.Dropped.Add(1)
	}
}

// plan turns one message into notifications: every registered device of
// every recipient that is not connected, unless the recipient muted the
// conversation and is not mentioned. The sender is never a recipient.
func (p *Planner) plan(j job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := j.m
	var recipients []string
	if j.info != nil && j.info.Members != nil {
		for uid := range j.info.Members {
			if uid != m.From {
				recipients = append(recipients, uid)
			}
		}
	} else if j.info == nil && m.To != m.From {
		recipients = []string{m.To} // a 1:1 message
	}
	if len(recipients) == 0 {
		return
	}
	devices, err := p.o.Store.DevicesOf(ctx, recipients)
	if err != nil {
		p.o.Log.Warn("push: devices lookup failed", "conv", m.Conv, "msg_id", m.ID, "error", err)
		return
	}
	var offline []store.Device
	for _, d := range devices {
		if !p.o.Presence.Connected(chat.ClientID(d.UserID, d.DeviceID)) {
			offline = append(offline, d)
		}
	}
	if len(offline) == 0 {
		return
	}
	users := make([]string, 0, len(offline))
	for _, d := range offline {
		if !slices.Contains(users, d.UserID) {
			users = append(users, d.UserID)
		}
	}
	states, err := p.o.Store.PushStates(ctx, m.Conv, users)
	if err != nil {
		p.o.Log.Warn("push: state lookup failed", "conv", m.Conv, "msg_id", m.ID, "error", err)
		return
	}
	title, body := p.texts(ctx, m, j.info)
	type key struct{ user, platform, topic string }
	groups := map[key]*Notification{}
	var order []key
	for _, d := range offline {
		st := states[d.UserID]
		if st.Muted && !mentioned(m, d.UserID, j.info) {
			continue
		}
		topic := ""
		if d.Platform == store.PlatformIOS {
			topic = d.Topic
			if topic == "" {
				topic = p.o.IOSTopic
			}
		}
		k := key{d.UserID, d.Platform, topic}
		n := groups[k]
		if n == nil {
			n = &Notification{UserID: d.UserID, Platform: d.Platform, Topic: topic, Title: title, Body: body,
				Badge: int(st.Unread), ThreadID: m.Conv, Data: map[string]any{"conv": m.Conv, "id": m.ID, "seq": m.Seq}}
			groups[k] = n
			order = append(order, k)
		}
		n.Tokens = append(n.Tokens, d.Token)
	}
	for _, k := range order {
		p.o.Out.Enqueue(*groups[k])
	}
}

// mentioned: an @mention of the user, or @all by the owner or an admin.
func mentioned(m *store.Message, uid string, info *chat.CommitInfo) bool {
	for _, x := range m.Mentions {
		if x == uid {
			return true
		}
		if x == "all" && info != nil {
			if r := info.Members[m.From].Role; r == store.RoleOwner || r == store.RoleAdmin {
				return true
			}
		}
	}
	return false
}

// texts returns the title (the sender's name, or the group's name) and the
// preview (prefixed with the sender's name in groups).
func (p *Planner) texts(ctx context.Context, m *store.Message, info *chat.CommitInfo) (string, string) {
	sender := p.name(ctx, m.From)
	preview := Preview(m.Type, m.Body, 100)
	if info != nil && info.Group != nil {
		title := info.Group.Name
		if title == "" {
			title = info.Group.ID
		}
		return title, sender + ": " + preview
	}
	return sender, preview
}

func (p *Planner) name(ctx context.Context, uid string) string {
	if v, ok := p.names.Load(uid); ok && time.Since(v.(cachedName).at) < 5*time.Minute {
		return v.(cachedName).name
	}
	name := uid
	if u, err := p.o.Store.User(ctx, uid); err == nil && u.Name != "" {
		name = u.Name
	}
	p.names.Store(uid, cachedName{name, time.Now()})
	return name
}

// Preview is the notification text of a message: text truncated to max
// characters (not bytes, so multi-byte scripts stay valid), or a bracketed
// word for media; for an edit record the new text, for a recall record
// "[message recalled]".
func Preview(typ string, body []byte, max int) string {
	switch typ {
	case "text":
		var b struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(body, &b)
		t := strings.Join(strings.Fields(b.Text), " ")
		if utf8.RuneCountInString(t) <= max {
			return t
		}
		r := []rune(t)
		return string(r[:max-1]) + "…"
	case "image":
		return "[image]"
	case "audio":
		return "[voice]"
	case "video":
		return "[video]"
	case "file":
		return "[file]"
	case "location":
		return "[location]"
	case "card":
		return "[contact]"
	case chat.TypeRecall:
		// Pushed with the conversation's thread/collapse id, so it replaces
		// the notification of the message it withdraws.
		return "[message recalled]"
	case chat.TypeEdit:
		var b struct {
			Body json.RawMessage `json:"body"`
		}
		_ = json.Unmarshal(body, &b)
		return Preview("text", b.Body, max)
	default:
		return "[message]"
	}
}
