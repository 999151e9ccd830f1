package e2e

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestRedisSentinelFailover: Redis runs as a primary with a replica under a Redis Sentinel,
// and both the plugin (redisSentinels) and admind (REDIS_SENTINELS) find the primary through
// it. The primary is killed under traffic: every answer stays right and in time (admind
// decides from PostgreSQL meanwhile), and once the Sentinel has promoted the replica, the
// plugin and admind use it — intercept events, first-use fills and usage counts land there.
func TestRedisSentinelFailover(t *testing.T) {
	s := faultStack(t, "closed", stackOptions{Sentinel: true})
	const key = "failoverBound0123456789"
	s.expect(t, "127.0.0.2", key, 200)
	s.expect(t, "127.0.0.3", key, 403)
	ctx := context.Background()
	entry := "sentinel:b:" + keyHash(key)
	if v := s.failover.Primary.Client(t).Get(ctx, entry).Val(); v != "v1|active|single|127.0.0.2/32" {
		t.Fatalf("the binding is not in the primary: %q", v)
	}

	stop := s.traffic(t, map[string]int{"127.0.0.2": 200, "127.0.0.3": 403}, key)
	killed := time.Now()
	s.failover.Primary.Kill()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.failover.SentinelAddr})
	defer sc.Close()
	replica := s.failover.Replica.Addr
	testenv.WaitFor(t, 30*time.Second, "the Sentinel promotes the replica", func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, s.failover.Name).Result()
		return err == nil && net.JoinHostPort(addr[0], addr[1]) == replica
	})
	promoted := time.Since(killed)
	time.Sleep(2 * time.Second) // traffic keeps flowing across the switch
	stop()

	// Everything now goes to the promoted replica.
	primary := s.failover.Replica.Client(t)
	xadds := func() int { // admind deletes consumed events, so count the writes instead
		m := regexp.MustCompile(`cmdstat_xadd:calls=(\d+)`).FindStringSubmatch(primary.Info(ctx, "commandstats").Val())
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	before := xadds()
	s.expect(t, "127.0.0.4", key, 403) // an intercept event, XADDed by the plugin
	waitRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND ip = '127.0.0.4'`, keyHash(key))
	if xadds() == before {
		t.Error("the intercept event was not added to the new primary's stream")
	}
	s.expect(t, "127.0.0.5", "failoverNew0123456789", 200) // first use: admind fills the new primary
	if v := primary.Get(ctx, "sentinel:b:"+keyHash("failoverNew0123456789")).Val(); v != "v1|active|single|127.0.0.5/32" {
		t.Errorf("the new key's binding is not in the new primary: %q", v)
	}
	if n := s.bindings(t, "failoverNew0123456789"); n != 1 {
		t.Errorf("%d bindings for the key first used after the failover", n)
	}
	day := "sentinel:stats:allowed:" + time.Now().UTC().Format("2006-01-02")
	counted, _ := primary.Get(ctx, day).Int()
	s.expect(t, "127.0.0.2", key, 200)
	testenv.WaitFor(t, 15*time.Second, "the plugin's usage flush reaches the new primary", func() bool {
		n, _ := primary.Get(ctx, day).Int()
		return n > counted
	})
	t.Logf("the Sentinel promoted the replica %s after the primary was killed; answers stayed right throughout", promoted.Round(time.Millisecond))
}
