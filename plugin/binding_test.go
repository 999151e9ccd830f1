package plugin

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestBindingCheck(t *testing.T) {
	tests := []struct {
		desc  string
		entry string
		ip    string
		want  string
	}{
		{desc: "single IP matches", entry: "v1|active|single|203.0.113.7/32", ip: "203.0.113.7", want: ""},
		{desc: "single IP elsewhere", entry: "v1|active|single|203.0.113.7/32", ip: "203.0.113.8", want: codeIPNotAllowed},
		{desc: "CIDR low edge", entry: "v1|active|single|192.168.1.0/24", ip: "192.168.1.0", want: ""},
		{desc: "CIDR high edge", entry: "v1|active|single|192.168.1.0/24", ip: "192.168.1.255", want: ""},
		{desc: "CIDR next block", entry: "v1|active|single|192.168.1.0/24", ip: "192.168.2.0", want: codeIPNotAllowed},
		{desc: "CIDR previous block", entry: "v1|active|single|192.168.1.0/24", ip: "192.168.0.255", want: codeIPNotAllowed},
		{desc: "multiple, v4 member", entry: "v1|active|multiple|10.0.0.0/8,2001:db8::/64", ip: "10.200.1.1", want: ""},
		{desc: "multiple, v6 member", entry: "v1|active|multiple|10.0.0.0/8,2001:db8::/64", ip: "2001:db8::abcd", want: ""},
		{desc: "multiple, outsider", entry: "v1|active|multiple|10.0.0.0/8,2001:db8::/64", ip: "2001:db8:0:1::1", want: codeIPNotAllowed},
		{desc: "IPv6 /64 default bind keeps privacy addresses", entry: "v1|active|single|2001:db8:1:2::/64", ip: "2001:db8:1:2:dead:beef:1:2", want: ""},
		{desc: "v4 rule never matches v6", entry: "v1|active|single|0.0.0.0/0", ip: "2001:db8::1", want: codeIPNotAllowed},
		{desc: "all", entry: "v1|active|all|", ip: "198.51.100.1", want: ""},
		{desc: "banned beats matching IP", entry: "v1|banned|single|203.0.113.7/32", ip: "203.0.113.7", want: codeKeyBanned},
		{desc: "banned all", entry: "v1|banned|all|", ip: "203.0.113.7", want: codeKeyBanned},
	}
	for _, tt := range tests {
		b, err := parseBindingEntry(tt.entry)
		if err != nil {
			t.Errorf("%s: parse: %v", tt.desc, err)
			continue
		}
		if got := checkAddress(b, netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.desc, got, tt.want)
		}
	}
}

func TestParseBindingEntryRejects(t *testing.T) {
	for _, s := range []string{"", "v2|active|single|1.2.3.4/32", "v1|active|single|", "v1|gone|single|1.2.3.4/32",
		"v1|active|some|1.2.3.4/32", "v1|active|single|1.2.3.4", "v1|active|single|1.2.3.4/32,", "v1|active"} {
		if _, err := parseBindingEntry(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}

func TestBindingCacheBoundedAndExpiring(t *testing.T) {
	c := newBindingCache(3, 10)
	keys := []string{"a", "b", "c", "d", "e"}
	for _, k := range keys {
		cachePut(c, k, &binding{expires: 100, retire: 1000})
	}
	if n := len(c.entries); n != 3 {
		t.Fatalf("cache holds %d entries, want 3", n)
	}
	if cached(c, "e", 50) == nil {
		t.Error("fresh entry missing")
	}
	if cached(c, "e", 100) != nil {
		t.Error("expired entry returned while the cache was never confirmed fresh")
	}
}

// A stale entry still names its key's hash, which the refill uses rather than computing it
// again; a live entry and no entry name none.
func TestStaleEntryLendsItsHash(t *testing.T) {
	c := newBindingCache(3, 10)
	cachePut(c, "k", &binding{hash: "hash-of-k", expires: 100, retire: 1000})
	if _, view := cachedBinding(c, "k", 50); view.hash != "" {
		t.Errorf("a live entry's lookup gives hash %q", view.hash)
	}
	if b, view := cachedBinding(c, "k", 100); b != nil || view.hash != "hash-of-k" {
		t.Errorf("stale entry: binding %v, hash %q; want none and hash-of-k", b, view.hash)
	}
	if _, view := cachedBinding(c, "other", 100); view.hash != "" {
		t.Errorf("a missing entry's lookup gives hash %q", view.hash)
	}
}

// A confirmation that no binding changed (at 200 s, good for the cache's ttl of 10 s) keeps
// an entry past its expiry until renewAhead before its retirement; a change empties the
// cache, and a lookup that began before the change cannot put its answer back.
func TestBindingCacheFreshness(t *testing.T) {
	const s = time.Second
	c := newBindingCache(10, 10*s)
	cachePut(c, "k", &binding{expires: 100 * s, retire: 300 * s})
	c.confirmFresh(200 * s)
	for _, tt := range []struct {
		now  time.Duration
		live bool
	}{{99 * s, true}, {150 * s, true}, {209 * s, true}, {210 * s, false}} {
		if got := cached(c, "k", tt.now) != nil; got != tt.live {
			t.Errorf("at %v: live %v, want %v", tt.now, got, tt.live)
		}
	}
	c.confirmFresh(295 * s)
	if cached(c, "k", 300*s-renewAhead-1) == nil || cached(c, "k", 300*s-renewAhead) != nil {
		t.Error("retire, less renewAhead, does not bound a confirmed entry")
	}

	before := cacheEpoch(c)
	c.invalidate()
	if cached(c, "k", 150*s) != nil {
		t.Error("entry survived invalidate")
	}
	stale := &binding{expires: 1000 * s, retire: 1000 * s, epoch: before}
	cachePut(c, "k", stale)
	cachePutHot(c, "Bearer k", &hotEntry{b: stale}, 150*s)
	if cached(c, "k", 150*s) != nil || len(c.hot) != 0 {
		t.Error("a lookup begun before the invalidation was cached")
	}
	cachePut(c, "k", &binding{expires: 1000 * s, retire: 1000 * s, epoch: cacheEpoch(c)})
	if cached(c, "k", 150*s) == nil {
		t.Error("a lookup begun after the invalidation was not cached")
	}
}

// TestRenewedWhenItsHotEntryGoes: while the cache stays fresh, a binding's requests take the
// hot path until its retirement nears, and from the moment the sweeper may have taken its hot
// entry the general path refills it rather than deciding from the cache (which would not admit
// it back), and not before: a sweep can take it hotMargin plus up to one sweep interval early.
// Sweeps here run every 10 ms, as early as any sweep could remove the entry, and the retirement
// falls at the end of a sweep slot, where a sweep takes it earliest relative to it.
func TestRenewedWhenItsHotEntryGoes(t *testing.T) {
	const step = 10 * time.Millisecond
	c := newBindingCache(10, 2*time.Second)
	t0 := time.Duration(c.hotSwept+4) * hotSweepInterval
	c.confirmFresh(t0)
	b := &binding{expires: t0 + 2*time.Second, retire: t0 + cacheMaxAge + hotSweepInterval - time.Millisecond, epoch: cacheEpoch(c)}
	cachePut(c, "k", b)
	cachePutHot(c, "Bearer k", &hotEntry{b: b, peer: "127.0.0.2:"}, t0)
	renewedAt := time.Duration(-1)
	for now := t0; now < b.retire; now += step {
		c.confirmFresh(now)
		c.sweepHot(now)
		hot, live := c.hot["Bearer k"] != nil, cached(c, "k", now) != nil
		if !hot && live {
			t.Fatalf("%v before retirement the hot entry is gone and the general path still decides from the cache", b.retire-now)
		}
		if !live && renewedAt < 0 {
			renewedAt = now
		}
	}
	if earliest := hotMargin + hotSweepInterval; renewedAt < 0 || b.retire-renewedAt > earliest {
		t.Errorf("renewed %v before retirement, earlier than any sweep takes its hot entry (%v)", b.retire-renewedAt, earliest)
	}
}

// TestHotIndexSweep: the hot path reads no clock, so an entry must leave its index before its
// binding stops being live: one with less than hotMargin to live is not admitted, the sweep
// removes each hotMargin before it falls due, and every entry that counted on the cache
// staying fresh goes as soon as freshness is about to lapse, even one admitted after a sweep
// had already seen a lapse.
func TestHotIndexSweep(t *testing.T) {
	const s = time.Second
	c := newBindingCache(10, 2*s)
	t0 := time.Duration(c.hotSwept+4) * hotSweepInterval // a slot boundary ahead of the last swept
	epoch := cacheEpoch(c)
	put := func(auth string, at, expires, retire time.Duration) {
		cachePutHot(c, auth, &hotEntry{b: &binding{expires: t0 + expires, retire: t0 + retire, epoch: epoch}, peer: "127.0.0.2:"}, t0+at)
	}
	has := func(auth string) bool { return c.hot[auth] != nil }

	put("short", 0, s/2, time.Minute)
	put("plain", 0, 3*s, time.Minute)
	if has("short") || !has("plain") {
		t.Fatalf("admitted: short %v (want false), plain %v (want true)", has("short"), has("plain"))
	}
	if c.hot["plain"].until != t0+3*s {
		t.Errorf("an entry of a cache never confirmed fresh counts on its retirement")
	}
	c.sweepHot(t0 + 3*s/2)
	if !has("plain") {
		t.Error("swept 1.5s before it falls due")
	}
	c.sweepHot(t0 + 2*s)
	if has("plain") {
		t.Error("kept with hotMargin left")
	}

	c.confirmFresh(t0) // fresh until t0+2s
	put("fresh", 0, 3*s, time.Minute)
	if !has("fresh") || c.hot["fresh"].until != t0+time.Minute {
		t.Fatalf("a fresh cache's entry does not live to its retirement: %+v", c.hot["fresh"])
	}
	c.sweepHot(t0 + s/2)
	if !has("fresh") {
		t.Error("removed while the cache stays fresh beyond the horizon")
	}
	c.sweepHot(t0 + 6*s/5) // freshness ends within hotMargin
	if has("fresh") {
		t.Error("kept after freshness began to lapse")
	}
	put("after-lapse", 6*s/5, 5*s, time.Minute) // freshness ended: lives to its expiry
	c.sweepHot(t0 + 3*s/2)
	if !has("after-lapse") {
		t.Error("an entry that does not count on freshness went with a lapse already seen")
	}
	c.confirmFresh(t0 + 8*s/5) // fresh again, until t0+3.6s, but no sweep sees it
	put("refreshed", 8*s/5, 3*s, time.Minute)
	if !has("refreshed") || !c.hot["refreshed"].fresh {
		t.Fatal("not admitted as counting on freshness")
	}
	c.sweepHot(t0 + 27*s/10) // freshness ends within hotMargin again
	if has("refreshed") {
		t.Error("an entry admitted after a lapse outlived the next lapse")
	}

	put("gone", 27*s/10, 5*s, time.Minute)
	c.invalidate()
	if len(c.hot) != 0 || len(c.hotDue) != 0 {
		t.Error("invalidate left hot entries")
	}
}

// TestHotlessCache: the general path skips rememberHot when the cache is hotless, which is
// right only if cachePutHot would have admitted nothing there: with cacheTTL ≤ hotMargin no entry,
// fresh or not, outlives the sweeper's horizon. A longer cacheTTL keeps the hot index.
func TestHotlessCache(t *testing.T) {
	for _, ttl := range []time.Duration{time.Nanosecond, hotMargin / 2, hotMargin, hotMargin + 3*hotSweepInterval} {
		c := newBindingCache(10, ttl)
		t0 := time.Duration(c.hotSwept+4) * hotSweepInterval
		admitted := 0
		for _, at := range []time.Duration{0, ttl / 2, ttl} {
			now := t0 + at
			c.confirmFresh(now)
			b := &binding{expires: now + ttl, retire: now + cacheMaxAge, epoch: cacheEpoch(c)}
			cachePutHot(c, fmt.Sprint("Bearer k", at), &hotEntry{b: b, peer: "127.0.0.2:"}, now)
			admitted = len(c.hot)
		}
		if want := ttl <= hotMargin; c.hotless != want || (admitted == 0) != want {
			t.Errorf("cacheTTL %v: hotless %v, %d hot entries admitted", ttl, c.hotless, admitted)
		}
	}
}

// TestParseAdmindEntries pins the strings admind writes (admind/internal/bindings,
// TestCacheEntryWireFormat): the two sides of the Redis entry must agree.
func TestParseAdmindEntries(t *testing.T) {
	for _, s := range []string{"v1|active|single|127.0.0.2/32", "v1|banned|multiple|10.0.0.0/8,2001:db8::/64", "v1|active|all|"} {
		if _, err := parseBindingEntry(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// cached is cachedBinding's binding alone.
func cached(c *bindingCache, key string, now time.Duration) *binding {
	b, _ := cachedBinding(c, key, now)
	return b
}
