package chat

import (
	"context"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mqim/mqim/store"
)

// This file owns the rules about users and who may act as them: profile
// limits, passwords, disabling, and which tokens a user accepts. Both doors
// ask here: the MQTT connect and the HTTP API.

// Profile field limits (the columns' sizes).
const (
	maxNameChars   = 100
	maxAvatarBytes = 1024
)

// UserUpdate changes a user's profile; nil fields keep their value.
type UserUpdate struct {
	Name   *string
	Avatar *string
	Ext    json.RawMessage // nil: keep; JSON null: remove
	// Password sets password login; "" removes it.
	Password *string
	Disabled *bool
}

// PutUser creates uid or updates it with u, and reports whether it was
// created. Disabling a user revokes every token issued before and ends the
// user's live MQTT connections.
func (s *Service) PutUser(ctx context.Context, uid string, u UserUpdate) (*store.User, bool, error) {
	switch {
	case !ValidID(uid):
		return nil, false, errorf(CodeInvalid, "invalid user id")
	case u.Name != nil && utf8.RuneCountInString(*u.Name) > maxNameChars:
		return nil, false, errorf(CodeInvalid, "name longer than %d characters", maxNameChars)
	case u.Avatar != nil && len(*u.Avatar) > maxAvatarBytes:
		return nil, false, errorf(CodeInvalid, "avatar longer than %d bytes", maxAvatarBytes)
	case len(u.Ext) > s.cfg.MaxExt:
		return nil, false, errorf(CodeTooLarge, "ext larger than %d bytes", s.cfg.MaxExt)
	case len(u.Ext) > 0 && !json.Valid(u.Ext):
		return nil, false, errorf(CodeInvalid, "ext is not JSON")
	case u.Password != nil && *u.Password != "" && (len(*u.Password) < 8 || len(*u.Password) > 72):
		return nil, false, errorf(CodeInvalid, "password must be 8 to 72 bytes")
	}
	cur, err := s.st.User(ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		cur, err = &store.User{ID: uid}, nil
	}
	if err != nil {
		return nil, false, AsError(err)
	}
	if u.Name != nil {
		cur.Name = *u.Name
	}
	if u.Avatar != nil {
		cur.Avatar = *u.Avatar
	}
	if u.Ext != nil {
		cur.Ext = store.JSON(u.Ext)
	}
	if u.Password != nil {
		cur.PasswordHash = ""
		if *u.Password != "" {
			hash, err := bcrypt.GenerateFromPassword([]byte(*u.Password), bcrypt.DefaultCost)
			if err != nil {
				return nil, false, AsError(err)
			}
			cur.PasswordHash = string(hash)
		}
	}
	disabling := u.Disabled != nil && *u.Disabled && !cur.Disabled
	if u.Disabled != nil {
		cur.Disabled = *u.Disabled
	}
	if disabling {
		cur.TokensAfter = time.Now().UnixMilli() + 1 // revokes even a token minted this millisecond
	}
	created, err := s.st.UpsertUser(ctx, cur)
	if err != nil {
		return nil, false, AsError(err)
	}
	if disabling {
		s.kick.DisconnectUser(uid)
	}
	return cur, created, nil
}

// User returns one user's profile.
func (s *Service) User(ctx context.Context, uid string) (*store.User, error) {
	if !ValidID(uid) {
		return nil, errorf(CodeInvalid, "invalid user id")
	}
	u, err := s.st.User(ctx, uid)
	if err != nil {
		return nil, AsError(err)
	}
	return u, nil
}

// Authenticate returns the user a verified token of uid, issued at
// issuedAt, acts as: unauthorized when the user does not exist, is
// disabled, or revoked the token; unavailable when the store cannot tell.
func (s *Service) Authenticate(ctx context.Context, uid string, issuedAt time.Time) (*store.User, error) {
	u, err := s.st.User(ctx, uid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errorf(CodeUnauthorized, "unknown user")
	case err != nil:
		return nil, AsError(err)
	case !u.AcceptsToken(issuedAt):
		return nil, errorf(CodeUnauthorized, "user disabled or token revoked")
	}
	return u, nil
}

// TokenUser returns the user a new token may be issued to: one that exists
// and is not disabled.
func (s *Service) TokenUser(ctx context.Context, uid string) (*store.User, error) {
	u, err := s.User(ctx, uid)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, errorf(CodeForbidden, "user is disabled")
	}
	return u, nil
}

// dummyHash makes a login for an unknown user cost as much as one for a
// known user, so timing does not tell which ids exist.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("mqim-dummy-password"), bcrypt.DefaultCost)

// Login returns the user whose password this is; unauthorized otherwise,
// with one message whatever was wrong (unknown user, no password login,
// wrong password, disabled).
func (s *Service) Login(ctx context.Context, uid, password string) (*store.User, error) {
	if !ValidID(uid) {
		return nil, errorf(CodeInvalid, "invalid user_id")
	}
	u, err := s.st.User(ctx, uid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, AsError(err)
	}
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || u == nil || u.PasswordHash == "" || u.Disabled {
		return nil, errorf(CodeUnauthorized, "wrong user id or password")
	}
	return u, nil
}
