package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/auth"
)

const apiTokenColumns = `id, name, prefix, scope, created_by, created_at, expires_at, last_used_at, last_used_ip, revoked_at, revoked_by` //nolint:gosec // G101: column names, not a credential

func scanAPIToken(row pgx.Row) (auth.APIToken, error) {
	var t auth.APIToken
	var lastUsed, revoked *time.Time
	var lastIP *netip.Addr
	var revokedBy *string
	err := row.Scan(&t.ID, &t.Name, &t.Prefix, &t.Scope, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &lastUsed, &lastIP, &revoked, &revokedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, auth.ErrTokenNotFound
	}
	if lastUsed != nil {
		t.LastUsedAt = *lastUsed
	}
	if lastIP != nil {
		t.LastUsedIP = *lastIP
	}
	if revoked != nil {
		t.RevokedAt = *revoked
	}
	if revokedBy != nil {
		t.RevokedBy = *revokedBy
	}
	return t, err
}

// CreateAPIToken stores a new token (its hash) with the audit row entry gives.
func (s *Store) CreateAPIToken(ctx context.Context, t auth.APIToken, hash string, entry func(auth.APIToken) audit.Entry) (auth.APIToken, error) {
	var created auth.APIToken
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		created, err = scanAPIToken(tx.QueryRow(ctx, `
			INSERT INTO api_tokens (name, token_hash, prefix, scope, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+apiTokenColumns,
			t.Name, hash, t.Prefix, t.Scope, text(t.CreatedBy), t.CreatedAt, t.ExpiresAt))
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, entry(created))
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "api_tokens_name_key" {
		return auth.APIToken{}, auth.ErrTokenNameTaken
	}
	if err != nil {
		return auth.APIToken{}, fmt.Errorf("store: create API token: %w", err)
	}
	return created, nil
}

// ListAPITokens returns every token, newest first.
func (s *Store) ListAPITokens(ctx context.Context) ([]auth.APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiTokenColumns+` FROM api_tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: list API tokens: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.APIToken, error) { return scanAPIToken(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list API tokens: %w", err)
	}
	return list, nil
}

// RevokeAPIToken revokes a token (again is a no-op that keeps the first revocation) and
// records the audit row.
func (s *Store) RevokeAPIToken(ctx context.Context, id int64, by string, at time.Time, a audit.Entry) (auth.APIToken, error) {
	var t auth.APIToken
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		t, err = scanAPIToken(tx.QueryRow(ctx, `
			UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $2), revoked_by = coalesce(revoked_by, $3)
			WHERE id = $1 RETURNING `+apiTokenColumns, id, at, text(by)))
		if err != nil {
			return err
		}
		a.After = t.AuditView()
		return insertAudit(ctx, tx, a)
	})
	if errors.Is(err, auth.ErrTokenNotFound) {
		return t, err
	}
	if err != nil {
		return t, fmt.Errorf("store: revoke API token: %w", err)
	}
	return t, nil
}

// UseAPIToken finds the active token with hash and records its use, in one statement.
func (s *Store) UseAPIToken(ctx context.Context, hash string, ip netip.Addr, now time.Time) (auth.APIToken, error) {
	t, err := scanAPIToken(s.pool.QueryRow(ctx, `
		UPDATE api_tokens SET last_used_at = $2, last_used_ip = $3
		WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING `+apiTokenColumns, hash, now, nullAddr(ip)))
	if err != nil && !errors.Is(err, auth.ErrTokenNotFound) {
		return t, fmt.Errorf("store: use API token: %w", err)
	}
	return t, err
}
