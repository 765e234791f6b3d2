package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/store"
)

// userJSON is a user as the API shows it; ext and disabled only in the
// full view (chat.Service.Profile decides who gets it).
type userJSON struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Avatar    string      `json:"avatar"`
	Ext       *store.JSON `json:"ext,omitempty"`
	Disabled  *bool       `json:"disabled,omitempty"`
	CreatedAt int64       `json:"created_at"`
	UpdatedAt int64       `json:"updated_at"`
}

func toUserJSON(u *store.User, full bool) userJSON {
	out := userJSON{ID: u.ID, Name: u.Name, Avatar: u.Avatar, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
	if full {
		ext, disabled := u.Ext, u.Disabled
		out.Ext, out.Disabled = &ext, &disabled
	}
	return out
}

// putUser creates or updates a user (chat.Service.PutUser): absent fields
// keep their value; "password": "" removes password login.
func (h *handler) putUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name     *string         `json:"name"`
		Avatar   *string         `json:"avatar"`
		Ext      json.RawMessage `json:"ext"`
		Password *string         `json:"password"`
		Disabled *bool           `json:"disabled"`
	}
	if !h.decode(w, r, &in, true) {
		return
	}
	u, created, err := h.Chat.PutUser(r.Context(), r.PathValue("uid"), chat.UserUpdate{Name: in.Name, Avatar: in.Avatar,
		Ext: in.Ext, Password: in.Password, Disabled: in.Disabled})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st := http.StatusOK
	if created {
		st = http.StatusCreated
	}
	writeJSON(w, st, toUserJSON(u, true))
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request) {
	u, full, err := h.Chat.Profile(r.Context(), actor(r), r.PathValue("uid"))
	h.reply(w, r, http.StatusOK, err, func() any { return toUserJSON(u, full) })
}

// tokenJSON is every token answer: the token, when it expires and the
// server's clock (Unix ms both), so a client can schedule its renewal
// whatever its own clock says.
type tokenJSON struct {
	Token      string `json:"token"`
	ExpiresAt  int64  `json:"expires_at"`
	ServerTime int64  `json:"server_time"`
}

func (h *handler) issue(w http.ResponseWriter, r *http.Request, uid string, ttl time.Duration) {
	now := time.Now()
	tok, exp, err := h.Tokens.Mint(uid, now, ttl)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenJSON{Token: tok, ExpiresAt: exp.UnixMilli(), ServerTime: now.UnixMilli()})
}

// renewToken answers a user's valid token with a fresh one for the same
// user, of the default lifetime: how a connected client stays connected
// past its token's expiry.
func (h *handler) renewToken(w http.ResponseWriter, r *http.Request) {
	a := actor(r)
	if a.Service {
		h.fail(w, r, chat.Errorf(chat.CodeForbidden, "the service key mints tokens with POST /v1/users/{uid}/tokens"))
		return
	}
	h.issue(w, r, a.UserID, h.Auth.TokenTTL)
}

func (h *handler) mintToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TTLSeconds int64 `json:"ttl_seconds"`
	}
	if !h.decode(w, r, &in, true) {
		return
	}
	ttl := h.Auth.TokenTTL
	if in.TTLSeconds != 0 {
		// Compare in seconds: multiplying first overflows for huge values.
		if in.TTLSeconds < 1 || in.TTLSeconds > int64(h.Auth.MaxTTL/time.Second) {
			h.fail(w, r, chat.Errorf(chat.CodeInvalid, "ttl_seconds must be between 1 and %s", h.Auth.MaxTTL))
			return
		}
		ttl = time.Duration(in.TTLSeconds) * time.Second
	}
	u, err := h.Chat.TokenUser(r.Context(), r.PathValue("uid"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.issue(w, r, u.ID, ttl)
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID   string `json:"user_id"`
		Password string `json:"password"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	u, err := h.Chat.Login(r.Context(), in.UserID, in.Password, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.issue(w, r, u.ID, h.Auth.TokenTTL)
}
