package plugin

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Allowed requests are counted in memory and flushed in one transaction: last-use per key,
// the day's allowed total, and a failsafe event when failsafe decided requests.
func TestUsageFlush(t *testing.T) {
	queued := "+QUEUED\r\n"
	addr, cmds := fakeRedis(t, []string{"+OK\r\n", queued, queued, queued, queued, queued,
		"*5\r\n:2\r\n:1\r\n:5\r\n:1\r\n$3\r\n1-1\r\n"})
	c := newRedisClient(testRedisOptions(addr))
	var u usage
	a, b := &binding{hash: "aaaa"}, &binding{hash: "bbbb"}
	for i := 0; i < 3; i++ {
		countAllowed(&u, a)
	}
	countAllowed(&u, b)
	countAllowed(&u, b)
	if len(u.dirty) != 2 {
		t.Fatalf("a key joins the flush list once per flush, got %d entries", len(u.dirty))
	}
	countFailsafe(&u, true)
	u.hidden.Add(2)
	u.limited.Add(3)
	now := time.Date(2026, 11, 29, 23, 59, 59, 0, time.UTC)
	u.flush(c, now)

	got := []string{}
	for i := 0; i < 7; i++ {
		got = append(got, strings.Join(<-cmds, " "))
	}
	if got[0] != "MULTI" || got[6] != "EXEC" {
		t.Errorf("the flush is not one transaction: %q … %q", got[0], got[6])
	}
	got = got[1:6]
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	if got[0] != "HSET sentinel:lastuse aaaa "+ms+" bbbb "+ms && got[0] != "HSET sentinel:lastuse bbbb "+ms+" aaaa "+ms {
		t.Errorf("last use: %q", got[0])
	}
	want := []string{"PEXPIRE sentinel:lastuse 3600000", "INCRBY sentinel:stats:allowed:2026-11-29 5", "EXPIRE sentinel:stats:allowed:2026-11-29 691200"}
	for i, w := range want {
		if got[i+1] != w {
			t.Errorf("command %d: %q, want %q", i+1, got[i+1], w)
		}
	}
	if !strings.HasPrefix(got[4], "XADD sentinel:events MAXLEN ~ 100000 * type failsafe open 1 closed 0 rejected 0 hidden 2 limited 3 at ") {
		t.Errorf("failsafe event: %q", got[4])
	}
	if a.hits.Load() != 0 || len(u.dirty) != 0 {
		t.Fatal("counts not reset after the flush")
	}
	// Nothing counted: nothing sent.
	u.flush(c, now)
	select {
	case cmd := <-cmds:
		t.Fatalf("an empty flush sent %q", cmd)
	default:
	}
}

// A flush that cannot reach Redis keeps the counts for the next one.
func TestUsageFlushKeepsCountsWhenRedisIsDown(t *testing.T) {
	c := newRedisClient(testRedisOptions("127.0.0.1:1"))
	var u usage
	a := &binding{hash: "aaaa"}
	countAllowed(&u, a)
	countAllowed(&u, a)
	countFailsafe(&u, false)
	u.flush(c, time.Now())
	if u.pending["aaaa"] != 2 || u.failsafeClosed.Load() != 1 {
		t.Fatalf("counts lost: pending %v, closed %d", u.pending, u.failsafeClosed.Load())
	}
}
