// Package cache is admind's side of Redis (go-redis): the binding entries the plugin reads,
// the published runtime settings and the per-day counters. Every key starts with "sentinel:"
// and carries a TTL.
package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// Cache wraps a go-redis client.
type Cache struct {
	rdb   *redis.Client
	bound boundState // bound.go
}

// New wraps rdb.
func New(rdb *redis.Client) *Cache { return &Cache{rdb: rdb} }

// bindingVersionKey holds the newest binding version Redis has seen for a key.
func bindingVersionKey(keyHash string) string { return "sentinel:bv:" + keyHash }

// contract.GenerationKey holds the binding generation the plugin polls: set to the version
// of every admin change or removal, so a plugin that reads the same value twice knows no
// cached binding went stale in between and can keep its local entries longer. First-use
// fills do not set it: they change nothing a plugin has cached.

// setIfNewer writes the entry unless a newer version was seen, and for a change (ARGV[4] ==
// "1") sets the generation. KEYS: entry, version, generation. ARGV: entry, version, ttl ms,
// change.
var setIfNewer = redis.NewScript(`
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
if seen > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3]) end
return 1`)

// dropIfNewer deletes the entry and any claim on the key (claims.go: a confirmed claim
// outlives its binding briefly), remembers the deletion's version and sets the generation.
// KEYS as setIfNewer, then the claim. ARGV: version, ttl ms.
var dropIfNewer = redis.NewScript(`
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
if seen > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return 1`)

func bindingKeys(keyHash string) []string {
	return []string{contract.BindingKey(keyHash), bindingVersionKey(keyHash), contract.GenerationKey}
}

// SetBinding fills a binding's wire entry (first use, or a refill after a Redis miss) unless
// Redis has seen a newer version of it: a decide that read the row before an admin change
// cannot bring the old rule back.
func (c *Cache) SetBinding(ctx context.Context, keyHash, entry string, version int64, ttl time.Duration) error {
	if err := setIfNewer.Run(ctx, c.rdb, bindingKeys(keyHash), entry, version, ttl.Milliseconds(), 0).Err(); err != nil {
		return fmt.Errorf("cache: set binding: %w", err)
	}
	return nil
}

// ChangeBinding stores a changed binding (rule, ban, unban) like SetBinding and moves the
// generation, so plugins drop what they cached of it.
func (c *Cache) ChangeBinding(ctx context.Context, keyHash, entry string, version int64, ttl time.Duration) error {
	if err := setIfNewer.Run(ctx, c.rdb, bindingKeys(keyHash), entry, version, ttl.Milliseconds(), 1).Err(); err != nil {
		return fmt.Errorf("cache: change binding: %w", err)
	}
	return nil
}

// DropBinding removes a binding's entry (unbind, archive), again ordered by version, and
// moves the generation.
func (c *Cache) DropBinding(ctx context.Context, keyHash string, version int64, ttl time.Duration) error {
	keys := append(bindingKeys(keyHash), contract.ClaimKey(keyHash))
	if err := dropIfNewer.Run(ctx, c.rdb, keys, version, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("cache: drop binding: %w", err)
	}
	return nil
}

// PublishSettings stores the plugin's part of the runtime settings (contract.PluginSettings).
func (c *Cache) PublishSettings(ctx context.Context, js []byte, ttl time.Duration) error {
	if err := c.rdb.Set(ctx, contract.SettingsKey, js, ttl).Err(); err != nil {
		return fmt.Errorf("cache: publish settings: %w", err)
	}
	return nil
}

// DayKey names a UTC day in counter keys.
func DayKey(t time.Time) string { return t.UTC().Format("2006-01-02") }

// AllowedCounts returns the allowed-request counters for the given days (0 when absent).
func (c *Cache) AllowedCounts(ctx context.Context, days []string) ([]int64, error) {
	keys := make([]string, len(days))
	for i, d := range days {
		keys[i] = contract.AllowedCounterKey(d)
	}
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("cache: allowed counts: %w", err)
	}
	out := make([]int64, len(days))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if _, err := fmt.Sscan(s, &out[i]); err != nil {
			return nil, errors.New("cache: allowed counts: counter is not a number")
		}
	}
	return out, nil
}

// Ping checks Redis is reachable.
func (c *Cache) Ping(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }
