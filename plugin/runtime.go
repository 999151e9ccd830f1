package plugin

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// What admind publishes in Redis for every plugin, read by one background loop per Redis
// client (the package registry holds those; never one goroutine per New), every pollInterval
// in one round trip:
//
//   - sentinel:gen, the binding generation: admind sets it to the change's version whenever
//     an admin change or the archive alters or removes a binding (first-use binds do not
//     touch it). While the value read stays the same, nothing cached from this Redis has gone
//     stale, so the local caches' entries stay good until cacheMaxAge instead of cacheTTL;
//     when it changes, is lost (Redis restarted empty) or is first read, those caches are
//     emptied. If the loop cannot read it, entries fall back to cacheTTL: a change is obeyed
//     within cacheTTL either way.
//   - sentinel:settings (JSON): the plugin reads failsafe_mode from it. The last value seen
//     holds while Redis is down, which is exactly when it matters; until one is seen, the
//     failsafeMode option applies.
//
// The same loop flushes the usage counts (usage.go) every usageFlushInterval.
const (
	pollInterval = 500 * time.Millisecond
	// cacheMaxAge bounds an entry's life however fresh the generation says it is: a
	// safety net for a change made behind admind's back, at one refill per key per minute.
	cacheMaxAge = time.Minute
)

// backgroundLoops is false only in this package's unit tests, which run poll and flush
// themselves against scripted Redis replies.
var backgroundLoops = true

// Values of runtimeState.failsafe.
const (
	failsafeUnknown int64 = iota
	failsafeClosed
	failsafeOpen
)

// runtimeState belongs to a Redis client: every middleware instance reading that Redis shares
// it.
type runtimeState struct {
	failsafe atomic.Int64

	mu     sync.Mutex
	caches []*bindingCache // the local caches filled from this Redis

	// Owned by the loop.
	started     sync.Once
	seen        bool   // a generation reply has been read
	generation  string // "" when the key did not exist
	settingsRaw string
}

func (rs *runtimeState) addCache(c *bindingCache) {
	rs.mu.Lock()
	rs.caches = append(rs.caches, c)
	rs.mu.Unlock()
}

// start runs c's background loop once.
func (rs *runtimeState) start(c *redisClient) {
	if !backgroundLoops {
		return
	}
	rs.started.Do(func() {
		go func() {
			t := time.NewTicker(pollInterval)
			lastFlush := time.Now()
			for now := range t.C {
				rs.poll(c, cacheClock())
				if now.Sub(lastFlush) >= usageFlushInterval {
					c.usage.flush(c, now)
					lastFlush = now
				}
			}
		}()
	})
}

// poll reads the generation and the settings. sent (cache clock) is taken before the
// request: whatever the reply says was true at some moment after it.
func (rs *runtimeState) poll(c *redisClient, sent time.Duration) {
	replies, err := redisPipeline(c, [][]string{{"GET", generationKey}, {"GET", settingsKey}})
	if err != nil || replies[0].kind != '$' { // a bulk string, or nil when the key is missing
		return // entries fall back to cacheTTL
	}
	rs.applySettings(replies[1])
	gen := replies[0].str
	changed := !rs.seen || gen != rs.generation
	rs.seen, rs.generation = true, gen
	rs.mu.Lock()
	caches := rs.caches
	rs.mu.Unlock()
	for _, bc := range caches {
		if changed {
			bc.invalidate()
		}
		bc.confirmFresh(sent)
	}
}

// applySettings reads a GET sentinel:settings reply; anything unreadable leaves the last value.
func (rs *runtimeState) applySettings(v respValue) {
	if v.kind != '$' || v.null || v.str == rs.settingsRaw {
		return
	}
	var s publishedSettings
	if json.Unmarshal([]byte(v.str), &s) != nil {
		return
	}
	rs.settingsRaw = v.str
	switch s.FailsafeMode {
	case failsafeModeClosed:
		rs.failsafe.Store(failsafeClosed)
	case failsafeModeOpen:
		rs.failsafe.Store(failsafeOpen)
	}
}
