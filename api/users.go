package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/token"
	"github.com/mqim/mqim/store"
)

// userJSON is the public view of a user.
type userJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Avatar    string     `json:"avatar"`
	Ext       store.JSON `json:"ext"`
	Disabled  bool       `json:"disabled"`
	CreatedAt int64      `json:"created_at"`
	UpdatedAt int64      `json:"updated_at"`
}

func toUserJSON(u *store.User) userJSON {
	return userJSON{ID: u.ID, Name: u.Name, Avatar: u.Avatar, Ext: u.Ext, Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// putUser creates or updates a user. Absent fields keep their value;
// "password": "" removes password login. Disabling a user revokes its
// tokens and closes its live sessions.
func (h *handler) putUser(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathID(w, r, "uid")
	if !ok {
		return
	}
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
	switch {
	case in.Name != nil && utf8.RuneCountInString(*in.Name) > 100:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "name longer than 100 characters")
		return
	case in.Avatar != nil && len(*in.Avatar) > 1024:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "avatar longer than 1024 bytes")
		return
	case len(in.Ext) > 4096:
		writeError(w, http.StatusRequestEntityTooLarge, chat.CodeTooLarge, "ext larger than 4096 bytes")
		return
	case in.Password != nil && *in.Password != "" && (len(*in.Password) < 8 || len(*in.Password) > 72):
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "password must be 8 to 72 bytes")
		return
	}
	u, err := h.Store.User(r.Context(), uid)
	if errors.Is(err, store.ErrNotFound) {
		u, err = &store.User{ID: uid}, nil
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if in.Name != nil {
		u.Name = *in.Name
	}
	if in.Avatar != nil {
		u.Avatar = *in.Avatar
	}
	if in.Ext != nil {
		u.Ext = store.JSON(in.Ext)
	}
	if in.Password != nil {
		u.PasswordHash = ""
		if *in.Password != "" {
			hash, err := bcrypt.GenerateFromPassword([]byte(*in.Password), bcrypt.DefaultCost)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			u.PasswordHash = string(hash)
		}
	}
	disabling := in.Disabled != nil && *in.Disabled && !u.Disabled
	if in.Disabled != nil {
		u.Disabled = *in.Disabled
	}
	if disabling {
		u.TokensAfter = time.Now().UnixMilli() + 1 // revokes even a token minted this millisecond
	}
	created, err := h.Store.UpsertUser(r.Context(), u)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if disabling && h.Sessions != nil {
		h.Sessions.Disconnect(uid)
	}
	st := http.StatusOK
	if created {
		st = http.StatusCreated
	}
	writeJSON(w, st, toUserJSON(u))
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathID(w, r, "uid")
	if !ok {
		return
	}
	u, err := h.Store.User(r.Context(), uid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

type tokenJSON struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

func (h *handler) issue(w http.ResponseWriter, r *http.Request, uid string, ttl time.Duration) {
	tok, exp, err := h.Tokens.Mint(uid, time.Now(), ttl)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenJSON{Token: tok, ExpiresAt: exp.UTC().Format(time.RFC3339)})
}

func (h *handler) mintToken(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathID(w, r, "uid")
	if !ok {
		return
	}
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
			writeError(w, http.StatusBadRequest, chat.CodeInvalid, "ttl_seconds must be between 1 and "+h.Auth.MaxTTL.String())
			return
		}
		ttl = time.Duration(in.TTLSeconds) * time.Second
	}
	u, err := h.Store.User(r.Context(), uid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if u.Disabled {
		writeError(w, http.StatusForbidden, chat.CodeForbidden, "user is disabled")
		return
	}
	h.issue(w, r, uid, ttl)
}

// dummyHash makes a login for an unknown user cost as much as one for a
// known user, so timing does not tell which ids exist.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("mqim-dummy-password"), bcrypt.DefaultCost)

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID   string `json:"user_id"`
		Password string `json:"password"`
	}
	if !h.decode(w, r, &in, false) {
		return
	}
	if !token.ValidID(in.UserID) {
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "invalid user_id")
		return
	}
	u, err := h.Store.User(r.Context(), in.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(in.Password)) != nil || u == nil || u.PasswordHash == "" || u.Disabled {
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "wrong user id or password")
		return
	}
	h.issue(w, r, u.ID, h.Auth.TokenTTL)
}
