package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/store"
)

// sendMessage is the HTTP door into the chat service's send pipeline.
func (h *handler) sendMessage(w http.ResponseWriter, r *http.Request) {
	var in struct {
		From     string          `json:"from"`
		To       string          `json:"to"`
		Group    string          `json:"group"`
		Type     string          `json:"type"`
		Body     json.RawMessage `json:"body"`
		CID      string          `json:"cid"`
		ReplyTo  string          `json:"reply_to"`
		Mentions []string        `json:"mentions"`
		Ext      json.RawMessage `json:"ext"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	a := actor(r)
	d := &chat.Draft{To: in.To, Group: in.Group, CID: in.CID, Type: in.Type, Body: in.Body,
		ReplyTo: in.ReplyTo, Mentions: in.Mentions, Ext: in.Ext, Trusted: a.Service}
	switch {
	case a.Service && in.Type == "system":
		d.System, d.From = true, in.From
	default:
		from, ok := h.actingUser(w, r, in.From)
		if !ok {
			return
		}
		d.From = from
	}
	res, err := h.Chat.Send(r.Context(), d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st := http.StatusCreated
	if res.Duplicate {
		st = http.StatusOK
	}
	writeJSON(w, st, chat.NewMsgEvent(res.Msg))
}

// convJSON is one conversation as the API shows it; times are Unix ms.
type convJSON struct {
	ID          string         `json:"id"`
	Kind        string         `json:"kind"`
	Peer        string         `json:"peer,omitempty"`
	Group       string         `json:"group,omitempty"`
	LastSeq     int64          `json:"last_seq"`
	ReadSeq     int64          `json:"read_seq"`
	MinSeq      int64          `json:"min_seq"`
	Unread      int64          `json:"unread"`
	LastMessage *chat.MsgEvent `json:"last_message"`
	Pinned      bool           `json:"pinned"`
	Muted       bool           `json:"muted"`
	Hidden      bool           `json:"hidden"`
	Member      bool           `json:"member"`
	UpdatedAt   int64          `json:"updated_at"`
}

func toConvJSON(uid string, c *store.Conversation) convJSON {
	out := convJSON{ID: c.ID, Kind: c.Kind, LastSeq: c.LastSeq, ReadSeq: c.ReadSeq, MinSeq: c.MinSeq, Unread: chat.Unread(c),
		Pinned: c.Pinned, Muted: c.Muted, Hidden: c.Hidden, Member: c.Active, UpdatedAt: c.UpdatedAt}
	if t, err := chat.ConvTarget(c.ID, uid); err == nil {
		if t.IsGroup() {
			out.Group = t.ID
		} else {
			out.Peer = t.ID
		}
	}
	if m := c.LastMessage; m != nil && m.Seq <= c.LastSeq && m.Seq > c.MinSeq {
		ev := chat.NewMsgEvent(m)
		out.LastMessage = &ev
	}
	return out
}

// parseTime accepts RFC 3339 or Unix milliseconds.
func parseTime(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

func (h *handler) queryInt(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int64) (int64, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "%s must be an integer from %d to %d", name, lo, hi))
		return 0, false
	}
	return n, true
}

// listConversations returns the caller's conversations, pinned first, then
// newest first. Paging: ?limit= (default 50, at most 200); when more remain,
// the X-Next-Cursor response header holds the value to pass as ?cursor= for
// the next page. ?updated_after= (RFC 3339 or Unix ms) lists only what
// changed since.
func (h *handler) listConversations(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	after, ok := parseTime(r.URL.Query().Get("updated_after"))
	if !ok {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "updated_after must be RFC 3339 or Unix milliseconds"))
		return
	}
	limit, ok := h.queryInt(w, r, "limit", 50, 1, chat.MaxConvPage)
	if !ok {
		return
	}
	cs, next, err := h.Chat.Conversations(r.Context(), uid, chat.ConvQuery{UpdatedAfter: after, Cursor: r.URL.Query().Get("cursor"), Limit: int(limit)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	out := make([]convJSON, len(cs))
	for i := range cs {
		out[i] = toConvJSON(uid, &cs[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// unread answers the caller's unread counts.
func (h *handler) unread(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	u, err := h.Chat.Unread(r.Context(), uid)
	h.reply(w, r, http.StatusOK, err, func() any { return u })
}

// listMessages pages a conversation's history: ?after_seq= (ascending) or
// ?before_seq= (descending, newest first), with neither the newest page
// (newest first); &limit= up to 200.
func (h *handler) listMessages(w http.ResponseWriter, r *http.Request) {
	uid, conv, ok := h.convFor(w, r)
	if !ok {
		return
	}
	after, ok := h.queryInt(w, r, "after_seq", 0, 0, 1<<62)
	if !ok {
		return
	}
	before, ok := h.queryInt(w, r, "before_seq", 0, 0, 1<<62)
	if !ok {
		return
	}
	limit, ok := h.queryInt(w, r, "limit", 50, 1, chat.MaxHistoryPage)
	if !ok {
		return
	}
	ms, err := h.Chat.History(r.Context(), uid, conv, chat.HistoryQuery{After: after, Forward: r.URL.Query().Has("after_seq"),
		Before: before, Limit: int(limit)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]chat.MsgEvent, len(ms))
	for i, m := range ms {
		out[i] = chat.NewMsgEvent(m)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) markRead(w http.ResponseWriter, r *http.Request) {
	uid, conv, ok := h.convFor(w, r)
	if !ok {
		return
	}
	var in struct {
		Seq *int64 `json:"seq"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	if in.Seq == nil {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "seq is required"))
		return
	}
	read, err := h.Chat.MarkRead(r.Context(), uid, conv, *in.Seq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conv": conv, "read_seq": read})
}

// patchConversation changes the caller's pinned, muted and hidden flags.
func (h *handler) patchConversation(w http.ResponseWriter, r *http.Request) {
	uid, conv, ok := h.convFor(w, r)
	if !ok {
		return
	}
	var in struct {
		Pinned *bool `json:"pinned"`
		Muted  *bool `json:"muted"`
		Hidden *bool `json:"hidden"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	c, err := h.Chat.SetConvPrefs(r.Context(), uid, conv, chat.ConvPrefs{Pinned: in.Pinned, Muted: in.Muted, Hidden: in.Hidden})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toConvJSON(uid, c))
}

// convFor returns the acting user and the {conv} path value.
func (h *handler) convFor(w http.ResponseWriter, r *http.Request) (uid, conv string, ok bool) {
	if uid, ok = h.actingUser(w, r, ""); !ok {
		return "", "", false
	}
	return uid, r.PathValue("conv"), true
}

// searchMessages finds messages in the caller's conversations:
// ?q= (1 to 100 characters), &conv= (one conversation), &limit= (default
// 20, at most 100), &cursor= (the X-Next-Cursor of the previous page).
// Newest first; the rules are chat.Service.Search's.
func (h *handler) searchMessages(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	limit, ok := h.queryInt(w, r, "limit", 20, 1, chat.MaxSearchPage)
	if !ok {
		return
	}
	v := r.URL.Query()
	ms, next, err := h.Chat.Search(r.Context(), uid, chat.SearchQuery{Q: v.Get("q"), Conv: v.Get("conv"), Cursor: v.Get("cursor"), Limit: int(limit)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	out := make([]chat.MsgEvent, len(ms))
	for i, m := range ms {
		out[i] = chat.NewMsgEvent(m)
	}
	writeJSON(w, http.StatusOK, out)
}
