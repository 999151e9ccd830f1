package plugin

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// binding is what the plugin needs of a key's binding to decide a request alone.
// Its wire form in Redis (sentinel:b:<key_hash>, written by admind) is
//
//	v1|<status>|<mode>|<cidr>,<cidr>,...
//
// with status active|banned and mode single|multiple|all.
type binding struct {
	hash     string
	hint     string
	banned   bool
	all      bool
	prefixes []netip.Prefix
	expires  int64        // unix nanos; local cache only
	hits     atomic.Int64 // allowed requests since the last usage flush
}

var errBadEntry = errors.New("malformed binding entry")

// redisBindingKey is where admind caches a binding.
func redisBindingKey(hash string) string { return "sentinel:b:" + hash }

func parseBindingEntry(s string) (*binding, error) {
	parts := strings.SplitN(s, "|", 4)
	if len(parts) != 4 || parts[0] != "v1" {
		return nil, errBadEntry
	}
	b := &binding{}
	switch parts[1] {
	case "active":
	case "banned":
		b.banned = true
	default:
		return nil, errBadEntry
	}
	switch parts[2] {
	case "all":
		b.all = true
		return b, nil
	case "single", "multiple":
	default:
		return nil, errBadEntry
	}
	if parts[3] == "" {
		return nil, errBadEntry
	}
	for _, c := range strings.Split(parts[3], ",") {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, errBadEntry
		}
		b.prefixes = append(b.prefixes, p)
	}
	return b, nil
}

// check returns "" when ip may use the key, otherwise the refusal code.
func (b *binding) check(ip netip.Addr) string {
	if b.banned {
		return codeKeyBanned
	}
	if b.all || inPrefixes(ip, b.prefixes) {
		return ""
	}
	return codeIPNotAllowed
}

// bindingCache is the bounded local cache, keyed by the normalised key itself so a hit costs
// no HMAC. It lives in process memory only and is shared by every instance of one
// middleware (Traefik rebuilds instances on each config reload).
//
// hot is the hot path's index (see Sentinel.ServeHTTP): the raw Authorization value of a
// request the general path allowed, with the peer it came from. Both maps hold at most size
// entries.
type bindingCache struct {
	mu      sync.RWMutex
	entries map[string]*binding
	hot     map[string]*hotEntry
	size    int
}

// hotEntry says: a request carrying this Authorization value and nothing else that names a
// key, from a peer whose RemoteAddr starts with peer ("127.0.0.1:", "[2001:db8::1]:"), was
// allowed under settings s by binding b. It stays good while b does (b.expires).
type hotEntry struct {
	b    *binding
	peer string
	s    *settings
}

func newBindingCache(size int) *bindingCache {
	return &bindingCache{entries: make(map[string]*binding), hot: make(map[string]*hotEntry), size: size}
}

func (c *bindingCache) get(key string, now int64) *binding {
	c.mu.RLock()
	b := c.entries[key]
	c.mu.RUnlock()
	if b == nil || now >= b.expires {
		return nil
	}
	return b
}

func (c *bindingCache) put(key string, b *binding) {
	c.mu.Lock()
	if len(c.entries) >= c.size {
		if _, ok := c.entries[key]; !ok {
			// Evict an arbitrary entry (map order is random): cheap, and a bounded cache of
			// short-lived entries needs no better policy.
			for k := range c.entries {
				delete(c.entries, k)
				break
			}
		}
	}
	c.entries[key] = b
	c.mu.Unlock()
}

func (c *bindingCache) putHot(auth string, e *hotEntry) {
	c.mu.Lock()
	if len(c.hot) >= c.size {
		if _, ok := c.hot[auth]; !ok {
			for k := range c.hot { // as in put
				delete(c.hot, k)
				break
			}
		}
	}
	c.hot[auth] = e
	c.mu.Unlock()
}
