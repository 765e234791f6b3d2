// Package token mints and verifies mqim access tokens (JWT, HS256, claims
// sub, iat, exp) and hashes the service key.
package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalid is returned for any token that must not be accepted: malformed,
// badly signed, expired, or of another algorithm.
var ErrInvalid = errors.New("invalid token")

// Claims are what a verified token says. IssuedAt has millisecond
// precision for tokens minted by mqim.
type Claims struct {
	UserID   string
	IssuedAt time.Time
	Expires  time.Time
}

// Signer mints and verifies tokens with one HMAC key. It is safe for
// concurrent use and never blocks.
type Signer struct {
	key    []byte
	parser *jwt.Parser
}

// NewSigner returns a Signer for key (at least 32 bytes).
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("token: key must be at least 32 bytes")
	}
	return &Signer{
		key: key,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
		),
	}, nil
}

// claims are the standard ones plus iat in milliseconds: a user's tokens are
// revoked by time (store.User.TokensAfter, in ms), and iat's whole seconds
// would let a token minted in the same second as the revocation survive it.
type claims struct {
	jwt.RegisteredClaims
	IssuedAtMs int64 `json:"iat_ms,omitempty"`
}

// Mint returns a token for userID valid for ttl from now.
func (s *Signer) Mint(userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	exp := now.Add(ttl)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		IssuedAtMs: now.UnixMilli(),
	})
	signed, err := t.SignedString(s.key)
	return signed, exp.Truncate(time.Second), err
}

// Verify checks a token's signature, algorithm and expiry.
func (s *Signer) Verify(raw string) (Claims, error) {
	var c claims
	if _, err := s.parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.key, nil }); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" || c.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: missing sub or iat", ErrInvalid)
	}
	iat := c.IssuedAt.Time
	if ms := time.UnixMilli(c.IssuedAtMs); c.IssuedAtMs != 0 && ms.Unix() == iat.Unix() {
		iat = ms // the same instant, to the millisecond
	}
	return Claims{UserID: c.Subject, IssuedAt: iat, Expires: c.ExpiresAt.Time}, nil
}

// HashKey returns the hex SHA-256 of a service key. Keys are long random
// strings, so a fast hash is enough: only its output is stored.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// KeyMatches compares a presented key with a stored hash in constant time.
func KeyMatches(presented, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashKey(presented)), []byte(hash)) == 1
}
