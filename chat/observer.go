package chat

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/mqim/mqim/store"
)

// Webhook event types (docs/webhooks.md). Group and friend events are
// "group." and "friend." followed by the event's name.
const (
	EventMessageCreated   = "message.created"
	EventMessageRecalled  = "message.recalled"
	EventMessageEdited    = "message.edited"
	EventConversationRead = "conversation.read"
	EventUserOnline       = "user.online"
	EventUserOffline      = "user.offline"
	EventPushRequested    = "push.requested"
)

// Observer is told of every event the product backend may receive as a
// webhook: typ is the webhook type, data the event's JSON exactly as
// delivered to clients (shared: read it, never modify it). The service calls
// it from its delivery goroutine and from request goroutines, so Observe
// must never block (package webhook queues, or drops and counts).
type Observer interface {
	Observe(typ string, data []byte)
}

// Moderator is the before_send hook (package webhook implements it): it is
// asked, in the sender's goroutine and before the commit, whether a user's
// message may be stored, and may rewrite its body. An error refuses the
// send as unavailable (a Moderator that fails open returns Allow instead).
type Moderator interface {
	Moderate(ctx context.Context, r *ModerationRequest) (*Verdict, error)
}

// ModerationRequest is the message a Moderator judges, as validated.
type ModerationRequest struct {
	From     string          `json:"from"`
	To       string          `json:"to,omitempty"`
	Group    string          `json:"group,omitempty"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	CID      string          `json:"cid,omitempty"`
	Mentions []string        `json:"mentions,omitempty"`
	Ext      json.RawMessage `json:"ext,omitempty"`
	// Edit is set when the message is a new body (type text) for the
	// message with this id (an edit), not a new message.
	Edit string `json:"edit,omitempty"`
}

// Verdict is a Moderator's answer: allow or refuse (with a reason shown to
// the sender), and when allowed, optionally a new body (the type stays).
type Verdict struct {
	Allow  bool
	Body   json.RawMessage // nil: keep the body
	Reason string
}

// ErrModeratorUnavailable is what a fail-closed Moderator returns when it
// could not get an answer.
var ErrModeratorUnavailable = errors.New("the message check is unavailable")

// moderate runs the Moderator on a user's message (system messages are the
// server's own and skip it) and applies its verdict to w's message.
func (s *Service) moderate(ctx context.Context, d *Draft, w *store.Write) error {
	if s.mod == nil || d.System {
		return nil
	}
	m := w.Msg
	r := &ModerationRequest{From: d.From, Type: d.Type, Body: json.RawMessage(m.Body), CID: d.CID,
		Mentions: m.Mentions, Ext: json.RawMessage(m.Ext)}
	if w.Kind == store.KindGroup {
		r.Group = m.To
	} else {
		r.To = m.To
	}
	body, err := s.ask(ctx, r, func(body json.RawMessage) (json.RawMessage, error) {
		// The new body is held to the rules of a client's body.
		nd := *d
		nd.Body, nd.Ext = body, json.RawMessage(m.Ext)
		if err := validateMessage(&nd, s.cfg, false); err != nil {
			return nil, err
		}
		return nd.Body, nil
	})
	if err == nil && body != nil {
		m.Body = []byte(body)
	}
	return err
}

// moderateEdit runs the Moderator on an edit's new body (of message id in
// conv, by uid) and returns the body to store.
func (s *Service) moderateEdit(ctx context.Context, uid, conv, id string, body json.RawMessage) (json.RawMessage, error) {
	if s.mod == nil {
		return body, nil
	}
	r := &ModerationRequest{From: uid, Type: "text", Body: body, Edit: id}
	if gid, ok := strings.CutPrefix(conv, "g:"); ok {
		r.Group = gid
	} else if a, b, ok := DirectUsers(conv); ok {
		r.To = a
		if a == uid {
			r.To = b
		}
	}
	nb, err := s.ask(ctx, r, func(b json.RawMessage) (json.RawMessage, error) {
		if len(b) > s.cfg.MaxPayload {
			return nil, errorf(CodeTooLarge, "body is %d bytes, limit %d", len(b), s.cfg.MaxPayload)
		}
		return validateBody("text", b, s.cfg)
	})
	if err != nil || nb == nil {
		return body, err
	}
	return nb, nil
}

// ask asks the Moderator and returns the rewritten body (validated), nil
// when the body stays, or the refusal.
func (s *Service) ask(ctx context.Context, r *ModerationRequest, validate func(json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	v, err := s.mod.Moderate(ctx, r)
	if err != nil {
		return nil, errorf(CodeUnavailable, "the message check is unavailable, try again")
	}
	if !v.Allow {
		reason := v.Reason
		if reason == "" {
			reason = "refused by the message check"
		}
		return nil, errorf(CodeForbidden, "%s", reason)
	}
	if v.Body == nil {
		return nil, nil
	}
	body, err := validate(v.Body)
	if err != nil {
		// The hook's fault, and it would answer a resend the same way: a
		// permanent refusal rather than unavailable.
		return nil, errorf(CodeForbidden, "the message check rewrote the message into an invalid one: %s", AsError(err).Message)
	}
	return body, nil
}

// observe tells the Observer, if any.
func (s *Service) observe(typ string, data []byte) {
	if s.obs != nil {
		s.obs.Observe(typ, data)
	}
}

// observeGroupEvents tells the Observer of a stored change's group events
// once each: the same event goes to the group topic and to inboxes.
func (s *Service) observeGroupEvents(events []outEvent) {
	if s.obs == nil {
		return
	}
	var prev []byte
	for _, e := range events {
		if string(e.payload) == string(prev) {
			continue
		}
		prev = e.payload
		var ev struct {
			Kind  string `json:"kind"`
			Event string `json:"event"`
		}
		if json.Unmarshal(e.payload, &ev) == nil && ev.Kind != "" && ev.Event != "" {
			s.obs.Observe(ev.Kind+"."+ev.Event, e.payload)
		}
	}
}
