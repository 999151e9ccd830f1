package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

// InsertIntercepts writes intercepted requests in one round trip. Each needs its Outcome:
// the column's CHECK refuses "" (only rows from before the column are NULL).
func (s *Store) InsertIntercepts(ctx context.Context, list []bindings.Intercept) error {
	if len(list) == 0 {
		return nil
	}
	rows := make([][]any, len(list))
	for i, ic := range list {
		rows[i] = []any{ic.KeyHash, text(ic.KeyHint), ic.IP, text(ic.Reason), ic.Outcome, text(ic.Method), text(ic.Path), text(ic.UserAgent), ic.At}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"intercept_logs"},
		[]string{"key_hash", "key_hint", "ip", "reason", "outcome", "method", "path", "user_agent", "created_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("store: insert intercepts: %w", err)
	}
	if s.OnInterceptsWritten != nil {
		s.OnInterceptsWritten(ctx, list)
	}
	return nil
}

// DeleteInterceptsBefore deletes up to limit intercept rows older than cutoff, oldest first
// (the created_at index finds them), and returns how many went. Small batches keep each
// statement short, so the deletion never holds up the consumer's inserts.
func (s *Store) DeleteInterceptsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM intercept_logs WHERE id IN (
			SELECT id FROM intercept_logs WHERE created_at < $1 ORDER BY created_at LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("store: delete old intercepts: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RefusedByServer reports whether err is PostgreSQL refusing a statement (so it was up and
// answering), as opposed to being unreachable: the intercept consumer then writes a refused
// batch row by row and drops the rows refused alone.
func RefusedByServer(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// text makes attacker-supplied strings storable: PostgreSQL text holds neither NUL nor
// invalid UTF-8 (a decoded path like /v1/%00 would otherwise fail the whole batch).
func text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
