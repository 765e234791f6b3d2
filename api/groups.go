package api

import (
	"encoding/json"
	"net/http"

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
