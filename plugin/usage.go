package plugin

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Usage reporting: allowed requests are counted in memory and flushed to Redis at most every
// usageFlushInterval in one pipelined transaction, never a Redis write per request.
//
//   - sentinel:lastuse (hash: key_hash → unix ms of the flush that saw it used), which admind
//     syncs into token_bindings.last_used_at;
//   - sentinel:stats:allowed:<UTC day> (allowed requests), for the dashboard;
//   - one failsafe event on sentinel:events per flush when requests were forwarded or refused
//     because neither Redis nor admind could decide, so admind can alert, or when admind
//     refused decide requests (rejected: never a failsafe case, but worth a metric), or when
//     keyed requests came from a relay's address (hidden).
//
// The hot path pays one atomic add per allowed request; a key joins the flush list (under a
// mutex) only on its first hit since the last flush. The Redis client's background loop
// (runtime.go) flushes.
const (
	usageFlushInterval = 5 * time.Second
	lastUseTTL         = "3600000" // ms; admind drains it every few seconds
	statsTTL           = "691200"  // s: 8 days, the dashboard shows 7
	maxPendingKeys     = 100000    // bound on keys kept across failed flushes
)

type usage struct {
	mu      sync.Mutex
	dirty   []*binding       // bindings with hits since the last flush
	pending map[string]int64 // key_hash → hits a failed flush could not deliver

	failsafeOpen   atomic.Int64 // requests forwarded unbound
	failsafeClosed atomic.Int64 // requests answered 503
	rejected       atomic.Int64 // decide requests admind refused (errAdmindRejected)
	hidden         atomic.Int64 // keyed requests refused as coming from a relay (fromRelay)
	limited        atomic.Int64 // first uses refused here: their source is over its claim limit (limits.go)
}

// countAllowed counts one allowed request for b.
func countAllowed(u *usage, b *binding) {
	if b.hits.Add(1) == 1 {
		markUsed(u, b)
	}
}

// markUsed puts b on the flush list; call it when b's hit count went from 0 to 1.
func markUsed(u *usage, b *binding) {
	u.mu.Lock()
	u.dirty = append(u.dirty, b)
	u.mu.Unlock()
}

// countFailsafe counts one request decided by the failsafe mode.
func countFailsafe(u *usage, open bool) {
	if open {
		u.failsafeOpen.Add(1)
	} else {
		u.failsafeClosed.Add(1)
	}
}

// flush sends what was counted since the last flush in one transaction; on failure the counts
// are kept for the next one.
func (u *usage) flush(c *redisClient, now time.Time) {
	u.mu.Lock()
	dirty := u.dirty
	u.dirty = nil
	counts := u.pending
	u.pending = nil
	u.mu.Unlock()
	if counts == nil {
		counts = make(map[string]int64, len(dirty))
	}
	for _, b := range dirty {
		if n := b.hits.Swap(0); n > 0 {
			counts[b.hash] += n
		}
	}
	open, closed, rejected, hidden := u.failsafeOpen.Swap(0), u.failsafeClosed.Swap(0), u.rejected.Swap(0), u.hidden.Swap(0)
	limited := u.limited.Swap(0)
	tallied := open > 0 || closed > 0 || rejected > 0 || hidden > 0 || limited > 0
	if len(counts) == 0 && !tallied {
		return
	}
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	var cmds [][]string
	var total int64
	if len(counts) > 0 {
		hset := make([]string, 0, 2+2*len(counts))
		hset = append(hset, "HSET", lastUseKey)
		for h, n := range counts {
			hset = append(hset, h, ms)
			total += n
		}
		day := allowedStatsPrefix + now.UTC().Format("2006-01-02")
		cmds = append(cmds, hset, []string{"PEXPIRE", lastUseKey, lastUseTTL},
			[]string{"INCRBY", day, strconv.FormatInt(total, 10)}, []string{"EXPIRE", day, statsTTL})
	}
	if tallied {
		cmds = append(cmds, append([]string{"XADD", eventsStream, "MAXLEN", "~", eventsStreamMax, "*"},
			failsafeEvent(open, closed, rejected, hidden, limited, ms)...))
	}
	// One transaction: nobody sees sentinel:lastuse or the day's counter between its write
	// and its TTL (every sentinel:* counter carries one), and a refused EXEC keeps the counts.
	cmds = append(append([][]string{{"MULTI"}}, cmds...), []string{"EXEC"})
	if replies, err := redisPipeline(c, cmds); err == nil && replies[len(replies)-1].kind == '*' {
		return
	}
	// Keep the counts for the next flush (bounded), and the failsafe tallies too.
	u.failsafeOpen.Add(open)
	u.failsafeClosed.Add(closed)
	u.rejected.Add(rejected)
	u.hidden.Add(hidden)
	u.limited.Add(limited)
	u.mu.Lock()
	if u.pending == nil {
		u.pending = make(map[string]int64, len(counts))
	}
	for h, n := range counts {
		if len(u.pending) >= maxPendingKeys {
			break
		}
		u.pending[h] += n
	}
	u.mu.Unlock()
}
