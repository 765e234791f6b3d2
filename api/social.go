package api

import (
	"net/http"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/store"
)

// Friends and blocks (chat/social.go). A user token acts as its user; the
// service key names one with ?user_id=.

// friendRequestJSON is a pending request as one of its two users sees it:
// user_id is the other one.
type friendRequestJSON struct {
	UserID    string `json:"user_id"`
	Message   string `json:"message,omitempty"`
	CreatedAt int64  `json:"created_at"`
}

type friendJSON struct {
	UserID string `json:"user_id"`
	Since  int64  `json:"since"`
}

type blockJSON struct {
	UserID    string `json:"user_id"`
	CreatedAt int64  `json:"created_at"`
}

func requestsJSON(rs []store.FriendRequest, incoming bool) []friendRequestJSON {
	out := make([]friendRequestJSON, len(rs))
	for i, r := range rs {
		out[i] = friendRequestJSON{UserID: r.To, Message: r.Message, CreatedAt: r.CreatedAt}
		if incoming {
			out[i].UserID = r.From
		}
	}
	return out
}

// requestFriend answers POST /v1/friends/requests {to, message?}: 201 with
// the request, or with the friendship when the other user had asked first;
// 200 with the pending request for a repeat.
func (h *handler) requestFriend(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	var in struct {
		To      string `json:"to"`
		Message string `json:"message"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	res, err := h.Chat.RequestFriend(r.Context(), actor(r), uid, in.To, in.Message)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st := http.StatusCreated
	if !res.Created {
		st = http.StatusOK
	}
	var out struct {
		UserID    string `json:"user_id"`
		Status    string `json:"status"` // "pending", or "friends" when the other had asked first
		Message   string `json:"message,omitempty"`
		CreatedAt int64  `json:"created_at,omitempty"`
		Since     int64  `json:"since,omitempty"`
	}
	if res.Friend != nil {
		out.UserID, out.Status, out.Since = res.Friend.UserID, "friends", res.Friend.Since
	} else {
		out.UserID, out.Status, out.Message, out.CreatedAt = res.Request.To, "pending", res.Request.Message, res.Request.CreatedAt
	}
	writeJSON(w, st, out)
}

func (h *handler) listFriendRequests(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	in, out, err := h.Chat.FriendRequests(r.Context(), uid)
	h.reply(w, r, http.StatusOK, err, func() any {
		return map[string][]friendRequestJSON{"incoming": requestsJSON(in, true), "outgoing": requestsJSON(out, false)}
	})
}

// answerFriendRequest answers POST /v1/friends/requests/{from} {accept}:
// 200 with the friendship when accepted, 204 when rejected.
func (h *handler) answerFriendRequest(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	var in struct {
		Accept *bool `json:"accept"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	if in.Accept == nil {
		h.fail(w, r, chat.Errorf(chat.CodeInvalid, "accept (true or false) is required"))
		return
	}
	f, err := h.Chat.AnswerFriendRequest(r.Context(), uid, r.PathValue("from"), *in.Accept)
	if err != nil || f == nil {
		h.reply(w, r, http.StatusNoContent, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, friendJSON{UserID: f.UserID, Since: f.Since})
}

func (h *handler) listFriends(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	fs, err := h.Chat.Friends(r.Context(), uid)
	h.reply(w, r, http.StatusOK, err, func() any {
		out := make([]friendJSON, len(fs))
		for i, f := range fs {
			out[i] = friendJSON{UserID: f.UserID, Since: f.Since}
		}
		return out
	})
}

func (h *handler) unfriend(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	h.reply(w, r, http.StatusNoContent, h.Chat.Unfriend(r.Context(), uid, r.PathValue("uid")), nil)
}

func (h *handler) block(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	h.reply(w, r, http.StatusNoContent, h.Chat.Block(r.Context(), uid, r.PathValue("uid")), nil)
}

func (h *handler) unblock(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	h.reply(w, r, http.StatusNoContent, h.Chat.Unblock(r.Context(), uid, r.PathValue("uid")), nil)
}

func (h *handler) listBlocks(w http.ResponseWriter, r *http.Request) {
	uid, ok := h.actingUser(w, r, "")
	if !ok {
		return
	}
	bs, err := h.Chat.Blocks(r.Context(), uid)
	h.reply(w, r, http.StatusOK, err, func() any {
		out := make([]blockJSON, len(bs))
		for i, b := range bs {
			out[i] = blockJSON{UserID: b.UserID, CreatedAt: b.CreatedAt}
		}
		return out
	})
}
