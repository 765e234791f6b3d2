package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/store"
)

type groupJSON struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Avatar     string         `json:"avatar"`
	Notice     string         `json:"notice"`
	Owner      string         `json:"owner"`
	JoinPolicy string         `json:"join_policy"`
	MuteAll    bool           `json:"mute_all"`
	Ext        store.JSON     `json:"ext"`
	CreatedAt  int64          `json:"created_at"`
	UpdatedAt  int64          `json:"updated_at"`
	Members    []store.Member `json:"members"`
}

func toGroupJSON(g *store.Group, ms []store.Member) groupJSON {
	if ms == nil {
		ms = []store.Member{}
	}
	return groupJSON{ID: g.ID, Name: g.Name, Avatar: g.Avatar, Notice: g.Notice, Owner: g.Owner, JoinPolicy: g.JoinPolicy,
		MuteAll: g.MuteAll, Ext: g.Ext, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt, Members: ms}
}

func (h *handler) createGroup(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID         string          `json:"id"`
		Name       string          `json:"name"`
		Avatar     string          `json:"avatar"`
		Owner      string          `json:"owner"`
		Members    []string        `json:"members"`
		JoinPolicy string          `json:"join_policy"`
		Ext        json.RawMessage `json:"ext"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	g, ms, err := h.Chat.CreateGroup(r.Context(), actor(r), chat.NewGroup{ID: in.ID, Name: in.Name, Avatar: in.Avatar,
		Owner: in.Owner, Members: in.Members, JoinPolicy: in.JoinPolicy, Ext: in.Ext})
	h.reply(w, r, http.StatusCreated, err, func() any { return toGroupJSON(g, ms) })
}

func (h *handler) getGroup(w http.ResponseWriter, r *http.Request) {
	g, ms, err := h.Chat.Group(r.Context(), actor(r), r.PathValue("gid"))
	h.reply(w, r, http.StatusOK, err, func() any { return toGroupJSON(g, ms) })
}

func (h *handler) addMembers(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserIDs []string `json:"user_ids"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	added, err := h.Chat.AddMembers(r.Context(), actor(r), r.PathValue("gid"), in.UserIDs)
	h.reply(w, r, http.StatusOK, err, func() any { return map[string][]string{"added": added} })
}

func (h *handler) removeMember(w http.ResponseWriter, r *http.Request) {
	err := h.Chat.RemoveMember(r.Context(), actor(r), r.PathValue("gid"), r.PathValue("uid"))
	h.reply(w, r, http.StatusNoContent, err, nil)
}

func (h *handler) updateMember(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Role       *string `json:"role"`
		MutedUntil *int64  `json:"muted_until"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	m, err := h.Chat.UpdateMember(r.Context(), actor(r), r.PathValue("gid"), r.PathValue("uid"), chat.MemberChange{Role: in.Role, MutedUntil: in.MutedUntil})
	h.reply(w, r, http.StatusOK, err, func() any { return m })
}

func (h *handler) patchGroup(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name       *string         `json:"name"`
		Avatar     *string         `json:"avatar"`
		Notice     *string         `json:"notice"`
		MuteAll    *bool           `json:"mute_all"`
		JoinPolicy *string         `json:"join_policy"`
		Ext        json.RawMessage `json:"ext"` // null (kept as "null") clears
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	c := chat.GroupChange{Name: in.Name, Avatar: in.Avatar, Notice: in.Notice, MuteAll: in.MuteAll, JoinPolicy: in.JoinPolicy}
	if len(in.Ext) > 0 {
		c.Ext = &in.Ext
	}
	g, ms, err := h.Chat.UpdateGroup(r.Context(), actor(r), r.PathValue("gid"), c)
	h.reply(w, r, http.StatusOK, err, func() any { return toGroupJSON(g, ms) })
}

func (h *handler) transferGroup(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID string `json:"user_id"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	g, ms, err := h.Chat.Transfer(r.Context(), actor(r), r.PathValue("gid"), in.UserID)
	h.reply(w, r, http.StatusOK, err, func() any { return toGroupJSON(g, ms) })
}

func (h *handler) dissolveGroup(w http.ResponseWriter, r *http.Request) {
	err := h.Chat.Dissolve(r.Context(), actor(r), r.PathValue("gid"))
	h.reply(w, r, http.StatusNoContent, err, nil)
}

func (h *handler) joinGroup(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Message string `json:"message"`
	}
	if !h.decode(w, r, &in, true) {
		return
	}
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	res, err := h.Chat.Join(r.Context(), uid, r.PathValue("gid"), in.Message)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if res.Member == nil {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": res.Status})
		return
	}
	writeJSON(w, http.StatusOK, res.Member)
}

func (h *handler) listRequests(w http.ResponseWriter, r *http.Request) {
	rs, err := h.Chat.JoinRequests(r.Context(), actor(r), r.PathValue("gid"))
	h.reply(w, r, http.StatusOK, err, func() any { return rs })
}

func (h *handler) answerRequest(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Approve *bool `json:"approve"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	if in.Approve == nil {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "approve (true or false) is required"))
		return
	}
	m, err := h.Chat.AnswerRequest(r.Context(), actor(r), r.PathValue("gid"), r.PathValue("uid"), *in.Approve)
	if err != nil || m == nil {
		h.reply(w, r, http.StatusNoContent, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (h *handler) listMembers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			h.fail(w, r, chat.Errorf(chat.CodeInvalid, "limit must be 1 to %d", chat.MaxMemberPage))
			return
		}
		limit = n
	}
	ms, next, err := h.Chat.MemberPage(r.Context(), actor(r), r.PathValue("gid"), limit, q.Get("cursor"))
	if err == nil && next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	h.reply(w, r, http.StatusOK, err, func() any { return ms })
}
