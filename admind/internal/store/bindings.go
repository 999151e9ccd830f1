package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

const bindingColumns = `id, key_hash, key_hint, rule_mode, cidrs, status, first_ip, last_ip,
	created_at, last_used_at, updated_at, note, version`

func scanBinding(row pgx.Row) (bindings.Binding, error) {
	var b bindings.Binding
	var mode, status string
	err := row.Scan(&b.ID, &b.KeyHash, &b.KeyHint, &mode, &b.CIDRs, &status, &b.FirstIP, &b.LastIP,
		&b.CreatedAt, &b.LastUsedAt, &b.UpdatedAt, &b.Note, &b.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return bindings.Binding{}, bindings.ErrNotFound
	}
	if err != nil {
		return bindings.Binding{}, err
	}
	b.Mode, b.Status = bindings.Mode(mode), bindings.Status(status)
	return b, nil
}

// BindingByHash returns the binding of a key, or bindings.ErrNotFound.
func (s *Store) BindingByHash(ctx context.Context, keyHash string) (bindings.Binding, error) {
	b, err := scanBinding(s.pool.QueryRow(ctx,
		`SELECT `+bindingColumns+` FROM token_bindings WHERE key_hash = $1`, keyHash))
	if err != nil && !errors.Is(err, bindings.ErrNotFound) {
		return b, fmt.Errorf("store: binding by hash: %w", err)
	}
	return b, err
}

// BindFirstUse inserts b unless the key is bound already. ON CONFLICT DO NOTHING returns no
// row when another transaction won; that winner is then read by a separate statement (the
// INSERT's snapshot may not see a row committed concurrently). If the winner vanished in
// between (unbound by an admin), the insert is tried again.
func (s *Store) BindFirstUse(ctx context.Context, b bindings.Binding) (bindings.Binding, bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		got, err := scanBinding(s.pool.QueryRow(ctx, `
			INSERT INTO token_bindings (key_hash, key_hint, rule_mode, cidrs, status, first_ip, last_ip,
				created_at, last_used_at, updated_at, note)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (key_hash) DO NOTHING
			RETURNING `+bindingColumns,
			b.KeyHash, b.KeyHint, string(b.Mode), b.CIDRs, string(b.Status), b.FirstIP, b.LastIP,
			b.CreatedAt, b.LastUsedAt, b.UpdatedAt, b.Note))
		if err == nil {
			return got, true, nil
		}
		if !errors.Is(err, bindings.ErrNotFound) {
			return bindings.Binding{}, false, fmt.Errorf("store: bind first use: %w", err)
		}
		winner, err := s.BindingByHash(ctx, b.KeyHash)
		if err == nil {
			return winner, false, nil
		}
		if !errors.Is(err, bindings.ErrNotFound) {
			return bindings.Binding{}, false, err
		}
	}
	return bindings.Binding{}, false, errors.New("store: bind first use: binding kept vanishing")
}
