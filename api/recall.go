package api

import (
	"encoding/json"
	"net/http"

	"github.com/mqim/mqim/chat"
)

// changeJSON answers a recall or an edit: the message as history now shows
// it, and the stored record (null when nothing changed).
type changeJSON struct {
	Message chat.MsgEvent  `json:"message"`
	Record  *chat.MsgEvent `json:"record"`
}

func toChangeJSON(res *chat.ChangeResult) changeJSON {
	out := changeJSON{Message: chat.NewMsgEvent(res.Msg)}
	if res.Record != nil {
		ev := chat.NewMsgEvent(res.Record)
		out.Record = &ev
	}
	return out
}

// changeActor is who recalls or edits: the token's user; for the service
// key the user named by ?user_id= (held to that user's rules), or, with
// none, the service itself (it may recall any message).
func (h *handler) changeActor(w http.ResponseWriter, r *http.Request) (chat.Actor, bool) {
	a := actor(r)
	if !a.Service || r.URL.Query().Get("user_id") == "" {
		return a, true
	}
	uid, ok := h.actingUser(w, r, "")
	return chat.Actor{UserID: uid, Service: true}, ok
}

// recallMessage is POST /v1/messages/{id}/recall.
func (h *handler) recallMessage(w http.ResponseWriter, r *http.Request) {
	a, ok := h.changeActor(w, r)
	if !ok {
		return
	}
	res, err := h.Chat.Recall(r.Context(), a, "", r.PathValue("id"))
	h.reply(w, r, http.StatusOK, err, func() any { return toChangeJSON(res) })
}

// editMessage is PATCH /v1/messages/{id} {body}.
func (h *handler) editMessage(w http.ResponseWriter, r *http.Request) {
	a, ok := h.changeActor(w, r)
	if !ok {
		return
	}
	var in struct {
		Body json.RawMessage `json:"body"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	res, err := h.Chat.Edit(r.Context(), a, "", r.PathValue("id"), in.Body)
	h.reply(w, r, http.StatusOK, err, func() any { return toChangeJSON(res) })
}
