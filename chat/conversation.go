package chat

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/mqim/mqim/store"
)

// This file holds what a user sees of their conversations, whichever door
// asks: the list, one conversation, its history, read positions and the
// user's settings. The visibility rule lives here: a member sees the
// messages after their join point (store.Conversation.MinSeq); a former
// member sees them up to their leave event and nothing after it.

// ConvQuery selects a page of a user's conversations, whichever door asks:
// those updated at or after UpdatedAfter (Unix ms; 0: all), after the position
// Cursor names (empty: from the start), at most Limit (1 to
// MaxConvPage).
type ConvQuery struct {
	UpdatedAfter int64
	Cursor       string
	Limit        int
}

// MaxConvPage is the most conversations one page of the list holds.
const MaxConvPage = 200

// Conversations lists uid's conversations as the user may see them: pinned
// first, then newest change first (ties by id). When more remain, next is
// the opaque cursor of the following page; empty at the end. A conversation
// that moves while a client pages may be missed by the pages (it jumps to
// the front) but never by the next UpdatedAfter sync, which is how clients
// keep a list current.
func (s *Service) Conversations(ctx context.Context, uid string, q ConvQuery) (cs []store.Conversation, next string, err error) {
	if q.Limit < 1 || q.Limit > MaxConvPage {
		return nil, "", errorf(CodeInvalid, "limit must be 1 to %d", MaxConvPage)
	}
	if q.UpdatedAfter < 0 {
		return nil, "", errorf(CodeInvalid, "updated_after must not be negative")
	}
	// At or after: a change in the same millisecond as the newest one a
	// client has seen is not missed (it may see that one again).
	sq := store.ConvQuery{UpdatedAfter: max(q.UpdatedAfter-1, 0), Limit: q.Limit + 1}
	if q.Cursor != "" {
		if sq.After, err = decodeConvCursor(q.Cursor); err != nil {
			return nil, "", err
		}
	}
	cs, err = s.st.Conversations(ctx, uid, sq)
	if err != nil {
		return nil, "", AsError(err)
	}
	if len(cs) > q.Limit {
		cs = cs[:q.Limit]
		last := cs[len(cs)-1]
		next = encodeConvCursor(store.ConvCursor{Pinned: last.Pinned, UpdatedAt: last.UpdatedAt, ID: last.ID})
	}
	for i := range cs {
		if err := s.visible(ctx, &cs[i]); err != nil {
			return nil, "", err
		}
	}
	return cs, next, nil
}

// A cursor is the sort key of a page's last row, base64url-encoded so that
// clients treat it as opaque: "p" or "u" (pinned or not), the updated time
// and the conversation id, separated by "|".
func encodeConvCursor(c store.ConvCursor) string {
	p := "u"
	if c.Pinned {
		p = "p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(p + "|" + strconv.FormatInt(c.UpdatedAt, 10) + "|" + c.ID))
}

func decodeConvCursor(s string) (*store.ConvCursor, error) {
	bad := errorf(CodeInvalid, "invalid cursor: pass the X-Next-Cursor of the previous page as is")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 300 {
		return nil, bad
	}
	parts := strings.SplitN(string(b), "|", 3)
	if len(parts) != 3 || (parts[0] != "p" && parts[0] != "u") {
		return nil, bad
	}
	ts, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || ts < 0 || !validConvID(parts[2]) {
		return nil, bad
	}
	return &store.ConvCursor{Pinned: parts[0] == "p", UpdatedAt: ts, ID: parts[2]}, nil
}

// UnreadCounts is a user's unread messages: per conversation with any, and
// the total over those not muted (what a badge shows).
type UnreadCounts struct {
	Total         int64            `json:"total"`
	Conversations map[string]int64 `json:"conversations"`
}

// Unread counts uid's unread messages. Muted conversations are listed but
// left out of the total.
func (s *Service) Unread(ctx context.Context, uid string) (*UnreadCounts, error) {
	us, err := s.st.Unreads(ctx, uid)
	if err != nil {
		return nil, AsError(err)
	}
	out := &UnreadCounts{Conversations: make(map[string]int64, len(us))}
	for _, u := range us {
		out.Conversations[u.Conv] = u.Unread
		if !u.Muted {
			out.Total += u.Unread
		}
	}
	return out, nil
}

// Conversation returns uid's view of one conversation; not_found when the
// id names none the user is or was in.
func (s *Service) Conversation(ctx context.Context, uid, conv string) (*store.Conversation, error) {
	if _, err := ConvTarget(conv, uid); err != nil {
		return nil, err
	}
	c, err := s.st.Conversation(ctx, uid, conv)
	if err != nil {
		return nil, AsError(err)
	}
	if err := s.visible(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// visible cuts a former member's view at their leave event: the last seq
// and last message they may see are the leave's (their read position).
func (s *Service) visible(ctx context.Context, c *store.Conversation) error {
	if c.Active {
		return nil
	}
	c.LastSeq = c.ReadSeq
	if m := c.LastMessage; m == nil || m.Seq <= c.ReadSeq {
		return nil
	}
	ms, err := s.st.Messages(ctx, c.ID, store.MsgQuery{After: c.ReadSeq - 1, Before: c.ReadSeq + 1, Limit: 1})
	if err != nil {
		return AsError(err)
	}
	c.LastMessage = nil
	if len(ms) > 0 {
		c.LastMessage = ms[0]
	}
	return nil
}

// Unread is how many messages of c the user has not read.
func Unread(c *store.Conversation) int64 { return max(0, c.LastSeq-c.ReadSeq) }

// HistoryQuery pages a conversation: Before > 0 pages backward (newest
// first) from before that seq; Forward pages ascending from after After;
// with neither, the newest page, newest first. Limit is 1 to
// MaxHistoryPage.
type HistoryQuery struct {
	After   int64
	Forward bool
	Before  int64
	Limit   int
}

// MaxHistoryPage is the most messages one history page holds.
const MaxHistoryPage = 200

// History returns a page of conv's messages as uid may see them.
func (s *Service) History(ctx context.Context, uid, conv string, hq HistoryQuery) ([]*store.Message, error) {
	if hq.After < 0 || hq.Before < 0 {
		return nil, errorf(CodeInvalid, "after_seq and before_seq must not be negative")
	}
	if hq.Limit < 1 || hq.Limit > MaxHistoryPage {
		return nil, errorf(CodeInvalid, "limit must be 1 to %d", MaxHistoryPage)
	}
	c, err := s.Conversation(ctx, uid, conv)
	if err != nil {
		return nil, err
	}
	q := store.MsgQuery{After: max(hq.After, c.MinSeq), Before: hq.Before, Limit: hq.Limit, Desc: hq.Before > 0 || !hq.Forward}
	if end := c.LastSeq + 1; !c.Active && (q.Before == 0 || q.Before > end) {
		q.Before = end // a former member sees up to their leave
	}
	ms, err := s.st.Messages(ctx, conv, q)
	if err != nil {
		return nil, AsError(err)
	}
	return ms, nil
}

// MarkRead moves uid's read position in conv up to seq (never down, never
// past the last message) and, when it moved, tells the user's devices and,
// in a 1:1 conversation, the peer (the read receipt). It returns the
// position.
func (s *Service) MarkRead(ctx context.Context, uid, conv string, seq int64) (int64, error) {
	t, err := ConvTarget(conv, uid)
	if err != nil {
		return 0, err
	}
	if seq < 0 {
		return 0, errorf(CodeInvalid, "seq must not be negative")
	}
	read, moved, err := s.st.MarkRead(ctx, uid, conv, seq)
	if err != nil {
		return 0, AsError(err)
	}
	if !moved {
		return read, nil // a read that changes nothing emits nothing
	}
	ev := mustJSON(ReadEvent{Kind: KindRead, Conv: conv, User: uid, Seq: read})
	s.observe(EventConversationRead, ev)
	s.send(UserTopic(uid), ev, 1)
	if !t.IsGroup() && t.ID != uid {
		s.send(UserTopic(t.ID), ev, 1)
	}
	return read, nil
}

// ConvPrefs changes a user's settings of a conversation; nil fields stay.
type ConvPrefs = store.ConvPrefs

// SetConvPrefs changes uid's pinned, muted and hidden flags of conv and
// returns the conversation as the user now sees it. When a flag changed,
// all of the user's devices get the conv event, so they stay in step.
func (s *Service) SetConvPrefs(ctx context.Context, uid, conv string, p ConvPrefs) (*store.Conversation, error) {
	if _, err := ConvTarget(conv, uid); err != nil {
		return nil, err
	}
	changed, err := s.st.SetConvPrefs(ctx, uid, conv, p)
	if err != nil {
		return nil, AsError(err)
	}
	c, err := s.Conversation(ctx, uid, conv)
	if err != nil {
		return nil, err
	}
	if changed {
		s.send(UserTopic(uid), mustJSON(ConvEvent{Kind: KindConv, Conv: conv, Pinned: c.Pinned, Muted: c.Muted,
			Hidden: c.Hidden, ReadSeq: c.ReadSeq}), 1)
	}
	return c, nil
}
