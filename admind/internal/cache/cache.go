// Package cache is admind's side of Redis (go-redis): the binding entries the plugin reads.
// Every key starts with "sentinel:" and carries a TTL.
package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache wraps a go-redis client.
type Cache struct {
	rdb *redis.Client
}

// New wraps rdb.
func New(rdb *redis.Client) *Cache { return &Cache{rdb: rdb} }

// BindingKey is where a binding is cached (the plugin reads the same key).
func BindingKey(keyHash string) string { return "sentinel:b:" + keyHash }

// SetBinding stores a binding's wire entry with a TTL.
func (c *Cache) SetBinding(ctx context.Context, keyHash, entry string, ttl time.Duration) error {
	if err := c.rdb.Set(ctx, BindingKey(keyHash), entry, ttl).Err(); err != nil {
		return fmt.Errorf("cache: set binding: %w", err)
	}
	return nil
}

// Ping checks Redis is reachable.
func (c *Cache) Ping(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }
