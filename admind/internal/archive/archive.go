// Package archive moves bindings unused for ARCHIVE_DAYS to archived_bindings; the key binds
// again on its next use. One replica archives at a time (a PostgreSQL advisory lock).
package archive

import (
	"context"
	"log/slog"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/store"
)

// batch bounds one transaction; a run repeats batches until none is full.
const batch = 1000

// Archiver runs the archive job.
type Archiver struct {
	Store interface {
		ArchiveUnused(ctx context.Context, cutoff time.Time, limit int) ([]store.Archived, bool, error)
	}
	// SyncLastUse applies last-use times still waiting in Redis first, so a key that was
	// used recently is seen as used.
	SyncLastUse func(ctx context.Context) (int, error)
	// DropCached removes an archived binding from Redis (versioned, retried on failure).
	DropCached func(ctx context.Context, keyHash string, version int64)
	Settings   func() settings.Settings
	Now        func() time.Time
	Log        *slog.Logger
	// Archived, when set, sees how many bindings each run moved (metrics).
	Archived func(n int)
}

// RunOnce archives what is due and returns how many bindings moved; ran is false when
// archiving is off or another replica holds the lock.
func (a *Archiver) RunOnce(ctx context.Context) (moved int, ran bool, err error) {
	days := a.Settings().ArchiveDays
	if days == 0 {
		return 0, false, nil
	}
	if _, err := a.SyncLastUse(ctx); err != nil {
		// Without fresh last-use times a key in use could look idle: skip this run.
		return 0, false, err
	}
	cutoff := a.Now().Add(-time.Duration(days) * 24 * time.Hour)
	for {
		list, ok, err := a.Store.ArchiveUnused(ctx, cutoff, batch)
		if err != nil || !ok {
			return moved, ok || moved > 0, err
		}
		for _, b := range list {
			a.DropCached(ctx, b.KeyHash, b.Version)
			a.Log.Info("binding archived", "key_hint", b.KeyHint, "unused_days", days)
		}
		moved += len(list)
		if a.Archived != nil {
			a.Archived(len(list))
		}
		if len(list) < batch {
			return moved, true, nil
		}
	}
}
