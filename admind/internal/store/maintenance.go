package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TouchBindings moves last-use times reported by the plugin into token_bindings. A time
// never goes backwards; the version does not change (the cached rule is the same).
func (s *Store) TouchBindings(ctx context.Context, lastUse map[string]time.Time) error {
	hashes := make([]string, 0, len(lastUse))
	times := make([]time.Time, 0, len(lastUse))
	for h, t := range lastUse {
		hashes, times = append(hashes, h), append(times, t)
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE token_bindings t SET last_used_at = GREATEST(t.last_used_at, v.ts)
		FROM unnest($1::text[], $2::timestamptz[]) AS v(h, ts) WHERE t.key_hash = v.h`, hashes, times)
	if err != nil {
		return fmt.Errorf("store: touch bindings: %w", err)
	}
	return nil
}

// archiveLock is the advisory lock key that lets one admind replica archive at a time.
const archiveLock = 0x5e47_a7c1

// Archived is a binding moved to archived_bindings; Version orders its cache removal.
type Archived struct {
	KeyHash, KeyHint string
	Version          int64
}

// ArchiveUnused moves up to limit active bindings unused since cutoff to archived_bindings.
// Banned bindings stay: archiving would let the key bind again, which is an unban; so do
// pre-bound bindings never used (last_used_at NULL): archiving one would hand its key to
// whoever uses it first, undoing what the admin set up. ran is
// false when another replica holds the archive lock.
func (s *Store) ArchiveUnused(ctx context.Context, cutoff time.Time, limit int) (moved []Archived, ran bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, archiveLock).Scan(&ran); err != nil || !ran {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH moved AS (
				DELETE FROM token_bindings WHERE id IN (
					SELECT id FROM token_bindings WHERE status = 'active' AND last_used_at < $1
					ORDER BY last_used_at LIMIT $2 FOR UPDATE SKIP LOCKED)
				RETURNING *)
			INSERT INTO archived_bindings (binding_id, key_hash, key_hint, rule_mode, cidrs, status, origin, first_ip, last_ip,
				created_at, last_used_at, updated_at, note, learn_slots, learn_until)
			SELECT id, key_hash, key_hint, rule_mode, cidrs, status, origin, first_ip, last_ip, created_at, last_used_at, updated_at, note,
				learn_slots, learn_until
			FROM moved
			RETURNING key_hash, key_hint, nextval('binding_version')`, cutoff, limit)
		if err != nil {
			return err
		}
		moved, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Archived, error) {
			var a Archived
			return a, r.Scan(&a.KeyHash, &a.KeyHint, &a.Version)
		})
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: archive: %w", err)
	}
	return moved, ran, nil
}
