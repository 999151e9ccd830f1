package plugin

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A source over its claim limit makes no new claim until admind's Retry-After has passed, so
// asking admind about each further unknown key it sends only repeats the 429 — at the cost of
// an admind request, a PostgreSQL lookup and two Redis scripts each, which is what a flood of
// random keys is made of. The plugin remembers such an address until then and answers the
// same 429 itself for a key that Redis shows to be bound nowhere:
//   - no binding entry (else it decides from the entry, as any miss does);
//   - no claim held on it (a pending first use is admind's to decide: its claimant may use it);
//   - neither the key's hash nor, for a key spelled otherwise, the spelled form's hash in the
//     bound set, while the set's marker says it holds every binding (admind/internal/cache/
//     bound.go).
//
// Anything else, a Redis failure included, goes to admind as before. So a bound key is never
// limited: the set holds it from before its row is written. Refusals made here write nothing
// and are counted in the usage flush's counter event (admind adds them to /metrics).

// limitedSources: client address → cache clock when admind will take its claims again.
type limitedSources struct {
	mu    sync.Mutex
	until map[netip.Addr]time.Duration
	n     atomic.Int64 // len(until): every miss reads it, and takes the lock only when not 0
}

// maxLimitedSources bounds the map; when full, a newcomer goes to admind like before.
const maxLimitedSources = 10000

// noteLimited remembers that admind refused ip new claims for retryAfter seconds.
func noteLimited(l *limitedSources, ip netip.Addr, now time.Duration, retryAfter int) {
	if retryAfter <= 0 {
		return
	}
	until := now + time.Duration(retryAfter)*time.Second
	l.mu.Lock()
	if l.until == nil {
		l.until = make(map[netip.Addr]time.Duration)
	}
	if len(l.until) >= maxLimitedSources {
		for a, u := range l.until {
			if u <= now {
				delete(l.until, a)
			}
		}
	}
	if len(l.until) < maxLimitedSources {
		l.until[ip] = until
	}
	l.n.Store(int64(len(l.until)))
	l.mu.Unlock()
}

// sourceLimited returns how long ip's claim limit still holds at now; 0 when it does not, or
// when the plugin may not answer for it (monitor mode: admind sees every request). Its caller
// (decideUncached) calls it only with Redis configured and some source limited (n > 0): with
// none limited, reading n is all a miss pays.
func sourceLimited(m *middleware, ip netip.Addr, now time.Duration) time.Duration {
	if m.opts.monitor {
		return 0
	}
	l := &m.redis.limited
	l.mu.Lock()
	until, ok := l.until[ip]
	if ok && until <= now {
		delete(l.until, ip)
		l.n.Store(int64(len(l.until)))
	}
	l.mu.Unlock()
	if !ok || until <= now {
		return 0
	}
	return until - now
}

// decideForLimitedSource decides a miss from a source over its claim limit (left: how long
// the limit still holds): from Redis when that shows the key bound nowhere, else as any miss.
func decideForLimitedSource(m *middleware, req *http.Request, key, spelled, hash string, ip netip.Addr, view cacheView, left time.Duration) verdict {
	legacy := ""
	if spelled != key {
		legacy = hashKey(m, spelled)
	}
	reply, found, err := redisBulk(m.redis, limitProbe(hash, legacy))
	if err != nil || !found {
		return decideByAdmind(m, req, key, spelled, hash, ip, view)
	}
	if reply != boundNowhere {
		if b, err := parseBindingEntry(reply); err == nil {
			return decideByEntry(m, req, key, spelled, hash, b, ip, view)
		}
		return decideByAdmind(m, req, key, spelled, hash, ip, view)
	}
	m.redis.usage.limited.Add(1)
	return verdict{code: codeClaimLimited, retryAfter: int((left + time.Second - 1) / time.Second), ok: true}
}

// limitProbeScript answers, in one round trip, the binding entry if there is one; else
// boundNowhere if no claim holds the key, the bound set is complete and holds none of the
// hashes' members (ARGV); else nil (ask admind). KEYS: entry, claim, marker, set.
const limitProbeScript = `local e = redis.call('GET', KEYS[1])
if e then return e end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 0 then return false end
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[4], ARGV[i]) == 1 then return false end
end
return '-'`

// boundNowhere is limitProbeScript's answer for a key bound nowhere (no entry starts so).
const boundNowhere = "-"

// limitProbe is EVAL limitProbeScript for hash (and legacy, the spelled form's hash, when
// not ""), in RESP for redisBulk. Every argument's length is known in advance (keyHashLen,
// boundMemberLen), so, as bindingGet, it is the hashes between pieces built once: the general
// encoding costs a flood request about 100 allocations more under Yaegi.
func limitProbe(hash, legacy string) string {
	if len(hash) != keyHashLen || legacy != "" && len(legacy) != keyHashLen {
		return encodeCommand(limitProbeArgs(hash, legacy)) // not hashes identity.Hash made
	}
	count := "*8"
	members := limitProbeMember + boundMember(hash) + "\r\n"
	if legacy != "" {
		count = "*9"
		members += limitProbeMember + boundMember(legacy) + "\r\n"
	}
	return count + limitProbeEntry + hash + limitProbeClaim + hash + limitProbeSets + members
}

// limitProbeArgs is limitProbe's command as arguments.
func limitProbeArgs(hash, legacy string) []string {
	args := []string{"EVAL", limitProbeScript, "4", redisBindingKey(hash), redisClaimKey(hash), boundCompleteKey, boundSetKey, boundMember(hash)}
	if legacy != "" {
		args = append(args, boundMember(legacy))
	}
	return args
}

// limitProbe's pieces, after "*" and the argument count: EVAL, the script, 4 and the entry's
// key up to the hash; the claim's key up to the hash; the set's keys; a member's length.
var (
	limitProbeEntry = "\r\n" + bulk("EVAL") + bulk(limitProbeScript) + bulk("4") +
		"$" + strconv.Itoa(len(bindingKeyPrefix)+keyHashLen) + "\r\n" + bindingKeyPrefix
	limitProbeClaim  = "\r\n$" + strconv.Itoa(len(claimKeyPrefix)+keyHashLen) + "\r\n" + claimKeyPrefix
	limitProbeSets   = "\r\n" + bulk(boundCompleteKey) + bulk(boundSetKey)
	limitProbeMember = "$" + strconv.Itoa(boundMemberLen) + "\r\n"
)
