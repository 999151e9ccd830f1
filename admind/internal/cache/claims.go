package cache

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// ClaimKey holds a provisional first use of a key (bindings.Claim) until New API's answer
// confirms or refuses it; only admind reads it.
func ClaimKey(keyHash string) string { return "sentinel:claim:" + keyHash }

// claimOrRead sets the claim unless one is held, atomically, and returns {won, held value}.
// KEYS: claim. ARGV: value, ttl ms.
var claimOrRead = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, ARGV[1]} end
return {0, redis.call('GET', KEYS[1])}`)

// expireIfHeld sets the claim's remaining life (0: deletes it) only while the given id holds
// it. KEYS: claim. ARGV: id, ttl ms.
var expireIfHeld = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ' ' then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`)

// ClaimSourceKey counts the new claims one source (a client address widened to the claim
// prefix) made in the current window; every admind replica counts in the same key.
func ClaimSourceKey(source netip.Prefix) string { return "sentinel:claimsrc:" + source.String() }

// countInWindow adds one to the window's counter, starting the window on the first, and
// returns {count, ms left}. KEYS: counter. ARGV: window ms.
var countInWindow = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`)

// CountClaim counts one new claim by source and returns the window's count so far and the
// time until the window ends.
func (c *Cache) CountClaim(ctx context.Context, source netip.Prefix, window time.Duration) (int64, time.Duration, error) {
	res, err := countInWindow.Run(ctx, c.rdb, []string{ClaimSourceKey(source)}, window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return 0, 0, fmt.Errorf("cache: count claim: %v", err)
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

// A claim's value is "<id> <prefix>".
func claimValue(c bindings.Claim) string { return c.ID + " " + c.Prefix.String() }

func parseClaim(v string) (bindings.Claim, error) {
	id, prefix, ok := strings.Cut(v, " ")
	p, err := netip.ParsePrefix(prefix)
	if !ok || err != nil || !contract.ValidClaimID(id) {
		return bindings.Claim{}, fmt.Errorf("cache: malformed claim %q", v)
	}
	return bindings.Claim{ID: id, Prefix: p}, nil
}

// Claim holds keyHash for c unless a claim is held; it returns the claim that holds after and
// whether it is c.
func (c *Cache) Claim(ctx context.Context, keyHash string, claim bindings.Claim, ttl time.Duration) (bindings.Claim, bool, error) {
	res, err := claimOrRead.Run(ctx, c.rdb, []string{ClaimKey(keyHash)}, claimValue(claim), ttl.Milliseconds()).Slice()
	if err != nil {
		return bindings.Claim{}, false, fmt.Errorf("cache: claim: %w", err)
	}
	won, _ := res[0].(int64)
	v, _ := res[1].(string)
	if v == "" { // released between SET and GET: the next decide claims it
		return bindings.Claim{}, false, errors.New("cache: claim released while read")
	}
	held, err := parseClaim(v)
	return held, won == 1, err
}

// HeldClaim returns the claim held on keyHash; ok is false when there is none.
func (c *Cache) HeldClaim(ctx context.Context, keyHash string) (bindings.Claim, bool, error) {
	v, err := c.rdb.Get(ctx, ClaimKey(keyHash)).Result()
	if err == redis.Nil {
		return bindings.Claim{}, false, nil
	}
	if err != nil {
		return bindings.Claim{}, false, fmt.Errorf("cache: read claim: %w", err)
	}
	held, err := parseClaim(v)
	return held, err == nil, err
}

// ReleaseClaim forgets the claim on keyHash if id still holds it.
func (c *Cache) ReleaseClaim(ctx context.Context, keyHash, id string) error {
	return c.ExpireClaim(ctx, keyHash, id, 0)
}

// ExpireClaim leaves the claim on keyHash, if id still holds it, ttl more to live.
func (c *Cache) ExpireClaim(ctx context.Context, keyHash, id string, ttl time.Duration) error {
	if err := expireIfHeld.Run(ctx, c.rdb, []string{ClaimKey(keyHash)}, id, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("cache: expire claim: %w", err)
	}
	return nil
}
