// Package lastuse syncs the last-use times the plugin reports to Redis (the hash
// sentinel:lastuse, key_hash → unix ms) into token_bindings.last_used_at.
package lastuse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// Store applies last-use times.
type Store interface {
	TouchBindings(ctx context.Context, lastUse map[string]time.Time) error
}

// Syncer drains the hash. Each replica renames it to its own work key first, so no two
// replicas apply the same batch, and a batch that failed is applied again on the next run.
type Syncer struct {
	Redis *redis.Client
	Store Store
	Name  string // unique per replica
}

// Sync applies what the plugin reported since the last run and returns how many keys it
// touched.
func (s *Syncer) Sync(ctx context.Context) (int, error) {
	work := contract.LastUseKey + ":syncing:" + s.Name
	leftover, err := s.Redis.Exists(ctx, work).Result()
	if err != nil {
		return 0, fmt.Errorf("lastuse: %w", err)
	}
	if leftover == 0 {
		if err := s.Redis.Rename(ctx, contract.LastUseKey, work).Err(); err != nil {
			if err.Error() == "ERR no such key" {
				return 0, nil
			}
			return 0, fmt.Errorf("lastuse: %w", err)
		}
	}
	vals, err := s.Redis.HGetAll(ctx, work).Result()
	if err != nil {
		return 0, fmt.Errorf("lastuse: %w", err)
	}
	batch := make(map[string]time.Time, len(vals))
	for h, v := range vals {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || len(h) != 64 {
			continue // not ours to trust
		}
		batch[h] = time.UnixMilli(ms)
	}
	if len(batch) > 0 {
		if err := s.Store.TouchBindings(ctx, batch); err != nil {
			return 0, err // the work key stays for the next run
		}
	}
	if err := s.Redis.Del(ctx, work).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return len(batch), fmt.Errorf("lastuse: %w", err)
	}
	return len(batch), nil
}
