package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
)

// API tokens let scripts use the admin API without the admin's password: created and revoked
// by the admin in the console, shown once, kept as a SHA-256, scoped read-only or read-write,
// expiring, with their last use recorded. A change made with one is audited under the actor
// "token:<name>". Tokens cannot manage tokens: that takes an admin session (a stolen token
// must not be able to mint a longer-lived one).

// APITokenPrefix starts every API token, so it is told from a session token at a glance (and
// by secret scanners).
const APITokenPrefix = "sat_"

// Scopes of an API token.
const (
	ScopeRead  = "read"  // GET and HEAD only
	ScopeWrite = "write" // everything an admin session may do, except managing tokens
)

// MaxAPITokenDays bounds an API token's lifetime.
const MaxAPITokenDays = 365

// apiTokenLen is an API token's length: the prefix and 32 random bytes in base64url.
var apiTokenLen = len(APITokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// ErrTokenNameTaken: names are never reused.
var ErrTokenNameTaken = errors.New("an API token with this name exists (names are never reused)")

// ErrTokenNotFound: no such API token.
var ErrTokenNotFound = errors.New("no such API token")

// APIToken is an API token as listed; never the token itself.
type APIToken struct {
	ID         int64
	Name       string
	Prefix     string // the token's first characters, to tell tokens apart
	Scope      string
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time  // zero until used
	LastUsedIP netip.Addr // invalid until used
	RevokedAt  time.Time  // zero unless revoked
	RevokedBy  string
}

// Status is "active", "expired" or "revoked" at now.
func (t APIToken) Status(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

// AuditView is how a token appears in admin_audit.
func (t APIToken) AuditView() map[string]any {
	return map[string]any{"id": t.ID, "name": t.Name, "prefix": t.Prefix, "scope": t.Scope, "expires_at": t.ExpiresAt.UTC()}
}

// TokenStore keeps API tokens (PostgreSQL). Create and Revoke write their audit row in the
// same transaction.
type TokenStore interface {
	CreateAPIToken(ctx context.Context, t APIToken, hash string, entry func(APIToken) audit.Entry) (APIToken, error)
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	RevokeAPIToken(ctx context.Context, id int64, by string, at time.Time, a audit.Entry) (APIToken, error)
	// UseAPIToken finds the active token with hash at now and records its use from ip.
	UseAPIToken(ctx context.Context, hash string, ip netip.Addr, now time.Time) (APIToken, error)
}

// APITokens manages API tokens.
type APITokens struct {
	Store TokenStore
	Now   func() time.Time
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// InputError is a client mistake; its message is safe to show.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

// Create makes a token and returns it with the one copy of its secret there will ever be.
func (a *APITokens) Create(ctx context.Context, who audit.Actor, name, scope string, days int) (string, APIToken, error) {
	switch {
	case !tokenName.MatchString(name):
		return "", APIToken{}, &InputError{"name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"}
	case scope != ScopeRead && scope != ScopeWrite:
		return "", APIToken{}, &InputError{`scope must be "read" or "write"`}
	case days < 1 || days > MaxAPITokenDays:
		return "", APIToken{}, &InputError{fmt.Sprintf("expires_in_days must be in 1-%d", MaxAPITokenDays)}
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", APIToken{}, err
	}
	raw := APITokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	now := a.Now()
	t, err := a.Store.CreateAPIToken(ctx, APIToken{Name: name, Prefix: raw[:len(APITokenPrefix)+6], Scope: scope, CreatedBy: who.Name,
		CreatedAt: now, ExpiresAt: now.AddDate(0, 0, days)}, hashAPIToken(raw), func(t APIToken) audit.Entry {
		return audit.Entry{Actor: who, Action: "token.create", Target: fmt.Sprintf("token:%d", t.ID), After: t.AuditView()}
	})
	if err != nil {
		return "", APIToken{}, err
	}
	return raw, t, nil
}

// List returns every token, revoked and expired ones too, newest first.
func (a *APITokens) List(ctx context.Context) ([]APIToken, error) { return a.Store.ListAPITokens(ctx) }

// Revoke ends a token at once.
func (a *APITokens) Revoke(ctx context.Context, who audit.Actor, id int64) (APIToken, error) {
	return a.Store.RevokeAPIToken(ctx, id, who.Name, a.Now(), audit.Entry{Actor: who, Action: "token.revoke", Target: fmt.Sprintf("token:%d", id)})
}

// IsAPIToken reports whether a bearer token is an API token (rather than a session).
func IsAPIToken(bearer string) bool { return strings.HasPrefix(bearer, APITokenPrefix) }

// VerifyAPIToken checks an API token presented from ip and records the use. Unknown, revoked
// and expired tokens are all ErrInvalidToken; a store failure is ErrUnavailable.
func (a *APITokens) VerifyAPIToken(ctx context.Context, bearer string, ip netip.Addr) (Session, error) {
	if len(bearer) != apiTokenLen || !IsAPIToken(bearer) {
		return Session{}, ErrInvalidToken
	}
	t, err := a.Store.UseAPIToken(ctx, hashAPIToken(bearer), ip, a.Now())
	if errors.Is(err, ErrTokenNotFound) {
		return Session{}, ErrInvalidToken
	}
	if err != nil {
		return Session{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return Session{Name: "token:" + t.Name, Expires: t.ExpiresAt, Scope: t.Scope, APIToken: true}, nil
}

func hashAPIToken(raw string) string {
	h := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(h[:])
}
