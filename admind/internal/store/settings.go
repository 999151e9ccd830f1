package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
)

// LoadSettings returns the saved runtime settings (JSON), or nil when none were saved yet.
func (s *Store) LoadSettings(ctx context.Context) ([]byte, error) {
	var js []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM runtime_settings WHERE id = 1`).Scan(&js)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: load settings: %w", err)
	}
	return js, nil
}

// SaveSettings stores the runtime settings and the audit entry in one transaction.
func (s *Store) SaveSettings(ctx context.Context, js []byte, a audit.Entry) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO runtime_settings (id, value, updated_by, updated_at) VALUES (1, $1, $2, now())
			ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()`,
			js, text(a.Actor.Name))
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, a)
	})
	if err != nil {
		return fmt.Errorf("store: save settings: %w", err)
	}
	return nil
}
