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
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

const bindingColumns = `id, key_hash, key_hint, rule_mode, cidrs, status, origin, first_ip, last_ip,
	created_at, last_used_at, updated_at, note, version, learn_slots, learn_until`

// scanBinding reads bindingColumns. A pre-bound binding's first_ip, last_ip and (until used)
// last_used_at are NULL: zero values in bindings.Binding.
func scanBinding(row pgx.Row) (bindings.Binding, error) {
	var b bindings.Binding
	var mode, status, origin string
	var firstIP, lastIP *netip.Addr
	var lastUsed, learnUntil *time.Time
	err := row.Scan(&b.ID, &b.KeyHash, &b.KeyHint, &mode, &b.CIDRs, &status, &origin, &firstIP, &lastIP,
		&b.CreatedAt, &lastUsed, &b.UpdatedAt, &b.Note, &b.Version, &b.LearnSlots, &learnUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return bindings.Binding{}, bindings.ErrNotFound
	}
	if err != nil {
		return bindings.Binding{}, err
	}
	b.Mode, b.Status, b.Origin = bindings.Mode(mode), bindings.Status(status), bindings.Origin(origin)
	if firstIP != nil {
		b.FirstIP = *firstIP
	}
	if lastIP != nil {
		b.LastIP = *lastIP
	}
	if lastUsed != nil {
		b.LastUsedAt = *lastUsed
	}
	if learnUntil != nil {
		b.LearnUntil = *learnUntil
	}
	return b, nil
}

// nullAddr and nullTime write a zero value as NULL.
func nullAddr(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// BindingByHash returns the binding of a key, or bindings.ErrNotFound. Every decision starts
// here, so a connection PostgreSQL ended (serverEnded: a restart) is not a failed decision:
// the pool has dropped its connections by then (poolResetter), and the read is sent again
// on a new one.
func (s *Store) BindingByHash(ctx context.Context, keyHash string) (bindings.Binding, error) {
	const byHash = `SELECT ` + bindingColumns + ` FROM token_bindings WHERE key_hash = $1`
	b, err := scanBinding(s.pool.QueryRow(ctx, byHash, keyHash))
	if serverEnded(err) {
		b, err = scanBinding(s.pool.QueryRow(ctx, byHash, keyHash))
	}
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
				created_at, last_used_at, updated_at, note, learn_slots, learn_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (key_hash) DO NOTHING
			RETURNING `+bindingColumns,
			b.KeyHash, b.KeyHint, string(b.Mode), b.CIDRs, string(b.Status), nullAddr(b.FirstIP), nullAddr(b.LastIP),
			b.CreatedAt, nullTime(b.LastUsedAt), b.UpdatedAt, b.Note, b.LearnSlots, nullTime(b.LearnUntil)))
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

// LearnAddress adds p to a learning binding. The UPDATE's conditions are evaluated again on
// the newest row version after its row lock is taken, so of concurrent learners only as many
// as there are slots succeed (and the table's check constraint refuses any more).
func (s *Store) LearnAddress(ctx context.Context, keyHash string, p netip.Prefix, ip netip.Addr, now time.Time, a audit.Entry) (bindings.Binding, bool, error) {
	var after bindings.Binding
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		after, err = scanBinding(tx.QueryRow(ctx, `
			UPDATE token_bindings SET cidrs = array_append(cidrs, $2::cidr), last_ip = $3, updated_at = $4,
				version = nextval('binding_version')
			WHERE key_hash = $1 AND rule_mode = 'learning' AND status = 'active' AND learn_until > $4
				AND cardinality(cidrs) < learn_slots AND NOT ($2::cidr = ANY(cidrs))
			RETURNING `+bindingColumns, keyHash, p, ip, now))
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, a)
	})
	if errors.Is(err, bindings.ErrNotFound) {
		// Full, closed, changed or learned meanwhile by a concurrent request: what holds now.
		after, err = s.BindingByHash(ctx, keyHash)
		return after, false, err
	}
	if err != nil {
		return bindings.Binding{}, false, fmt.Errorf("store: learn address: %w", err)
	}
	return after, true, nil
}

// RehashLegacy moves a binding from the hash of a key as spelled to the hash of its canonical
// form (bindings made before the plugin hashed canonical keys). When the canonical hash is
// bound already (a concurrent first use, or the move ran before), nothing moves.
func (s *Store) RehashLegacy(ctx context.Context, legacyHash, keyHash string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE token_bindings SET key_hash = $2, version = nextval('binding_version'), updated_at = now()
		WHERE key_hash = $1 AND NOT EXISTS (SELECT 1 FROM token_bindings WHERE key_hash = $2)`,
		legacyHash, keyHash)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return false, nil // a concurrent first use of the canonical hash won
	}
	if err != nil {
		return false, fmt.Errorf("store: rehash legacy binding: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
