package api

import (
	"net/http"
	"sort"
	"strings"

	"github.com/mqim/mqim/chat"
)

// putDevice registers a push token for one of the caller's devices
// (chat.Service.PutDevice).
func (h *handler) putDevice(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	var in struct {
		Platform string `json:"platform"`
		Token    string `json:"token"`
		Topic    string `json:"topic"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	d, err := h.Chat.PutDevice(r.Context(), uid, r.PathValue("device_id"), chat.DeviceReg{Platform: in.Platform, Token: in.Token, Topic: in.Topic})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *handler) deleteDevice(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	if err := h.Chat.DeleteDevice(r.Context(), uid, r.PathValue("device_id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) listDevices(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	ds, err := h.Chat.Devices(r.Context(), uid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

// presenceJSON is one user's connection state.
type presenceJSON struct {
	Online   bool     `json:"online"`
	Devices  []string `json:"devices"`   // device ids connected now
	LastSeen int64    `json:"last_seen"` // Unix ms of the last connect or disconnect; 0 if never seen by this server
}

// presence answers GET /v1/presence?user_ids=a,b (at most 200 ids), for
// the users the caller may see (chat.Service.VisibleUsers).
func (h *handler) presence(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("user_ids")
	ids := strings.Split(raw, ",")
	if raw == "" || len(ids) > 200 {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "user_ids must list 1 to 200 user ids"))
		return
	}
	visible, err := h.Chat.VisibleUsers(r.Context(), actor(r), ids)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make(map[string]presenceJSON, len(ids))
	for _, uid := range ids {
		if !visible[uid] {
			continue // omitted: not the caller's to see
		}
		clients, lastSeen := h.Presence.Presence(uid)
		p := presenceJSON{Devices: []string{}, LastSeen: lastSeen}
		for _, id := range clients {
			if dev := chat.DeviceID(id, uid); dev != "" {
				p.Devices = append(p.Devices, dev)
			}
		}
		sort.Strings(p.Devices)
		p.Online = len(p.Devices) > 0
		out[uid] = p
	}
	writeJSON(w, http.StatusOK, out)
}
