package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/mqim/mqim/store"
)

// This file holds the one rule set for recalling and editing a message,
// whichever door asks (MQTT kinds recall and edit, HTTP POST
// /v1/messages/{id}/recall and PATCH /v1/messages/{id}).
//
// A recall or an edit changes the message in place and is stored as a
// message of its own (a record: type recall, body {id}; type edit, body
// {id, body}; from the actor) with the conversation's next seq, in the same
// group commit: the record goes through submitPending like any message, so
// seq assignment and batching stay in one place. Its live delivery is a
// recall or edit event instead of a msg event.
//
// Rules:
//   - the message must be in a conversation the actor is in and may see
//     (and, over MQTT, in the conversation of the topic published to);
//     otherwise not_found;
//   - system messages and records cannot be recalled or edited (forbidden);
//   - recall: by its sender within chat.recall_window, by a group's owner
//     and admins at any time, by the service key acting as itself at any
//     time; otherwise forbidden. Recalling a recalled message is a no-op:
//     a success with no record and no event;
//   - edit: only one's own text message that is not recalled (forbidden),
//     the new body validated like a text send, not while muted in the group;
//     no time limit. An edit to the body the message already has is a
//     no-op;
//   - both count against the sender's send rate limit (the service key is
//     not limited).

// Types of the records of recalls and edits.
const (
	TypeRecall = "recall"
	TypeEdit   = "edit"
)

// ChangeResult is the outcome of a recall or an edit: the message as it is
// now (recalled, or with its new body and edited_at), and the stored record,
// nil when nothing changed (a no-op).
type ChangeResult struct {
	Msg    *store.Message
	Record *store.Message
}

// change is a pending recall or edit, decided again by the committer
// against the message's latest state (checkChanges).
type change struct {
	orig *store.Message // the message as the rules saw it
	// Set by checkChanges for each commit attempt:
	now  *store.Message // the message once this change applies
	skip bool           // nothing to change: no record
	fail error          // refused at commit time: no record
}

// stores tells whether the pending write is stored (nil: not a change).
func (c *change) stores() bool { return c == nil || (!c.skip && c.fail == nil) }

// refusal is the error of a change refused at commit time (nil otherwise).
func (c *change) refusal() error {
	if c == nil {
		return nil
	}
	return c.fail
}

// Recall withdraws message id. conv, when set, is the conversation the
// request is about (the MQTT topic's): a message elsewhere is not_found.
func (s *Service) Recall(ctx context.Context, a Actor, conv, id string) (*ChangeResult, error) {
	return s.changeMessage(ctx, a, conv, id, nil)
}

// Edit replaces the body of message id (a text message of the actor's).
// conv as for Recall.
func (s *Service) Edit(ctx context.Context, a Actor, conv, id string, body json.RawMessage) (*ChangeResult, error) {
	if body == nil {
		body = json.RawMessage{} // "body is required", not a recall
	}
	return s.changeMessage(ctx, a, conv, id, body)
}

// changeMessage is a recall (edit nil) or an edit.
func (s *Service) changeMessage(ctx context.Context, a Actor, conv, id string, edit json.RawMessage) (*ChangeResult, error) {
	self := a.Service && a.UserID == "" // the product backend, as itself
	if !a.Service {
		if ok, retry := s.sendLim.Allow(a.UserID); !ok {
			return nil, rateLimited("sending", retry)
		}
	}
	if id == "" || len(id) > 32 || !ValidID(id) {
		return nil, errorf(CodeInvalid, "id is not a message id")
	}
	typ := TypeRecall
	if edit != nil {
		typ = TypeEdit
		if self {
			return nil, errorf(CodeForbidden, "the service key edits as a user: name one (user_id)")
		}
		if len(edit) > s.cfg.MaxPayload {
			return nil, errorf(CodeTooLarge, "body is %d bytes, limit %d", len(edit), s.cfg.MaxPayload)
		}
		var err error
		if edit, err = validateBody("text", edit, s.cfg); err != nil {
			return nil, err
		}
	}
	found, err := s.st.MessagesByID(ctx, []string{id})
	if err != nil {
		return nil, AsError(err)
	}
	m := found[id]
	if m == nil || (conv != "" && m.Conv != conv) {
		return nil, errorf(CodeNotFound, "no message %s here", id)
	}
	t, err := convKind(m.Conv)
	if err != nil {
		return nil, err
	}
	// The actor must be in the conversation, and see the message.
	var role string
	var info *CommitInfo
	if t.IsGroup() {
		g, err := s.groups.get(ctx, t.ID)
		if err != nil {
			return nil, AsError(err)
		}
		if g.group.Dissolved {
			return nil, errorf(CodeNotFound, "no message %s here", id)
		}
		if !self {
			mem, ok := g.members[a.UserID]
			if !ok {
				return nil, errorf(CodeNotFound, "no message %s here", id)
			}
			role = mem.Role
			if edit != nil && (mem.MutedUntil > time.Now().UnixMilli() || (g.group.MuteAll && !isAdmin(role))) {
				return nil, errorf(CodeMuted, "muted in %s", t.ID)
			}
		}
		info = &CommitInfo{Group: &g.group, Members: g.members}
	}
	if !self {
		c, err := s.st.Conversation(ctx, a.UserID, m.Conv)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (!c.Active || m.Seq <= c.MinSeq)) {
			return nil, errorf(CodeNotFound, "no message %s here", id)
		}
		if err != nil {
			return nil, AsError(err)
		}
	}
	switch m.Type {
	case "system", TypeRecall, TypeEdit:
		return nil, errorf(CodeForbidden, "%s messages cannot be recalled or edited", m.Type)
	}
	if edit == nil {
		mine := !self && m.From == a.UserID
		switch {
		case self, t.IsGroup() && isAdmin(role):
		case mine && time.Since(time.UnixMilli(m.TS)) <= s.cfg.RecallWindow:
		case mine:
			return nil, errorf(CodeForbidden, "too late to recall: the window is %s", s.cfg.RecallWindow)
		default:
			return nil, errorf(CodeForbidden, "only the sender, or a group's owner and admins, may recall a message")
		}
		if m.Recalled {
			return &ChangeResult{Msg: m}, nil // recalled already: nothing to do
		}
	} else {
		switch {
		case m.From != a.UserID:
			return nil, errorf(CodeForbidden, "only the sender may edit a message")
		case m.Type != "text":
			return nil, errorf(CodeForbidden, "only text messages can be edited")
		case m.Recalled:
			return nil, errorf(CodeForbidden, "a recalled message cannot be edited")
		case bytes.Equal(m.Body, edit):
			return &ChangeResult{Msg: m}, nil // the same text: nothing to do
		}
		// before_send judges the new body as it would a new message.
		if edit, err = s.moderateEdit(ctx, a.UserID, m.Conv, id, edit); err != nil {
			return nil, err
		}
	}
	// The record.
	rec := &store.Message{Conv: m.Conv, From: actorName(a), Type: typ}
	w := &store.Write{Msg: rec, Kind: t.Kind}
	if edit != nil {
		rec.Body = mustJSON(map[string]any{"id": id, "body": json.RawMessage(edit)})
		w.Edit = &store.Edit{ID: id, Body: store.JSON(edit)}
	} else {
		rec.Body = mustJSON(map[string]string{"id": id})
		w.Recall = id
	}
	if !self {
		w.Reader = a.UserID
	}
	switch {
	case t.IsGroup():
		rec.To = t.ID
	case self:
		rec.To = m.To
	default:
		peer, _ := ConvTarget(m.Conv, a.UserID)
		rec.To = peer.ID
	}
	p, err := s.submitPending(ctx, &pending{w: w, info: info, change: &change{orig: m}})
	if err != nil {
		if e := AsError(err); e.Code == CodeConflict {
			return nil, errorf(CodeUnavailable, "conversation busy, try again")
		}
		return nil, err
	}
	c := p.change
	if c.skip {
		return &ChangeResult{Msg: c.now}, nil
	}
	now := *c.now
	if edit != nil {
		now.EditedAt = rec.TS
	}
	return &ChangeResult{Msg: &now, Record: rec}, nil
}

// convKind reads a stored conversation id: a group, or a 1:1 conversation
// (Target.ID is then empty: whose peer depends on who asks).
func convKind(conv string) (Target, error) {
	if t, err := ConvTarget(conv, ""); err == nil {
		return t, nil
	}
	if _, _, ok := DirectUsers(conv); ok {
		return Target{Kind: store.KindDirect}, nil
	}
	return Target{}, errorf(CodeNotFound, "no conversation %s", conv)
}

// checkChanges decides the recalls and edits of a batch again, on the
// committer goroutine, in queue order: against the messages as the rules
// read them or, when lookup is set (a retry: a commit found one recalled
// meanwhile), as stored now; and against the changes before them in the
// batch. A recall of a recalled message, or an edit to the same body, is
// skipped (no record); an edit of a recalled message is refused.
func (s *Service) checkChanges(ctx context.Context, batch []*pending, lookup bool) error {
	var ids []string
	for _, p := range batch {
		if c := p.change; c != nil {
			c.now, c.skip, c.fail = nil, false, nil
			ids = append(ids, c.orig.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	state := map[string]*store.Message{}
	if lookup {
		stored, err := s.st.MessagesByID(ctx, ids)
		if err != nil {
			return err
		}
		state = stored
	}
	for _, p := range batch {
		c := p.change
		if c == nil {
			continue
		}
		cur := state[c.orig.ID]
		if cur == nil {
			cur = c.orig
		}
		next := *cur
		switch {
		case p.w.Recall != "" && cur.Recalled:
			c.skip = true
		case p.w.Recall != "":
			next.Recalled, next.Body, next.Ext = true, store.JSON("null"), nil
		case cur.Recalled:
			c.fail = errorf(CodeForbidden, "a recalled message cannot be edited")
		case bytes.Equal(cur.Body, p.w.Edit.Body):
			c.skip = true
		default:
			next.Body = p.w.Edit.Body
		}
		c.now = &next
		state[c.orig.ID] = &next
	}
	return nil
}

// publishChange delivers a stored recall or edit record as its event where
// the message went: the group's topic, or both users' inboxes.
func (s *Service) publishChange(p *pending) {
	m := p.w.Msg
	var payload []byte
	if p.w.Edit != nil {
		payload = mustJSON(EditEvent{Kind: KindEdit, Conv: m.Conv, ID: p.w.Edit.ID, By: m.From,
			Body: json.RawMessage(p.w.Edit.Body), TS: m.TS, Seq: m.Seq})
		s.observe(EventMessageEdited, payload)
	} else {
		payload = mustJSON(RecallEvent{Kind: KindRecall, Conv: m.Conv, ID: p.w.Recall, By: m.From, TS: m.TS, Seq: m.Seq})
		s.observe(EventMessageRecalled, payload)
	}
	if p.w.Kind == store.KindGroup {
		s.send(GroupTopic(m.To), payload, 1)
		return
	}
	a, b, _ := DirectUsers(m.Conv)
	s.send(UserTopic(a), payload, 1)
	if b != a {
		s.send(UserTopic(b), payload, 1)
	}
}
