package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"

	"github.com/redis/go-redis/v9"
)

// Login attempts are counted per user and per client address in Redis hashes:
// sentinel:login:{user|ip}:<id> {n: attempts in the window, allow: attempts allowed before the
// next lock, locks: locks so far}, and sentinel:login:lock:... while a lock holds. Both keys
// expire. Attempts are reserved before the password is checked, so parallel guesses cannot
// outrun the count; a successful login clears the counters.
//
// When an allowance is used up the attempt is refused and a lock is set for
// Base·2^(locks-1), at most Cap; after it ends exactly one more attempt is allowed, and a
// failure there locks again for twice as long. The counter outlives the longest lock, so
// only a quiet Window without attempts resets it.
//
// A user's lock cannot be turned against the admin: it refuses only addresses that have
// failed recently (their counter exists). An address with no failures always gets its
// attempt checked, so the right password from a clean address succeeds while someone else
// keeps the user locked; a guesser gets one attempt per fresh address per lock, and at most
// PerIP per address. Attempts refused by a lock still count against their address, so
// retrying during a lock uses up the one attempt after it and then locks the address longer.
var reserveAttempt = redis.NewScript(`
local function count(counter, lock, default)
  local n = redis.call('HINCRBY', counter, 'n', 1)
  local allow = tonumber(redis.call('HGET', counter, 'allow') or default)
  redis.call('PEXPIRE', counter, ARGV[3])
  if n <= allow then return 1 end
  local locks = redis.call('HINCRBY', counter, 'locks', 1)
  local ttl = math.min(tonumber(ARGV[4]) * 2 ^ (locks - 1), tonumber(ARGV[5]))
  redis.call('SET', lock, '1', 'PX', math.floor(ttl))
  redis.call('HSET', counter, 'allow', n + 1)
  return 0
end
local ucounter, ulock, icounter, ilock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local clean = redis.call('EXISTS', icounter) == 0
if redis.call('EXISTS', ilock) == 1 or (not clean and redis.call('EXISTS', ulock) == 1) then
  count(icounter, ilock, ARGV[2])
  return 0
end
local ipOK = count(icounter, ilock, ARGV[2])
local userOK = count(ucounter, ulock, ARGV[1])
if ipOK == 0 or (userOK == 0 and not clean) then return 0 end
return 1`)

func (a *Authenticator) reserveAttempt(ctx context.Context, user string, ip netip.Addr) (bool, error) {
	l := a.Lockout
	window := l.Window
	if window < 2*l.Cap {
		window = 2 * l.Cap
	}
	keys := lockoutKeys(user, ip)
	res, err := reserveAttempt.Run(ctx, a.Redis, keys, l.PerUser, l.PerIP, window.Milliseconds(),
		l.Base.Milliseconds(), l.Cap.Milliseconds()).Int()
	if err != nil {
		return false, err
	}
	return res == 1, nil
}

// counterKeys are the two attempt counters (a successful login deletes them).
func (a *Authenticator) counterKeys(user string, ip netip.Addr) []string {
	k := lockoutKeys(user, ip)
	return []string{k[0], k[2]}
}

// lockoutKeys: user counter, user lock, ip counter, ip lock. The user name is hashed so any
// input makes a short, safe key and no name is readable in Redis. IPv6 clients are counted
// per /64: one host usually owns the whole /64 and could otherwise rotate addresses.
func lockoutKeys(user string, ip netip.Addr) []string {
	sum := sha256.Sum256([]byte(user))
	u := "user:" + hex.EncodeToString(sum[:12])
	i := "ip:" + ip.String()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		i = "ip:" + p.String()
	}
	return []string{"sentinel:login:" + u, "sentinel:login:lock:" + u, "sentinel:login:" + i, "sentinel:login:lock:" + i}
}
