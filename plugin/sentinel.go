// Package plugin is the Key-IP Sentinel Traefik middleware: it binds each New API key to the
// first client IP that uses it and refuses the key from anywhere else.
//
// It runs inside Traefik's Yaegi interpreter: standard library only, Go 1.22 API only, and no
// goroutine per instance. The code a request runs is plain functions taking their receiver
// first, not methods: Yaegi calls a method the plugin declares through reflect.Value.Call, at
// three times the cost (see docs/architecture.md, "Living inside Yaegi").
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// middleware is one instance of the plugin. Everything that costs resources (Redis pool, admind
// HTTP client, local cache) is shared through the package registry.
type middleware struct {
	next  http.Handler
	opts  *options
	cache *bindingCache
	redis *redisClient // nil when no Redis is configured
	admin *admindClient
	name  string

	rejectLog logLimiter // decides admind refused
	relayLog  logLimiter // keyed requests from a relay's address
	claimLog  logLimiter // claims admind could not confirm or release
}

// Traefik rebuilds every middleware on each dynamic-config change and never closes the old
// ones, so pools and caches live here, keyed by what configures them.
var (
	registryMu    sync.Mutex
	redisClients  = map[string]*redisClient{}
	admindClients = map[time.Duration]*http.Client{} // by admindTimeout
	bindingCaches = map[string]*bindingCache{}
)

// New validates the options and returns the middleware. It does no I/O: connections are
// made lazily, so New succeeds offline.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	opts, err := parseConfig(config)
	if err != nil {
		return nil, err
	}
	if opts.secretsMissing != nil {
		fmt.Fprintf(os.Stderr, "sentinel[%s]: secrets missing, every request is refused with 503 (missingSecrets: refuse): %v\n", name, opts.secretsMissing)
		return unconfigured{}, nil
	}
	m := &middleware{next: next, opts: opts, name: name}

	registryMu.Lock()
	defer registryMu.Unlock()
	redisKey := ""
	if opts.redis.configured() {
		redisKey = opts.redis.registryKey()
		m.redis = redisClients[redisKey]
		if m.redis == nil {
			m.redis = newRedisClient(opts.redis)
			redisClients[redisKey] = m.redis
			m.redis.runtime.start(m.redis)
		}
	}
	hc := admindClients[opts.admindTimeout]
	if hc == nil {
		hc = newAdmindHTTPClient(opts.admindTimeout)
		admindClients[opts.admindTimeout] = hc
	}
	m.admin = &admindClient{http: hc, decideURL: opts.decideURL, interceptURL: opts.interceptURL,
		confirmURL: opts.confirmURL, releaseURL: opts.releaseURL, header: admindHeader(opts.internalToken)}
	cacheKey := opts.cacheRegistryKey(name, redisKey)
	m.cache = bindingCaches[cacheKey]
	if m.cache == nil {
		m.cache = newBindingCache(opts.cacheSize, opts.cacheTTL)
		bindingCaches[cacheKey] = m.cache
		m.cache.startSweeper()
		if m.redis != nil {
			m.redis.runtime.addCache(m.cache)
		}
	}
	return m, nil
}

// unconfigured is the middleware without its secrets (missingSecrets: refuse): it can decide
// nothing, so it forwards nothing.
type unconfigured struct{}

func (unconfigured) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	refuse(rw, http.StatusServiceUnavailable, codeUnconfigured)
}

// ServeHTTP forwards at once a request that repeats one the general path allowed moments ago:
// the same single Authorization line, no other carrier of a key, from the same peer address,
// while the binding that allowed it is live in the local cache. Anything else goes to
// serveGeneral, which follows the request path (docs/architecture.md) and fills this index.
//
// Under Yaegi every call allocates one value by reflection for each local and each
// intermediate result of the whole function (an && or || is one more), whether that branch
// runs or not, and each call of a standard-library function costs several more. So it does
// as little as possible: no key parsing, no address parsing, nested ifs rather than &&
// chains, and the rare first-hit bookkeeping in a function of its own. Why it answers as
// serveGeneral would:
//   - the key: with no query and no other carrier header, serveGeneral reads the key from
//     this Authorization value, or (under dashboardPaths) reads none and forwards anyway;
//   - the address: the peer part of RemoteAddr ("127.0.0.1:" of "127.0.0.1:5555") is what
//     serveGeneral parsed when it allowed the entry, which it only records when the peer is
//     not a trusted proxy, so the client is the peer (the cache's registry key holds
//     trustedProxies, so every entry was recorded under the same ones);
//   - the binding: the entry holds the binding that allowed it, and is in the index only
//     while that binding is live (cachePutHot and sweepHot keep it so, so no clock is read here);
//   - the path: with no escape beyond the default spelling (RawPath empty) it spells no
//     encoded separator for serveGeneral to refuse, and which route New API reads the key
//     on does not change the answer for a value this peer was allowed with.
//
// BenchmarkCacheHitUnderYaegi measures it; TestHotPathAgreesWithGeneralPath and
// FuzzHotPathAgrees check the answers agree.
func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	h := req.Header
	auth := h[hdrAuthorization]
	if len(auth) == 1 {
		if h[hdrAPIKey] == nil {
			if h[hdrGoogAPIKey] == nil {
				if h[hdrWSProtocol] == nil {
					if h[hdrMJSecret] == nil {
						u := req.URL
						if u.RawQuery == "" {
							if u.RawPath == "" {
								c := m.cache
								c.mu.RLock()
								e := c.hot[auth[0]]
								c.mu.RUnlock()
								if e != nil {
									if strings.HasPrefix(req.RemoteAddr, e.peer) {
										b := e.b
										if b.hits.Add(1) == 1 {
											firstHit(m, b)
										}
										m.next.ServeHTTP(rw, req)
										return
									}
								}
							}
						}
					}
				}
			}
		}
	}
	serveGeneral(m, rw, req)
}

// firstHit puts b on the usage flush list (its hit count just went from 0 to 1).
func firstHit(m *middleware, b *binding) {
	if m.redis != nil {
		markUsed(&m.redis.usage, b)
	}
}

// serveGeneral follows the request path (docs/architecture.md): credentials, client IP,
// decision, answer. Under Yaegi a call allocates every slot of its function whatever branch
// runs, so what only a refused or unusual request needs is in functions of its own.
func serveGeneral(m *middleware, rw http.ResponseWriter, req *http.Request) {
	o := m.opts
	if req.URL.RawPath != "" {
		if refusedEncodedSeparator(o, rw, req) {
			return
		}
	}
	key, spelled, err := apiKey(req, o)
	if err != nil {
		refuseKeyError(rw, err)
		return
	}
	if key == "" {
		serveKeyless(m, rw, req)
		return
	}
	ip, err := identity.ClientIP(req, o.trustedProxies)
	if err != nil {
		clientUnknown(m, rw, req, ip, err)
		return
	}
	if identity.InPrefixes(ip, o.relays) {
		fromRelay(m, rw, req, ip, nil)
		return
	}
	b, view := cachedBinding(m.cache, key, cacheClock())
	code, claim, retryAfter := "", "", 0
	if b != nil {
		code = checkAddress(b, ip)
		if code != "" {
			b, code = refusedFromCache(m, req, b, spelled, ip, code)
		}
	}
	if b == nil {
		v := decideUncached(m, req, key, spelled, ip, view)
		if !v.ok {
			undecided(m, rw, req)
			return
		}
		b, code, claim, retryAfter = v.b, v.code, v.claim, v.retryAfter
	}
	if code != "" {
		if !o.monitor {
			refuseDecided(rw, code, retryAfter)
			return
		}
	}
	if claim != "" {
		serveClaimed(m, rw, req, key, spelled, ip, claim)
		return
	}
	if code == "" {
		if b != nil {
			if !m.cache.hotless {
				rememberHot(m, req, b)
			}
			if m.redis != nil {
				countAllowed(&m.redis.usage, b)
			}
		}
	}
	m.next.ServeHTTP(rw, req)
}

// refusedEncodedSeparator refuses a path that spells a separator encoded, unless allowed.
func refusedEncodedSeparator(o *options, rw http.ResponseWriter, req *http.Request) bool {
	if o.allowEncodedSlash || !hasEncodedSeparator(req.URL.RawPath) {
		return false
	}
	refuse(rw, http.StatusBadRequest, codeEncodedSlash)
	return true
}

// refuseKeyError answers a request whose key carriers apiKey could not read as one key.
func refuseKeyError(rw http.ResponseWriter, err error) {
	if err == errMalformedKey {
		refuse(rw, http.StatusBadRequest, codeMalformedKey)
		return
	}
	refuse(rw, http.StatusBadRequest, codeAmbiguousKey)
}

// serveKeyless forwards a request that carries no key (New API answers 401 itself), unless
// requireKey.
func serveKeyless(m *middleware, rw http.ResponseWriter, req *http.Request) {
	if m.opts.requireKey {
		refuse(rw, http.StatusUnauthorized, codeMissingKey)
		return
	}
	m.next.ServeHTTP(rw, req)
}

// clientUnknown answers a keyed request whose client address ClientIP could not name.
func clientUnknown(m *middleware, rw http.ResponseWriter, req *http.Request, ip netip.Addr, err error) {
	if err == identity.ErrUnnamedClient {
		fromRelay(m, rw, req, ip, err)
		return
	}
	refuse(rw, http.StatusBadRequest, codeBadClientIP)
}

// refusedFromCache handles a cached binding that does not admit ip: a learning binding hands
// the address to admind (nil, ""), which may learn it; any other refusal is reported, with the
// hint of the key as this request spelled it.
func refusedFromCache(m *middleware, req *http.Request, b *binding, spelled string, ip netip.Addr, code string) (*binding, string) {
	if code == askAdmind {
		return nil, ""
	}
	reportIntercept(m, req, b.hash, identity.Hint(spelled), ip, code)
	return b, code
}

// refuseDecided answers a refusal: 429 with Retry-After for a source over its claim limit,
// 403 for the rest.
func refuseDecided(rw http.ResponseWriter, code string, retryAfter int) {
	if code == codeClaimLimited {
		refuseClaimLimited(rw, retryAfter)
		return
	}
	refuse(rw, http.StatusForbidden, code)
}

// undecided answers a request neither Redis nor admind could decide. Open mode forwards
// without binding (a binding is never created from a cache-only view); closed mode refuses.
func undecided(m *middleware, rw http.ResponseWriter, req *http.Request) {
	open := failOpen(m) || m.opts.monitor
	if m.redis != nil {
		countFailsafe(&m.redis.usage, open)
	}
	if open {
		m.next.ServeHTTP(rw, req)
		return
	}
	refuse(rw, http.StatusServiceUnavailable, codeUnavailable)
}

// rememberHot records an allowed request in the hot path's index when the hot path could
// recognise its repeat: one Authorization line and no other carrier or query (so the key came
// from that line), a peer that is ip:port and not a trusted proxy (so the client is the peer).
func rememberHot(m *middleware, req *http.Request, b *binding) {
	h := req.Header
	auth := h[hdrAuthorization]
	if len(auth) != 1 || req.URL.RawQuery != "" || h[hdrAPIKey] != nil || h[hdrGoogAPIKey] != nil ||
		h[hdrWSProtocol] != nil || h[hdrMJSecret] != nil || b.banned {
		return
	}
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return
	}
	if len(m.opts.trustedProxies) > 0 && identity.InPrefixes(identity.CanonicalAddr(ap.Addr()), m.opts.trustedProxies) {
		return // usually none are configured: under Yaegi the two calls cost more than this test
	}
	peer := req.RemoteAddr[:strings.LastIndexByte(req.RemoteAddr, ':')+1]
	cachePutHot(m.cache, auth[0], &hotEntry{b: b, peer: peer}, cacheClock())
}

// verdict is what decideUncached found.
type verdict struct {
	b          *binding // the binding it cached; nil if admind sent none
	code       string   // the refusal code; "" when allowed
	claim      string   // the claim of a provisional allow (the key is unbound)
	retryAfter int      // seconds, with codeClaimLimited
	ok         bool     // false: no source could decide
}

// rememberFromAdmind caches a binding admind sent, for no longer than admind allows.
func rememberFromAdmind(m *middleware, key string, b *binding, cacheTTLS int, view cacheView) {
	ttl, maxAge := m.opts.cacheTTL, cacheMaxAge
	if limit := time.Duration(cacheTTLS) * time.Second; limit > 0 && limit < maxAge {
		maxAge = limit
		if limit < ttl {
			ttl = limit
		}
	}
	b.expires, b.retire, b.epoch = view.now+ttl, view.now+maxAge, view.epoch
	cachePut(m.cache, key, b)
}

// decideUncached looks the binding up in Redis, then asks admind (which claims an unbound key
// for its first user). Each source has a function of its own: under Yaegi a call allocates
// the whole frame of the function it enters, and most misses end in Redis.
func decideUncached(m *middleware, req *http.Request, key, spelled string, ip netip.Addr, view cacheView) verdict {
	hash := view.hash
	if hash == "" {
		hash = hashKey(m, key)
	}
	if m.redis != nil {
		// Most of the time no source is limited: one atomic read here rather than a call
		// (under Yaegi a call pays for the whole frame of the function it enters).
		if m.redis.limited.n.Load() != 0 {
			if left := sourceLimited(m, ip, view.now); left > 0 {
				return decideForLimitedSource(m, req, key, spelled, hash, ip, view, left)
			}
		}
	}
	if b := redisBinding(m, hash); b != nil {
		return decideByEntry(m, req, key, spelled, hash, b, ip, view)
	}
	return decideByAdmind(m, req, key, spelled, hash, ip, view)
}

// decideByEntry decides with the binding entry Redis had for the key, and caches it.
func decideByEntry(m *middleware, req *http.Request, key, spelled, hash string, b *binding, ip netip.Addr, view cacheView) verdict {
	b.hash = hash
	// Cached for cacheTTL from the lookup's start, or cacheMaxAge while the cache is confirmed
	// fresh (set here rather than in a helper: under Yaegi the call costs a miss ~10 allocations).
	b.expires, b.retire, b.epoch = view.now+m.opts.cacheTTL, view.now+cacheMaxAge, view.epoch
	cachePut(m.cache, key, b)
	code := checkAddress(b, ip)
	if code == askAdmind {
		return decideByAdmind(m, req, key, spelled, hash, ip, view)
	}
	if code != "" {
		reportIntercept(m, req, hash, identity.Hint(spelled), ip, code)
	}
	return verdict{b: b, code: code, ok: true}
}

// decideByAdmind asks admind, which reads PostgreSQL, records refusals itself and claims an
// unbound key for its first user.
func decideByAdmind(m *middleware, req *http.Request, key, spelled, hash string, ip netip.Addr, view cacheView) verdict {
	hint := identity.Hint(spelled)
	dr := newDecideRequest(m, req, hash, hint, ip)
	if spelled != key {
		// Bindings made before keys had a canonical form are under the hash of the key as
		// spelled; admind moves such a binding to the canonical hash (store.rehashLegacy).
		dr.LegacyKeyHash = hashKey(m, spelled)
	}
	resp, err := admindDecide(m.admin, dr)
	if err != nil {
		resp, err = decideOnKeyAndAddress(m, dr, err)
		if errors.Is(err, errAdmindRejected) {
			return verdict{code: codeUndecided, ok: true}
		}
		if err != nil {
			return verdict{}
		}
	}
	return admindVerdict(m, resp, key, hash, ip, view)
}

// decideOnKeyAndAddress asks admind again, without the request's method, path and
// User-Agent, when admind rejected a decide (err): by construction admind accepts every event
// we send (reportedField), so that is a bug or an attack on one of those fields. Any other
// failure is returned as it is. A function of its own: under Yaegi decideByAdmind would pay
// for its slots on every decide.
func decideOnKeyAndAddress(m *middleware, dr decideRequest, err error) (*decideResponse, error) {
	if !errors.Is(err, errAdmindRejected) {
		return nil, err
	}
	rejectedByAdmind(m, err)
	dr.Method = ""
	dr.Path = ""
	dr.UserAgent = ""
	return admindDecide(m.admin, dr)
}

// admindVerdict reads admind's answer to a decide, and caches the binding it sent.
func admindVerdict(m *middleware, resp *decideResponse, key, hash string, ip netip.Addr, view cacheView) verdict {
	var b *binding
	if rb, err := bindingFromReply(resp.Binding); err == nil && rb != nil {
		b = rb
		b.hash = hash
		rememberFromAdmind(m, key, b, resp.CacheTTLS, view)
	}
	if resp.Allow {
		if resp.Provisional && b == nil {
			if !validClaim(resp.Claim) {
				return verdict{code: codeUndecided, ok: true}
			}
			return verdict{claim: resp.Claim, ok: true}
		}
		return verdict{b: b, ok: true}
	}
	if resp.Reason == codeClaimLimited {
		if m.redis != nil {
			noteLimited(&m.redis.limited, ip, view.now, resp.RetryAfterS)
		}
		return verdict{code: codeClaimLimited, retryAfter: resp.RetryAfterS, ok: true}
	}
	// admind recorded the intercept itself.
	if resp.Reason == codeKeyBanned {
		return verdict{b: b, code: codeKeyBanned, ok: true}
	}
	return verdict{b: b, code: codeIPNotAllowed, ok: true}
}

// fromRelay answers a keyed request whose only known address is a relay's (a gateway, a
// userland proxy, a trusted proxy that named no client): binding the key to it, or checking
// it against a binding, would decide for everyone behind the relay. Refused (forwarded in
// monitor mode), never sent to admind, counted, and said on Traefik's log at most once a
// second.
func fromRelay(m *middleware, rw http.ResponseWriter, req *http.Request, ip netip.Addr, err error) {
	if m.redis != nil {
		m.redis.usage.hidden.Add(1)
	}
	if logAllowed(&m.relayLog, time.Now()) {
		why := "relayAddresses or a detected gateway"
		if err == identity.ErrUnnamedClient {
			why = "a trusted proxy that sent no X-Forwarded-For"
		}
		fmt.Fprintf(os.Stderr, "sentinel[%s]: refused a keyed request from %s, a relay's address (%s), not a client's: see README, client addresses\n", m.name, ip, why)
	}
	if m.opts.monitor {
		m.next.ServeHTTP(rw, req)
		return
	}
	refuse(rw, http.StatusForbidden, codeClientHidden)
}

// rejectedByAdmind counts a decide admind refused, and says so on Traefik's log at most once
// a second (an attacker can send many).
func rejectedByAdmind(m *middleware, err error) {
	if m.redis != nil {
		m.redis.usage.rejected.Add(1)
	}
	if logAllowed(&m.rejectLog, time.Now()) {
		fmt.Fprintf(os.Stderr, "sentinel[%s]: admind refused a decide request: %v\n", m.name, err)
	}
}

// failOpen is the failsafe mode in force: the one admind published, else the option.
func failOpen(m *middleware) bool {
	if m.redis != nil {
		switch m.redis.runtime.failsafe.Load() {
		case failsafeClosed:
			return false
		case failsafeOpen:
			return true
		}
	}
	return m.opts.failOpen
}

// hashKey is the only form of the key that leaves the plugin.
func hashKey(m *middleware, key string) string { return identity.Hash(m.opts.hmacSecret, key) }

// redisBinding returns the cached binding, or nil on a miss, a malformed entry or any Redis
// failure: all of those go to admind, which reads PostgreSQL. Nothing here reads a failure as
// "unbound" and binds.
func redisBinding(m *middleware, hash string) *binding {
	if m.redis == nil {
		return nil
	}
	entry, found, err := redisBulk(m.redis, bindingGet(hash))
	if err != nil || !found {
		return nil
	}
	b, err := parseBindingEntry(entry)
	if err != nil {
		return nil
	}
	return b
}

// reportIntercept records a refusal (in monitor mode, a request forwarded that enforce mode
// would refuse): on the Redis stream admind consumes, or, when Redis is unavailable, with
// admind directly.
func reportIntercept(m *middleware, req *http.Request, hash, hint string, ip netip.Addr, code string) {
	ev := newDecideRequest(m, req, hash, hint, ip)
	ev.Reason = code
	if m.redis != nil {
		_, err := redisDo(m.redis, append([]string{"XADD", eventsStream, "MAXLEN", "~", eventsStreamMax, "*"},
			interceptEvent(ev, strconv.FormatInt(time.Now().UnixMilli(), 10))...)...)
		if err == nil {
			return
		}
	}
	_ = admindReport(m.admin, ev) // best effort: the refusal stands either way
}
