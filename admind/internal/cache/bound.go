package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// The bound set (contract.BoundSetKey) holds contract.BoundMember of every binding's key
// hash, and contract.BoundCompleteKey exists while it holds them all. The plugin reads both to
// refuse a source that is over its claim limit without asking admind (plugin/limits.go): a key
// missing from a complete set, and held by no claim, is bound nowhere, so refusing it cannot
// limit a bound key.
//
// So the set must never lack a binding while the marker exists:
//   - a member is added before its binding row is written (AddBound); when the add fails, the
//     set is marked incomplete (MarkIncomplete) at once and again once the row is written, and
//     a rebuild that began after both (KeepBound) puts every binding back in;
//   - a member is removed after its row is gone (RemoveBound); a failed removal leaves an
//     extra member, which only sends that key's requests to admind;
//   - a rebuild reads PostgreSQL into a second set, which every add and removal meanwhile also
//     writes, and then takes the set's place with the marker.
//
// Both keys carry TTLs that KeepBound renews (the set outlives the marker), so with no admind
// left the marker goes first and the plugin asks admind again.
const (
	boundBuildKey = "sentinel:bound:build" // the rebuild in progress
	boundLockKey  = "sentinel:bound:lock"  // one rebuild at a time, across admind replicas
	// boundMarkerTTL: how long the marker holds without KeepBound (the set lives twice that).
	boundMarkerTTL = 10 * time.Minute
	boundLockTTL   = 5 * time.Minute
	// boundPlaceholder keeps the set in existence with no binding (it is no hex member).
	boundPlaceholder = "-"
	boundBatch       = 1000
)

// boundState is what this process knows of the set: the times it was marked incomplete, and
// how many of those the last rebuild it completed began after.
type boundState struct {
	incomplete atomic.Int64
	rebuilt    atomic.Int64
}

// addBound adds ARGV to the set and to a rebuild in progress; to neither if it does not
// exist (then the marker is gone too, and a rebuild will add them: no set without a TTL).
// Members go in chunks: Lua's unpack takes a few thousand values at most (an import has more).
var addBound = redis.NewScript(`
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    for j = 1, #ARGV, 4000 do
      redis.call('SADD', KEYS[i], unpack(ARGV, j, math.min(j + 3999, #ARGV)))
    end
  end
end
return 1`)

// AddBound adds the hashes' members before their bindings are written. If Redis does not take
// them, the set is marked incomplete; the caller marks it again once the rows are written.
func (c *Cache) AddBound(ctx context.Context, keyHashes ...string) error {
	if len(keyHashes) == 0 {
		return nil
	}
	members := boundMembers(keyHashes)
	err := addBound.Run(ctx, c.rdb, []string{contract.BoundSetKey, boundBuildKey}, members...).Err()
	if err != nil {
		c.MarkIncomplete(ctx)
		return fmt.Errorf("cache: add to the bound set: %w", err)
	}
	return nil
}

// boundMembers is the hashes' members, as Redis command arguments.
func boundMembers(keyHashes []string) []any {
	members := make([]any, 0, len(keyHashes))
	for _, h := range keyHashes {
		members = append(members, contract.BoundMember(h))
	}
	return members
}

// MarkIncomplete says the set may lack a binding: the marker is dropped now if Redis answers,
// else by the next KeepBound, which then rebuilds.
func (c *Cache) MarkIncomplete(ctx context.Context) {
	c.bound.incomplete.Add(1)
	_ = c.rdb.Del(ctx, contract.BoundCompleteKey).Err()
}

// RemoveBound removes the members of hashes whose bindings are gone. A failure leaves extra
// members, which is safe; the next rebuild drops them.
func (c *Cache) RemoveBound(ctx context.Context, keyHashes ...string) error {
	if len(keyHashes) == 0 {
		return nil
	}
	members := boundMembers(keyHashes)
	pipe := c.rdb.Pipeline()
	pipe.SRem(ctx, contract.BoundSetKey, members...)
	pipe.SRem(ctx, boundBuildKey, members...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cache: remove from the bound set: %w", err)
	}
	return nil
}

// finishBuild puts the build set (placeholder included, so that it exists with no binding)
// in the set's place and sets the marker, if this rebuild still holds the lock. KEYS: build,
// set, marker, lock. ARGV: lock token, set TTL ms, marker TTL ms.
var finishBuild = redis.NewScript(`
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
redis.call('DEL', KEYS[4])
return 1`)

// renewBound extends the set's and the marker's lives, the marker only if it exists (only a
// rebuild creates it). KEYS: set, marker. ARGV: set TTL ms, marker TTL ms. Returns whether
// the marker exists.
var renewBound = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`)

// errBuildTaken: another admind is rebuilding the set.
var errBuildTaken = errors.New("cache: another admind is rebuilding the bound set")

// KeepBound runs every few seconds: it rebuilds the set from each (every binding's key
// hash, read from PostgreSQL) when the marker is missing or this process marked the set
// incomplete since its last rebuild began, and otherwise renews the TTLs. It reports whether
// it rebuilt.
func (c *Cache) KeepBound(ctx context.Context, each func(ctx context.Context, fn func(keyHash string) error) error) (bool, error) {
	if c.bound.incomplete.Load() == c.bound.rebuilt.Load() {
		ok, err := renewBound.Run(ctx, c.rdb, []string{contract.BoundSetKey, contract.BoundCompleteKey},
			(2 * boundMarkerTTL).Milliseconds(), boundMarkerTTL.Milliseconds()).Int()
		if err != nil {
			return false, fmt.Errorf("cache: renew the bound set: %w", err)
		}
		if ok == 1 {
			return false, nil
		}
	} else if err := c.rdb.Del(ctx, contract.BoundCompleteKey).Err(); err != nil {
		return false, fmt.Errorf("cache: drop the bound set's marker: %w", err)
	}
	return c.RebuildBound(ctx, each)
}

// RebuildBound rebuilds the set from each, unless another admind is rebuilding it (then
// false, nil). The marker, if there, stays meanwhile: the old set takes every add too. admind
// rebuilds once at start, so that bindings written to PostgreSQL by other means are in.
func (c *Cache) RebuildBound(ctx context.Context, each func(ctx context.Context, fn func(keyHash string) error) error) (bool, error) {
	incomplete := c.bound.incomplete.Load() // covered only if marked before this rebuild began
	if err := c.rebuildBound(ctx, each); err != nil {
		if err == errBuildTaken {
			return false, nil // that rebuild sets the marker; this process checks again next time
		}
		return false, err
	}
	c.bound.rebuilt.Store(incomplete)
	return true, nil
}

func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (c *Cache) rebuildBound(ctx context.Context, each func(ctx context.Context, fn func(keyHash string) error) error) error {
	token, err := newToken()
	if err != nil {
		return err
	}
	ok, err := c.rdb.SetNX(ctx, boundLockKey, token, boundLockTTL).Result()
	if err != nil {
		return fmt.Errorf("cache: lock the bound set's rebuild: %w", err)
	}
	if !ok {
		return errBuildTaken
	}
	release := func() {
		_ = c.rdb.Eval(context.WithoutCancel(ctx), `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1`,
			[]string{boundLockKey}, token).Err()
	}
	// The build set exists before PostgreSQL is read, so that an add committed after the read
	// began is in it (AddBound writes both sets).
	pipe := c.rdb.TxPipeline()
	pipe.Del(ctx, boundBuildKey)
	pipe.SAdd(ctx, boundBuildKey, boundPlaceholder)
	pipe.PExpire(ctx, boundBuildKey, boundLockTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		release()
		return fmt.Errorf("cache: start the bound set's rebuild: %w", err)
	}
	batch := make([]any, 0, boundBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.rdb.SAdd(ctx, boundBuildKey, batch...).Err()
		batch = batch[:0]
		return err
	}
	err = each(ctx, func(keyHash string) error {
		if !contract.ValidKeyHash(keyHash) {
			return nil
		}
		batch = append(batch, contract.BoundMember(keyHash))
		if len(batch) == boundBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		release()
		return fmt.Errorf("cache: rebuild the bound set: %w", err)
	}
	done, err := finishBuild.Run(ctx, c.rdb, []string{boundBuildKey, contract.BoundSetKey, contract.BoundCompleteKey, boundLockKey},
		token, (2 * boundMarkerTTL).Milliseconds(), boundMarkerTTL.Milliseconds()).Int()
	if err != nil {
		release()
		return fmt.Errorf("cache: finish the bound set's rebuild: %w", err)
	}
	if done != 1 {
		return errors.New("cache: the bound set's rebuild outlived its lock")
	}
	return nil
}
