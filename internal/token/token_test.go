package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintVerify(t *testing.T) {
	s, err := NewSigner([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, exp, err := s.Mint("alice", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Before(now.Add(59 * time.Minute)) {
		t.Fatalf("exp = %v", exp)
	}
	c, err := s.Verify(tok)
	if err != nil || c.UserID != "alice" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	// iat keeps milliseconds, so revocation by time is exact.
	if c.IssuedAt.UnixMilli() != now.UnixMilli() {
		t.Fatalf("iat %v, want %v", c.IssuedAt.UnixMilli(), now.UnixMilli())
	}

	expired, _, _ := s.Mint("alice", now.Add(-2*time.Hour), time.Hour)
	other, _ := NewSigner([]byte(strings.Repeat("x", 32)))
	foreign, _, _ := other.Mint("alice", now, time.Hour)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "iat": now.Unix()}).SignedString([]byte(strings.Repeat("k", 32)))
	for name, bad := range map[string]string{"expired": expired, "foreign": foreign, "none": none, "noexp": noExp, "garbage": "a.b.c", "empty": ""} {
		if _, err := s.Verify(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestKeyHash(t *testing.T) {
	h := HashKey("secret-service-key")
	if !KeyMatches("secret-service-key", h) || KeyMatches("secret-service-kez", h) || KeyMatches("", h) {
		t.Fatal("KeyMatches wrong")
	}
}
