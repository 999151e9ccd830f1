package auth

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testUser     = "admin"
	testPassword = "correct-horse-battery"
	testSecret   = "jwt-secret-0123456789abcdef0123456789"
)

func newAuth(t *testing.T, l Lockout) (*Authenticator, *redis.Client, *testenv.RedisServer) {
	t.Helper()
	srv := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: srv.DB, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return &Authenticator{
		Username: testUser, Password: testPassword, JWTSecret: []byte(testSecret), TokenTTL: time.Hour,
		Lockout: l, Redis: rdb, Now: time.Now,
	}, rdb, srv
}

var client = netip.MustParseAddr("127.0.0.5")

// class F, docs/testing.md: every malformed, forged or expired token is refused.
func TestVerifyRefusesBadTokens(t *testing.T) {
	a, _, _ := newAuth(t, DefaultLockout)
	good, _, err := a.Login(context.Background(), testUser, testPassword, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if s, err := a.Verify(ctx, good); err != nil || s.Name != testUser {
		t.Fatalf("a fresh token was refused: %v", err)
	}
	now := time.Now()
	// Each forgery below is valid but for the one thing it changes.
	claims := func(mut func(*jwt.RegisteredClaims)) tokenClaims {
		c := tokenClaims{RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: testUser, Audience: jwt.ClaimStrings{Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), ID: "forged"}, Credential: a.credentialTag()}
		mut(&c.RegisteredClaims)
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c tokenClaims) string { return signToken(t, m, key, c) }
	if _, err := a.Verify(ctx, sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(*jwt.RegisteredClaims) {}))); err != nil {
		t.Fatalf("the forgery template itself is refused: %v", err)
	}
	keep := func(*jwt.RegisteredClaims) {}
	tests := map[string]string{
		"alg none":          sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(keep)),
		"HS512, same key":   sign(jwt.SigningMethodHS512, []byte(testSecret), claims(keep)),
		"other secret":      sign(jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123"), claims(keep)),
		"no exp":            sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })),
		"expired":           sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })),
		"issued in future":  sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"wrong iss":         sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.Issuer = "someone-else" })),
		"wrong aud":         sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"new-api"} })),
		"no aud":            sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.Audience = nil })),
		"other subject":     sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.Subject = "root" })),
		"no jti":            sign(jwt.SigningMethodHS256, []byte(testSecret), claims(func(c *jwt.RegisteredClaims) { c.ID = "" })),
		"old password":      sign(jwt.SigningMethodHS256, []byte(testSecret), tokenClaims{RegisteredClaims: claims(func(*jwt.RegisteredClaims) {}).RegisteredClaims}),
		"tampered payload":  good[:strings.IndexByte(good, '.')+1] + "eyJzdWIiOiJyb290In0" + good[strings.LastIndexByte(good, '.'):],
		"100 000 dots":      strings.Repeat(".", 100_000),
		"1 MiB":             strings.Repeat("a", 1<<20),
		"empty":             "",
		"two parts":         "eyJhbGciOiJIUzI1NiJ9.e30",
		"garbage base64url": "!!!.###.$$$",
	}
	for desc, tok := range tests {
		if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: accepted or wrong error: %v", desc, err)
		}
	}
}

func signToken(t *testing.T, m jwt.SigningMethod, key any, c tokenClaims) string {
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Sessions end on the server: a logged-out token, and every token issued under a password
// that has since changed, are refused; Redis unable to say refuses too.
func TestSessionsEndOnTheServer(t *testing.T) {
	a, _, srv := newAuth(t, DefaultLockout)
	ctx := context.Background()
	tok, _, err := a.Login(ctx, testUser, testPassword, client)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := a.Login(ctx, testUser, testPassword, client)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a logged-out token: %v", err)
	}
	if _, err := a.Verify(ctx, other); err != nil {
		t.Fatalf("logging out one session ended another: %v", err)
	}
	changed := *a
	changed.Password = "a-new-password-0123"
	if _, err := changed.Verify(ctx, other); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token from before the password change: %v", err)
	}
	srv.Kill()
	if _, err := a.Verify(ctx, other); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redis down: %v, want ErrUnavailable", err)
	}
}

// class F, docs/testing.md: after N failures further attempts, even with the right password, get the same
// answer as a wrong password or an unknown user; every key has a TTL; after the lock one more
// try is allowed and succeeds with the right password.
func TestLockout(t *testing.T) {
	l := Lockout{PerUser: 3, PerIP: 100, Window: 10 * time.Second, Base: 400 * time.Millisecond, Cap: 2 * time.Second}
	a, rdb, _ := newAuth(t, l)
	var reasons sync.Map
	a.OnFailure = func(r string) {
		n, _ := reasons.LoadOrStore(r, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	ctx := context.Background()
	for i := 0; i < l.PerUser; i++ {
		if _, _, err := a.Login(ctx, testUser, "wrong", client); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if _, _, err := a.Login(ctx, testUser, testPassword, client); !errors.Is(err, ErrInvalidCredentials) || err.Error() != ErrInvalidCredentials.Error() {
		t.Fatalf("right password while locked: %v", err)
	}
	if _, _, err := a.Login(ctx, "nobody", "wrong", client); err.Error() != ErrInvalidCredentials.Error() {
		t.Fatalf("unknown user answers differently: %v", err)
	}
	assertEveryKeyExpires(t, rdb)

	// After the lock one attempt is allowed; a wrong one locks again, for longer.
	testenv.WaitFor(t, 5*time.Second, "the first lock to end", func() bool { return rdb.Exists(ctx, lockoutKeys(testUser, client)[1]).Val() == 0 })
	if _, _, err := a.Login(ctx, testUser, "wrong", client); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if _, _, err := a.Login(ctx, testUser, testPassword, client); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a failure after the lock did not lock again: %v", err)
	}
	if ttl := rdb.PTTL(ctx, lockoutKeys(testUser, client)[1]).Val(); ttl <= l.Base {
		t.Fatalf("second lock %v is not longer than the first %v", ttl, l.Base)
	}
	testenv.WaitFor(t, 5*time.Second, "the second lock to end", func() bool { return rdb.Exists(ctx, lockoutKeys(testUser, client)[1]).Val() == 0 })
	if _, _, err := a.Login(ctx, testUser, testPassword, client); err != nil {
		t.Fatalf("right password after the lock ended: %v", err)
	}
	if n := rdb.Exists(ctx, a.counterKeys(testUser, client)...).Val(); n != 0 {
		t.Fatalf("a successful login left %d counters", n)
	}
	if v, ok := reasons.Load("locked"); !ok || v.(*atomic.Int64).Load() < 2 {
		t.Fatalf("locked refusals not reported: %v", v)
	}
}

// A user's lock refuses the addresses that failed, never a clean one: the right password from
// an address with no failures succeeds however long others keep the user locked, and a
// guesser gets one attempt per fresh address while the lock holds.
func TestUserLockSparesCleanAddresses(t *testing.T) {
	l := Lockout{PerUser: 5, PerIP: 20, Window: time.Minute, Base: time.Minute, Cap: 15 * time.Minute}
	a, rdb, _ := newAuth(t, l)
	ctx := context.Background()
	attackers := []netip.Addr{netip.MustParseAddr("127.0.0.7"), netip.MustParseAddr("127.0.0.8")}
	for i := 0; i < 12; i++ { // two addresses taking turns, as they would to keep the lock
		_, _, _ = a.Login(ctx, testUser, "guess", attackers[i%2])
	}
	if rdb.Exists(ctx, lockoutKeys(testUser, client)[1]).Val() != 1 {
		t.Fatal("the user is not locked after 12 bad attempts")
	}
	for _, at := range attackers {
		if _, _, err := a.Login(ctx, testUser, testPassword, at); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("the right password from %v, which failed, passed the user's lock: %v", at, err)
		}
	}
	if _, _, err := a.Login(ctx, testUser, testPassword, netip.MustParseAddr("127.0.0.6")); err != nil {
		t.Fatalf("the right password from a clean address during the lock: %v", err)
	}
	// A fresh address gets one guess; after it failed, it is refused like the others.
	fresh := netip.MustParseAddr("127.0.0.9")
	if _, _, err := a.Login(ctx, testUser, "guess", fresh); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if _, _, err := a.Login(ctx, testUser, "guess", fresh); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	assertEveryKeyExpires(t, rdb)
}

// Retrying during a lock is not free: each refused attempt counts against its address, which
// is then locked for longer.
func TestRetryingDuringALockCosts(t *testing.T) {
	l := Lockout{PerUser: 100, PerIP: 3, Window: time.Minute, Base: time.Second, Cap: time.Minute}
	a, rdb, _ := newAuth(t, l)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		_, _, _ = a.Login(ctx, testUser, "guess", client)
	}
	first := rdb.PTTL(ctx, lockoutKeys(testUser, client)[3]).Val()
	for i := 0; i < 3; i++ {
		_, _, _ = a.Login(ctx, testUser, "guess", client)
	}
	if again := rdb.PTTL(ctx, lockoutKeys(testUser, client)[3]).Val(); again <= first {
		t.Fatalf("the address lock did not grow with retries during it: %v, then %v", first, again)
	}
}

// Parallel guesses cannot outrun the count: attempts are reserved before the password check.
func TestLockoutHoldsUnderParallelGuesses(t *testing.T) {
	l := Lockout{PerUser: 5, PerIP: 1000, Window: time.Minute, Base: time.Minute, Cap: time.Minute}
	a, rdb, _ := newAuth(t, l)
	var checked atomic.Int64
	a.OnFailure = func(r string) {
		if r == "bad_credentials" {
			checked.Add(1)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = a.Login(context.Background(), testUser, "guess", client)
		}()
	}
	wg.Wait()
	if n := checked.Load(); n != int64(l.PerUser) {
		t.Fatalf("%d of 100 parallel guesses were checked against the password; want exactly %d", n, l.PerUser)
	}
	assertEveryKeyExpires(t, rdb)
}

// The per-address limit holds across user names (spraying), IPv6 counted per /64.
func TestLockoutPerAddress(t *testing.T) {
	l := Lockout{PerUser: 100, PerIP: 4, Window: time.Minute, Base: time.Minute, Cap: time.Minute}
	a, _, _ := newAuth(t, l)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		_, _, _ = a.Login(ctx, "user"+string(rune('a'+i)), "x", netip.MustParseAddr("2001:db8::1"))
	}
	if _, _, err := a.Login(ctx, testUser, testPassword, netip.MustParseAddr("2001:db8::ffff")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("another address in the same /64 was not locked: %v", err)
	}
	if _, _, err := a.Login(ctx, testUser, testPassword, netip.MustParseAddr("2001:db8:0:1::1")); err != nil {
		t.Fatalf("another /64 was locked: %v", err)
	}
}

// Redis down at login is 503-worthy, never unlimited tries.
func TestLoginWithRedisDown(t *testing.T) {
	a, _, srv := newAuth(t, DefaultLockout)
	srv.Kill()
	if _, _, err := a.Login(context.Background(), testUser, testPassword, client); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func assertEveryKeyExpires(t *testing.T, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	keys := rdb.Keys(ctx, "*").Val()
	if len(keys) == 0 {
		t.Fatal("no lockout keys written")
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "sentinel:login:") {
			t.Errorf("unexpected key %s", k)
		}
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
	}
}
