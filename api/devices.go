package api

import (
	"net/http"
	"strings"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/internal/token"
	"github.com/mqim/mqim/store"
)

// PresenceReader reports users' connection state.
type PresenceReader interface {
	Presence(uids []string) map[string]hooks.Presence
}

var platforms = map[string]bool{"ios": true, "android": true, "huawei": true}

// putDevice registers a push token for one of the caller's devices. The
// device id is the part after "/" in the device's MQTT client id. A token
// registered before to another user or device moves here.
func (h *handler) putDevice(w http.ResponseWriter, r *http.Request) {
	uid, dev, ok := deviceFor(w, r)
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
	switch {
	case !platforms[in.Platform]:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "platform must be ios, android or huawei")
		return
	case in.Token == "" || len(in.Token) > 255 || strings.ContainsAny(in.Token, " \t\r\n"):
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "token must be 1-255 characters without spaces")
		return
	case len(in.Topic) > 255:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "topic longer than 255 characters")
		return
	}
	if _, err := h.Store.User(r.Context(), uid); err != nil {
		h.fail(w, r, err)
		return
	}
	d := &store.Device{UserID: uid, DeviceID: dev, Platform: in.Platform, Token: in.Token, Topic: in.Topic}
	if err := h.Store.PutDevice(r.Context(), d); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *handler) deleteDevice(w http.ResponseWriter, r *http.Request) {
	uid, dev, ok := deviceFor(w, r)
	if !ok {
		return
	}
	if err := h.Store.DeleteDevice(r.Context(), uid, dev); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) listDevices(w http.ResponseWriter, r *http.Request) {
	uid, ok := actingUser(w, r, "")
	if !ok {
		return
	}
	ds, err := h.Store.Devices(r.Context(), uid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

// deviceFor returns the acting user and the {device_id} path value.
func deviceFor(w http.ResponseWriter, r *http.Request) (uid, dev string, ok bool) {
	if uid, ok = actingUser(w, r, ""); !ok {
		return "", "", false
	}
	if dev, ok = pathID(w, r, "device_id"); !ok {
		return "", "", false
	}
	return uid, dev, true
}

// presence answers GET /v1/presence?user_ids=a,b (at most 200 ids).
func (h *handler) presence(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("user_ids")
	ids := strings.Split(raw, ",")
	if raw == "" || len(ids) > 200 {
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "user_ids must list 1 to 200 user ids")
		return
	}
	for _, id := range ids {
		if !token.ValidID(id) {
			writeError(w, http.StatusBadRequest, chat.CodeInvalid, "invalid user id in user_ids")
			return
		}
	}
	if h.Presence == nil {
		writeError(w, http.StatusServiceUnavailable, chat.CodeUnavailable, "presence is not available")
		return
	}
	writeJSON(w, http.StatusOK, h.Presence.Presence(ids))
}
