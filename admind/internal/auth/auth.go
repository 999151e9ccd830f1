// Package auth is admin login: one admin account from the environment, HS256 JWTs with a
// short lifetime, and a login lockout kept in Redis.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
)

// Token claims we issue and demand.
const (
	Issuer   = "key-ip-sentinel"
	Audience = "sentinel-admin"
	// MaxTokenBytes: our tokens are ~250 bytes; anything much longer is refused unparsed.
	MaxTokenBytes = 2048
	maxUserBytes  = 128
	maxPassBytes  = 1024
)

var (
	// ErrInvalidCredentials is the one answer for an unknown user, a wrong password and a
	// locked account, so a caller cannot tell them apart.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrUnavailable: the lockout store (Redis) cannot be reached. Login is refused rather
	// than allowed without a limit.
	ErrUnavailable = errors.New("login is unavailable")
	// ErrInvalidToken covers every token problem.
	ErrInvalidToken = errors.New("invalid or expired token")
)

// Lockout limits failed logins per user and per client address.
type Lockout struct {
	PerUser, PerIP int           // attempts allowed before the first lock
	Window         time.Duration // failures are forgotten this long after the last attempt
	Base, Cap      time.Duration // first lock; each further lock doubles, up to Cap
}

// DefaultLockout is what admind runs with.
var DefaultLockout = Lockout{PerUser: 5, PerIP: 20, Window: 15 * time.Minute, Base: time.Minute, Cap: 15 * time.Minute}

// Authenticator checks logins and tokens.
type Authenticator struct {
	Username  string
	Password  string
	JWTSecret []byte
	TokenTTL  time.Duration
	Lockout   Lockout
	Redis     *redis.Client
	Now       func() time.Time
	// OnFailure, when set, sees each refused login: "bad_credentials", "locked" or "unavailable".
	OnFailure func(reason string)
}

// Login checks the credentials under the lockout and returns a signed token.
func (a *Authenticator) Login(ctx context.Context, user, pass string, ip netip.Addr) (string, time.Time, error) {
	ok, err := a.reserveAttempt(ctx, user, ip)
	if err != nil {
		a.failed("unavailable")
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !ok {
		a.failed("locked")
		return "", time.Time{}, ErrInvalidCredentials
	}
	if !a.credentialsMatch(user, pass) {
		a.failed("bad_credentials")
		return "", time.Time{}, ErrInvalidCredentials
	}
	if err := a.Redis.Del(ctx, a.counterKeys(user, ip)...).Err(); err != nil {
		a.failed("unavailable")
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return a.issue(user)
}

func (a *Authenticator) failed(reason string) {
	if a.OnFailure != nil {
		a.OnFailure(reason)
	}
}

// credentialsMatch compares fixed-length digests in constant time, so neither the length nor
// the content of the configured values leaks through timing.
func (a *Authenticator) credentialsMatch(user, pass string) bool {
	if len(user) > maxUserBytes || len(pass) > maxPassBytes {
		return false
	}
	gu, wu := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(a.Username))
	gp, wp := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(a.Password))
	return subtle.ConstantTimeCompare(gu[:], wu[:])&subtle.ConstantTimeCompare(gp[:], wp[:]) == 1
}

func (a *Authenticator) issue(user string) (string, time.Time, error) {
	now := a.Now()
	exp := now.Add(a.TokenTTL)
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", time.Time{}, err
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: Issuer, Subject: user, Audience: jwt.ClaimStrings{Audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
			ID: hex.EncodeToString(id[:]),
		},
		Credential: a.credentialTag(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.JWTSecret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	return tok, exp, nil
}

// tokenClaims are the registered claims plus the credential tag: a token is good only for the
// password it was issued under, so changing ADMIN_PASSWORD (and restarting) ends every
// session made with the old one.
type tokenClaims struct {
	jwt.RegisteredClaims
	Credential string `json:"cred"`
}

// credentialTag identifies the configured password without revealing it: an HMAC under the
// signing secret, cut short.
func (a *Authenticator) credentialTag() string {
	m := hmac.New(sha256.New, a.JWTSecret)
	m.Write([]byte("credential\x00" + a.Username + "\x00" + a.Password))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// Session is a verified token: who, which token (its jti) and until when. An admin session may
// do everything; an API token (APIToken) only what its Scope allows.
type Session struct {
	Name     string
	ID       string
	Expires  time.Time
	Scope    string // ScopeWrite for an admin session
	APIToken bool
}

// Verify checks a token: HS256 only, signed with our secret, our issuer and audience, not
// expired (exp is required), for the configured admin and password, and not logged out
// (Redis; when Redis cannot say, the token is refused: a revoked session must not come back
// because Redis is away).
func (a *Authenticator) Verify(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return Session{}, ErrInvalidToken
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(a.Now),
	)
	var claims tokenClaims
	t, err := p.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.JWTSecret, nil })
	if err != nil || !t.Valid || claims.ID == "" {
		return Session{}, ErrInvalidToken
	}
	if subtle.ConstantTimeCompare([]byte(claims.Subject), []byte(a.Username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(claims.Credential), []byte(a.credentialTag())) != 1 {
		return Session{}, ErrInvalidToken
	}
	n, err := a.Redis.Exists(ctx, revokedKey(claims.ID)).Result()
	if err != nil {
		return Session{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if n != 0 {
		return Session{}, ErrInvalidToken
	}
	return Session{Name: claims.Subject, ID: claims.ID, Expires: claims.ExpiresAt.Time, Scope: ScopeWrite}, nil
}

// Revoke ends a session before its expiry (logout): its jti is kept in Redis until the token
// would have expired anyway.
func (a *Authenticator) Revoke(ctx context.Context, s Session) error {
	ttl := s.Expires.Sub(a.Now()) + 10*time.Second // past the verifier's leeway
	if ttl <= 0 {
		return nil
	}
	if err := a.Redis.Set(ctx, revokedKey(s.ID), "1", ttl).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

func revokedKey(jti string) string { return "sentinel:admin:revoked:" + jti }
