package plugin

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// binding is what the plugin needs of a key's binding to decide a request alone.
// Its wire form in Redis (sentinel:b:<key_hash>, written by admind) is
//
//	v1|<status>|<mode>|<cidr>,<cidr>,...
//
// with status active|banned and mode single|multiple|all|learning. A learning binding still
// takes new addresses: one it lists is decided here, one it lacks by admind, which may learn
// it (the list may then be empty); once it holds, admind writes it as "multiple".
type binding struct {
	hash     string // what leaves the plugin of the key: its HMAC (identity.Hash)
	banned   bool
	all      bool
	learning bool
	prefixes []netip.Prefix
	// Local cache only, set before the entry is cached and never after (cache clock):
	// good until expires, or until retire while the cache is confirmed fresh (runtime.go).
	expires time.Duration
	retire  time.Duration
	epoch   int64        // the cache's epoch when the lookup that produced it began
	hits    atomic.Int64 // allowed requests since the last usage flush
}

var errBadEntry = errors.New("malformed binding entry")

func parseBindingEntry(s string) (*binding, error) {
	parts := strings.SplitN(s, entrySeparator, 4)
	if len(parts) != 4 || parts[0] != entryVersion {
		return nil, errBadEntry
	}
	b := &binding{}
	switch parts[1] {
	case statusActive:
	case statusBanned:
		b.banned = true
	default:
		return nil, errBadEntry
	}
	switch parts[2] {
	case modeAll:
		b.all = true
		return b, nil
	case modeLearning:
		b.learning = true
		if parts[3] == "" {
			return b, nil
		}
	case modeSingle, modeMultiple:
	default:
		return nil, errBadEntry
	}
	if parts[3] == "" {
		return nil, errBadEntry
	}
	for _, c := range strings.Split(parts[3], cidrSeparator) {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, errBadEntry
		}
		b.prefixes = append(b.prefixes, p)
	}
	return b, nil
}

// checkAddress returns "" when ip may use the key, askAdmind when only admind can say (a learning
// binding that does not list ip), otherwise the refusal code.
func checkAddress(b *binding, ip netip.Addr) string {
	if b.banned {
		return codeKeyBanned
	}
	if b.all || identity.InPrefixes(ip, b.prefixes) {
		return ""
	}
	if b.learning {
		return askAdmind
	}
	return codeIPNotAllowed
}

// askAdmind is checkAddress's answer for an address a learning binding may yet take; never sent.
const askAdmind = "ask_admind"

// bindingCache is the bounded local cache, keyed by the normalised key itself so a hit costs
// no HMAC. It lives in process memory only and is shared by every instance of one
// middleware (Traefik rebuilds instances on each config reload).
//
// hot is the hot path's index (see Sentinel.ServeHTTP): the raw Authorization value of a
// request the general path allowed, with the peer it came from. Both maps hold at most size
// entries.
//
// When the cache is filled from Redis, the background loop (runtime.go) confirms every
// pollInterval that no binding changed (freshUntil), or empties the cache when one did. The
// epoch counts those emptyings: a lookup that began before one must not cache its answer.
type bindingCache struct {
	mu         sync.RWMutex
	entries    map[string]*binding
	hot        map[string]*hotEntry
	hotDue     map[int64][]string // sweep slot → Authorization values whose entries fall due in it
	hotSwept   int64              // the last sweep slot emptied
	hotLapsed  bool               // the last sweep found freshness lapsing, and no fresh entry came since
	size       int
	ttl        time.Duration // cacheTTL: how long a confirmation holds
	freshUntil time.Duration // cache clock
	epoch      int64
	// hotless: ttl is too short for any entry to outlive hotMargin, so cachePutHot would admit
	// none; the general path then skips rememberHot and its cost (cacheTTL ≤ 1s, "cache off").
	hotless  bool
	sweeping sync.Once
}

// The local cache's clock is the monotonic time since clockBase: immune to wall-clock steps,
// and one standard-library call under Yaegi (time.Now().UnixNano() is two, and costs twice).
var clockBase = time.Now()

func cacheClock() time.Duration { return time.Since(clockBase) }

// hotEntry says: a request carrying this Authorization value and nothing else that names a
// key, from a peer whose RemoteAddr starts with peer ("127.0.0.1:", "[2001:db8::1]:"), was
// allowed by binding b. The hot path reads no clock (under Yaegi a clock read and its
// comparisons are a quarter of its cost), so an entry is in the index only while b is live:
// cachePutHot admits it only if it stays live beyond hotMargin, and sweepHot removes it hotMargin
// before until, or at once when the cache's freshness is about to lapse.
type hotEntry struct {
	b     *binding
	peer  string
	until time.Duration // cache clock: b.expires, or b.retire while the cache stays fresh
	fresh bool          // until counts on the cache staying fresh
}

// The hot index's sweeper runs every hotSweepInterval and removes entries hotMargin before
// they fall due, so a sweep that runs up to hotMargin late still removes them in time. An
// entry with less than hotMargin to live is never admitted (the general path decides it).
const (
	hotSweepInterval = 250 * time.Millisecond
	hotMargin        = time.Second
)

func newBindingCache(size int, ttl time.Duration) *bindingCache {
	return &bindingCache{entries: make(map[string]*binding), hot: make(map[string]*hotEntry),
		hotDue: make(map[int64][]string), hotSwept: hotSlot(cacheClock()), hotLapsed: true, size: size, ttl: ttl,
		hotless: ttl <= hotMargin}
}

// startSweeper runs the hot index's sweeper, once per cache (the package registry holds the
// caches; never one goroutine per New).
func (c *bindingCache) startSweeper() {
	if !backgroundLoops {
		return
	}
	c.sweeping.Do(func() {
		go func() {
			t := time.NewTicker(hotSweepInterval)
			for range t.C {
				c.sweepHot(cacheClock())
			}
		}()
	})
}

// hotSlot is the sweep slot an instant falls in.
func hotSlot(at time.Duration) int64 { return int64(at / hotSweepInterval) }

// sweepHot removes the hot entries that could fall due before the next sweep is hotMargin
// late: every entry of every slot up to now+hotMargin, and, when the cache's freshness ends
// within that horizon, every entry that counted on it.
func (c *bindingCache) sweepHot(now time.Duration) {
	horizon := now + hotMargin
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.freshUntil > horizon {
		c.hotLapsed = false
	} else if !c.hotLapsed {
		// Freshness is about to lapse (Redis unread for a while): entries that counted on it
		// go, and with them the rest, which is cheaper under Yaegi than sorting them out; the
		// general path puts back what is still live.
		c.hotLapsed = true
		c.hot = make(map[string]*hotEntry)
		c.hotDue = make(map[int64][]string)
	}
	last := hotSlot(horizon)
	for slot := c.hotSwept + 1; slot <= last; slot++ {
		for _, auth := range c.hotDue[slot] {
			if e := c.hot[auth]; e != nil && hotSlot(e.until) <= last {
				delete(c.hot, auth)
			}
		}
		delete(c.hotDue, slot)
	}
	if last > c.hotSwept {
		c.hotSwept = last
	}
}

// cachedBinding returns key's binding if it may still decide at now (before it expires, or
// while the cache is confirmed fresh, until renewAhead before its retirement), and the
// lookup's view of the cache, which is what a lookup elsewhere on a miss caches its answer
// under.
func cachedBinding(c *bindingCache, key string, now time.Duration) (*binding, cacheView) {
	c.mu.RLock()
	b := c.entries[key]
	fresh := c.freshUntil
	view := cacheView{now: now, epoch: c.epoch}
	c.mu.RUnlock()
	if b == nil {
		return nil, view
	}
	if now < b.expires || now < fresh && now < b.retire-renewAhead {
		return b, view
	}
	view.hash = b.hash
	return nil, view
}

// renewAhead is how early a binding living on the cache's freshness is looked up again: as
// soon as the sweeper may have taken its hot entry (hotMargin, plus a sweep interval for the
// slot it falls in), its first request refills it and the refill goes back into the hot index.
// Otherwise every request in that last second would take the general path and find the
// binding in the cache, several times the hot path's cost each (make bench, route c: one
// refill per key per cacheMaxAge either way). Entries living only to their expiry are not
// renewed early: without freshness a refill asks admind, which costs more than that second.
const renewAhead = hotMargin + hotSweepInterval

// cacheView is when a lookup began: the cache clock and the cache's epoch then. What the
// lookup finds is cached as of that moment (so it expires no later than it would have) and
// only if the cache was not emptied since.
type cacheView struct {
	now   time.Duration
	epoch int64
	hash  string // the key's hash, when a stale entry had it: a refill need not compute it again
}

// cacheEpoch is read before a lookup whose answer will be cached.
func cacheEpoch(c *bindingCache) int64 {
	c.mu.RLock()
	epoch := c.epoch
	c.mu.RUnlock()
	return epoch
}

// invalidate empties the cache: some binding changed.
func (c *bindingCache) invalidate() {
	c.mu.Lock()
	c.entries = make(map[string]*binding)
	c.hot = make(map[string]*hotEntry)
	c.hotDue = make(map[int64][]string)
	c.epoch++
	c.mu.Unlock()
}

// confirmFresh records that nothing cached had changed at the moment at (cache clock).
func (c *bindingCache) confirmFresh(at time.Duration) {
	c.mu.Lock()
	if at+c.ttl > c.freshUntil {
		c.freshUntil = at + c.ttl
	}
	c.mu.Unlock()
}

// cachePut caches b unless the cache was emptied since b's lookup began.
// No defer here or in cacheEpoch: under Yaegi a deferred call costs more than the
// function's other work, and these run on every cache miss.
func cachePut(c *bindingCache, key string, b *binding) {
	c.mu.Lock()
	if b.epoch == c.epoch {
		if len(c.entries) >= c.size {
			evictOneEntry(c, key)
		}
		c.entries[key] = b
	}
	c.mu.Unlock()
}

// evictOneEntry makes room for key unless it is already cached. It evicts an arbitrary
// entry (map order is random): cheap, and a bounded cache of short-lived entries needs no
// better policy.
func evictOneEntry(c *bindingCache, key string) {
	if _, ok := c.entries[key]; !ok {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
}

// cachePutHot admits e at now (cache clock) if its binding is live beyond the sweeper's horizon
// and the cache was not emptied since the binding's lookup began.
func cachePutHot(c *bindingCache, auth string, e *hotEntry, now time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.b.epoch != c.epoch {
		return
	}
	horizon := now + hotMargin
	b := e.b
	e.until, e.fresh = b.expires, false
	if horizon < c.freshUntil && b.retire > b.expires {
		e.until, e.fresh = b.retire, true
		c.hotLapsed = false // the next lapse must remove it
	}
	slot := hotSlot(e.until)
	if e.until <= horizon || slot <= c.hotSwept {
		return
	}
	if len(c.hot) >= c.size {
		if _, ok := c.hot[auth]; !ok {
			for k := range c.hot { // as in put
				delete(c.hot, k)
				break
			}
		}
	}
	c.hot[auth] = e
	c.hotDue[slot] = append(c.hotDue[slot], auth)
}
