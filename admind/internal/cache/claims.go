package cache

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

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

// claimWithinLimit is a first use's whole claim, atomically: the claim held on the key, if
// any, is returned as it is; otherwise a source at its limit claims nothing and gets the time
// left in its window; otherwise the claim is set and the source's count goes up by one, the
// first count of a window starting it. One round trip, and nothing written for a source over
// its limit, however many keys it floods.
// KEYS: claim, source counter. ARGV: value, claim ttl ms, limit (0: none), window ms.
// Returns {1, value} when won, {0, held value} when held, {-1, ms left} when limited.
var claimWithinLimit = redis.NewScript(`
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local limit = tonumber(ARGV[3])
if limit > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= limit then
  return {-1, tostring(redis.call('PTTL', KEYS[2]))}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if limit > 0 then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 or redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
end
return {1, ARGV[1]}`)

// ClaimWithin holds keyHash for c unless a claim is held or c's source is at its limit. With
// no limit (l.Limit 0) the source's counter is named but never touched.
func (c *Cache) ClaimWithin(ctx context.Context, keyHash string, claim bindings.Claim, ttl time.Duration, l bindings.SourceLimit) (bindings.ClaimOutcome, error) {
	res, err := claimWithinLimit.Run(ctx, c.rdb, []string{contract.ClaimKey(keyHash), ClaimSourceKey(l.Source)},
		claimValue(claim), ttl.Milliseconds(), l.Limit, l.Window.Milliseconds()).Slice()
	if err != nil || len(res) != 2 {
		return bindings.ClaimOutcome{}, fmt.Errorf("cache: claim: %v", err)
	}
	status, _ := res[0].(int64)
	v, _ := res[1].(string)
	if status == -1 {
		left, err := strconv.ParseInt(v, 10, 64)
		if err != nil || left <= 0 { // a counter without a TTL (not this script's): a whole window
			left = l.Window.Milliseconds()
		}
		return bindings.ClaimOutcome{Limited: true, RetryAfter: time.Duration(left) * time.Millisecond}, nil
	}
	held, err := parseClaim(v)
	if err != nil {
		return bindings.ClaimOutcome{}, err
	}
	return bindings.ClaimOutcome{Held: held, Won: status == 1}, nil
}

// HeldClaim returns the claim held on keyHash; ok is false when there is none.
func (c *Cache) HeldClaim(ctx context.Context, keyHash string) (bindings.Claim, bool, error) {
	v, err := c.rdb.Get(ctx, contract.ClaimKey(keyHash)).Result()
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
	if err := expireIfHeld.Run(ctx, c.rdb, []string{contract.ClaimKey(keyHash)}, id, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("cache: expire claim: %w", err)
	}
	return nil
}
