package plugin

import (
	"encoding/json"
	"sync/atomic"
	"time"
)

// Runtime settings: admind publishes the settings an admin edits to the Redis key
// sentinel:settings (JSON). The plugin reads failsafe_mode from it, piggybacked on a binding
// lookup at most every settingsRefresh, so the cache-hit path pays nothing and a miss still
// costs one round trip. The last value seen holds while Redis is down, which is exactly when
// it matters; until one is seen, the failsafeMode option applies.
const (
	settingsKey     = "sentinel:settings"
	settingsRefresh = 5 * time.Second
)

// Values of runtimeSettings.failsafe.
const (
	failsafeUnknown int64 = iota
	failsafeClosed
	failsafeOpen
)

// runtimeSettings belong to a Redis client (one per Redis in the package registry): every
// middleware instance reading that Redis shares them.
type runtimeSettings struct {
	due      atomic.Int64 // unix nanos of the next refresh
	failsafe atomic.Int64
}

// refreshDue reports whether this lookup should also fetch the settings, and if so claims the
// refresh so concurrent requests do not all fetch them.
func (rs *runtimeSettings) refreshDue(now int64) bool {
	due := rs.due.Load()
	return now >= due && rs.due.CompareAndSwap(due, now+int64(settingsRefresh))
}

// apply reads a GET sentinel:settings reply; anything unreadable leaves the last value.
func (rs *runtimeSettings) apply(v respValue) {
	if v.kind != '$' || v.null {
		return
	}
	var s struct {
		FailsafeMode string `json:"failsafe_mode"`
	}
	if json.Unmarshal([]byte(v.str), &s) != nil {
		return
	}
	switch s.FailsafeMode {
	case "closed":
		rs.failsafe.Store(failsafeClosed)
	case "open":
		rs.failsafe.Store(failsafeOpen)
	}
}
