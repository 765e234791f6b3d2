package chat

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mqim/mqim/internal/ratelimit"
	"github.com/mqim/mqim/internal/token"
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
	case reservedIDs[uid]:
		return nil, false, errorf(CodeInvalid, "%s is a reserved id", uid)
	case u.Name != nil && utf8.RuneCountInString(*u.Name) > maxNameChars:
		return nil, false, errorf(CodeInvalid, "name longer than %d characters", maxNameChars)
	case u.Avatar != nil && len(*u.Avatar) > maxAvatarBytes:
		return nil, false, errorf(CodeInvalid, "avatar longer than %d bytes", maxAvatarBytes)
	case len(u.Ext) > s.cfg.MaxExt:
		return nil, false, errorf(CodeTooLarge, "ext larger than %d bytes", s.cfg.MaxExt)
	case u.Password != nil && *u.Password != "" && (len(*u.Password) < 8 || len(*u.Password) > 72):
		return nil, false, errorf(CodeInvalid, "password must be 8 to 72 bytes")
	}
	ext, err := validateExt(u.Ext)
	if err != nil {
		return nil, false, err
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
		cur.Ext = store.JSON(ext) // JSON null removes it
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
	// Disabling and a password change (of a user who had one, or set
	// anew) revoke every token issued before, and end the live sessions.
	revoking := disabling || (u.Password != nil && cur.CreatedAt != 0)
	if revoking {
		cur.TokensAfter = time.Now().UnixMilli() + 1 // revokes even a token minted this millisecond
	}
	created, err := s.st.UpsertUser(ctx, cur)
	if err != nil {
		return nil, false, AsError(err)
	}
	if revoking {
		// A token minted once this returns must not be revoked: wait out
		// the millisecond that TokensAfter revokes.
		time.Sleep(time.Until(time.UnixMilli(cur.TokensAfter)))
	}
	if revoking && !created {
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

// Refusals of Authenticate and Login that the doors tell apart (an MQTT
// CONNECT answers each with its own reason code). All are unauthorized.
var (
	ErrBadToken     = &Error{Code: CodeUnauthorized, Message: "invalid, expired or revoked token"}
	ErrUserDisabled = &Error{Code: CodeUnauthorized, Message: "user disabled"}
)

// reservedIDs cannot be user ids: "inline" is the broker's own client,
// "all" is the @all mention, "system" the author of system messages.
var reservedIDs = map[string]bool{"inline": true, "all": true, "system": true}

// Authenticate returns the user a token acts as, and the token's claims.
// claimed, when not empty, is who the client says it is (the MQTT
// username) and must be the token's subject; addr is the client's address
// (host or host:port). Refusals: ErrBadToken (bad signature, expired,
// another user's, unknown user, revoked by a later disable or password
// change), ErrUserDisabled, rate_limited once too many attempts of that
// user id or address failed (they count against both), unavailable when
// the store cannot tell.
func (s *Service) Authenticate(ctx context.Context, claimed, raw, addr string) (*store.User, token.Claims, error) {
	if err := s.loginAllowed(claimed, addr); err != nil {
		return nil, token.Claims{}, err
	}
	claims, err := s.tok.Verify(raw)
	if err != nil || (claimed != "" && claims.UserID != claimed) {
		s.loginFailed(claimed, addr)
		return nil, token.Claims{}, ErrBadToken
	}
	u, err := s.st.User(ctx, claims.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.loginFailed(claimed, addr)
		return nil, claims, ErrBadToken
	case err != nil:
		return nil, claims, AsError(err)
	case u.Disabled:
		s.loginFailed(claimed, addr)
		return nil, claims, ErrUserDisabled
	case !u.AcceptsToken(claims.IssuedAt):
		s.loginFailed(claimed, addr)
		return nil, claims, ErrBadToken
	}
	return u, claims, nil
}

// loginAllowed refuses an attempt while uid's or addr's failures are over
// their limit.
func (s *Service) loginAllowed(uid, addr string) error {
	host := hostOf(addr)
	for _, c := range []struct {
		lim *ratelimit.Keyed
		key string
	}{{s.loginLim, uid}, {s.addrLim, host}} {
		if c.key == "" {
			continue
		}
		if blocked, retry := c.lim.Blocked(c.key); blocked {
			return rateLimited("login", retry)
		}
	}
	return nil
}

func (s *Service) loginFailed(uid, addr string) {
	if ValidID(uid) {
		s.loginLim.Hit(uid)
		s.charged(LimitLogin, uid)
	}
	if host := hostOf(addr); host != "" {
		s.addrLim.Hit(host)
		s.charged(LimitAddr, host)
	}
}

// hostOf is the host part of an address ("" for none).
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
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
// wrong password, disabled). Failures count against uid and addr as in
// Authenticate.
func (s *Service) Login(ctx context.Context, uid, password, addr string) (*store.User, error) {
	if !ValidID(uid) {
		return nil, errorf(CodeInvalid, "invalid user_id")
	}
	if err := s.loginAllowed(uid, addr); err != nil {
		return nil, err
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
		s.loginFailed(uid, addr)
		return nil, errorf(CodeUnauthorized, "wrong user id or password")
	}
	return u, nil
}
