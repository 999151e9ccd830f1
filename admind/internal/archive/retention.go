package archive

import (
	"context"
	"log/slog"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
)

// pruneBatch bounds one DELETE; a run repeats batches until one is short.
const pruneBatch = 10000

// LogPruner deletes intercept logs older than the log_retention_days setting, so a flood of
// refused requests cannot grow intercept_logs without end. Every replica may run it: the
// deletes are idempotent and each is a short statement.
type LogPruner struct {
	Store interface {
		DeleteInterceptsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	}
	Settings func() settings.Settings
	Now      func() time.Time
	Log      *slog.Logger
	// Deleted, when set, sees how many rows each batch deleted (metrics).
	Deleted func(n int64)
}

// RunOnce deletes what is due and returns how many rows went.
func (p *LogPruner) RunOnce(ctx context.Context) (int64, error) {
	days := p.Settings().LogRetentionDays
	if days == 0 {
		return 0, nil
	}
	cutoff := p.Now().Add(-time.Duration(days) * 24 * time.Hour)
	var total int64
	for {
		n, err := p.Store.DeleteInterceptsBefore(ctx, cutoff, pruneBatch)
		if err != nil {
			return total, err
		}
		total += n
		if p.Deleted != nil && n > 0 {
			p.Deleted(n)
		}
		if n < pruneBatch {
			if total > 0 {
				p.Log.Info("old intercept logs deleted", "rows", total, "retention_days", days)
			}
			return total, nil
		}
	}
}
