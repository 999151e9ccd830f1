package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

const interceptColumns = `id, key_hash, key_hint, ip, reason, coalesce(outcome, ''), method, path, user_agent, created_at`

func logWhere(q bindings.LogQuery) where {
	var w where
	if q.KeyHash != "" {
		w.add(`key_hash = $?`, q.KeyHash)
	}
	if q.IP.IsValid() {
		w.add(`ip <<= $?::inet`, q.IP)
	}
	if !q.From.IsZero() {
		w.add(`created_at >= $?`, q.From)
	}
	if !q.To.IsZero() {
		w.add(`created_at < $?`, q.To)
	}
	if q.Reason != "" {
		w.add(`reason = $?`, q.Reason)
	}
	if q.Outcome != "" {
		w.add(`outcome = $?`, q.Outcome)
	}
	return w
}

func scanIntercept(row pgx.Row) (bindings.Intercept, error) {
	var ic bindings.Intercept
	err := row.Scan(&ic.ID, &ic.KeyHash, &ic.KeyHint, &ic.IP, &ic.Reason, &ic.Outcome, &ic.Method, &ic.Path, &ic.UserAgent, &ic.At)
	return ic, err
}

// ListIntercepts returns one page of intercept rows, newest first, and the total that match.
func (s *Store) ListIntercepts(ctx context.Context, q bindings.LogQuery) ([]bindings.Intercept, int, error) {
	w := logWhere(q)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM intercept_logs`+w.sql(), w.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count intercepts: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+interceptColumns+` FROM intercept_logs`+w.sql()+
		` ORDER BY created_at DESC, id DESC LIMIT `+strconv.Itoa(q.PageSize)+` OFFSET `+strconv.Itoa((q.Page-1)*q.PageSize), w.args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list intercepts: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bindings.Intercept, error) { return scanIntercept(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("store: list intercepts: %w", err)
	}
	return list, total, nil
}

// EachIntercept streams every matching row, newest first, to fn without holding them in
// memory: pgx reads rows off the connection as fn consumes them.
func (s *Store) EachIntercept(ctx context.Context, q bindings.LogQuery, fn func(bindings.Intercept) error) error {
	w := logWhere(q)
	return eachRow(ctx, s, "export intercepts", `SELECT `+interceptColumns+` FROM intercept_logs`+w.sql()+` ORDER BY created_at DESC, id DESC`, w.args,
		scanIntercept, fn)
}

// eachRow runs query and hands each row, scanned, to fn as pgx reads it off the connection
// (exports: memory stays flat whatever the count). what names the work in errors.
func eachRow[T any](ctx context.Context, s *Store, what, query string, args []any, scan func(pgx.Row) (T, error), fn func(T) error) error {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}
