package plugin

import (
	"testing"
	"time"
)

// The background loop's poll: the first generation read empties the caches (they may hold
// entries from before it), the same generation again only confirms them fresh, a new or lost
// generation empties them, and a failed read does neither, so entries fall back to cacheTTL.
func TestPollConfirmsOrEmptiesCaches(t *testing.T) {
	replies := []string{
		bulk("41"), "$-1\r\n", // first read
		bulk("41"), bulk(`{"failsafe_mode":"open"}`), // unchanged
		bulk("42"), "$-1\r\n", // an admin change
		"$-1\r\n", "$-1\r\n", // Redis restarted empty
		"-ERR busy\r\n", "$-1\r\n", // an error reply
	}
	addr, _ := fakeRedis(t, replies)
	c := newRedisClient(testRedisOptions(addr))
	bc := newBindingCache(10, 2*time.Second)
	c.runtime.addCache(bc)

	at := 1000 * time.Second
	step := func(desc string, wantEpoch int64, wantFresh time.Duration) {
		t.Helper()
		c.runtime.poll(c, at)
		if bc.epoch != wantEpoch || bc.freshUntil != wantFresh {
			t.Errorf("%s: epoch %d fresh until %v, want %d and %v", desc, bc.epoch, bc.freshUntil, wantEpoch, wantFresh)
		}
	}
	step("first read", 1, at+2*time.Second)
	cachePut(bc, "k", &binding{expires: 0, retire: at + time.Minute, epoch: 1})
	at += time.Second
	step("unchanged", 1, at+2*time.Second)
	if cached(bc, "k", at) == nil {
		t.Error("a confirmed entry was not live")
	}
	if c.runtime.failsafe.Load() != failsafeOpen {
		t.Error("published failsafe mode not applied")
	}
	at += time.Second
	step("changed", 2, at+2*time.Second)
	if cached(bc, "k", at) != nil {
		t.Error("entry survived a generation change")
	}
	at += time.Second
	step("lost", 3, at+2*time.Second)
	last := at + 2*time.Second
	at += time.Second
	step("error reply", 3, last)
}
