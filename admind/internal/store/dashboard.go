package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// Totals are the binding counts on the dashboard.
type Totals struct {
	Active, Banned, Archived int64
}

// DayCount is one day of a series (UTC day start).
type DayCount struct {
	Day   time.Time
	Count int64
	// Forwarded is how many of Count the plugin forwarded in monitor mode.
	Forwarded int64
}

// KeyCount is a key (by hash, with its display hint) and how often it was intercepted.
type KeyCount struct {
	KeyHash, KeyHint string
	Count            int64
	// Forwarded is how many of Count the plugin forwarded in monitor mode.
	Forwarded int64
}

// IPCount is an address and how often it was intercepted.
type IPCount struct {
	IP    netip.Addr
	Count int64
	// Forwarded is how many of Count the plugin forwarded in monitor mode.
	Forwarded int64
}

// BindingTotals counts active, banned and archived bindings.
func (s *Store) BindingTotals(ctx context.Context) (Totals, error) {
	var t Totals
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'banned'),
			(SELECT count(*) FROM archived_bindings)
		FROM token_bindings`).Scan(&t.Active, &t.Banned, &t.Archived)
	if err != nil {
		return t, fmt.Errorf("store: binding totals: %w", err)
	}
	return t, nil
}

// InterceptsPerDay counts intercepts, and those forwarded in monitor mode, per UTC day since
// the start of since's day.
func (s *Store) InterceptsPerDay(ctx context.Context, since time.Time) ([]DayCount, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, count(*), count(*) FILTER (WHERE outcome = 'forwarded')
		FROM intercept_logs WHERE created_at >= $1 GROUP BY day ORDER BY day`, since)
	if err != nil {
		return nil, fmt.Errorf("store: intercepts per day: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DayCount, error) {
		var d DayCount
		err := r.Scan(&d.Day, &d.Count, &d.Forwarded)
		d.Day = time.Date(d.Day.Year(), d.Day.Month(), d.Day.Day(), 0, 0, 0, 0, time.UTC)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: intercepts per day: %w", err)
	}
	return out, nil
}

// TopInterceptedKeys returns the keys intercepted most often since the given time. The order
// counts forwarded (monitor mode) intercepts too: each is a use that enforce mode would refuse.
func (s *Store) TopInterceptedKeys(ctx context.Context, since time.Time, limit int) ([]KeyCount, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT key_hash, max(key_hint), count(*) AS n, count(*) FILTER (WHERE outcome = 'forwarded')
		FROM intercept_logs WHERE created_at >= $1
		GROUP BY key_hash ORDER BY n DESC, key_hash LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("store: top keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyCount, error) {
		var k KeyCount
		return k, r.Scan(&k.KeyHash, &k.KeyHint, &k.Count, &k.Forwarded)
	})
	if err != nil {
		return nil, fmt.Errorf("store: top keys: %w", err)
	}
	return out, nil
}

// TopInterceptedIPs returns the addresses intercepted most often since the given time, ordered
// as TopInterceptedKeys.
func (s *Store) TopInterceptedIPs(ctx context.Context, since time.Time, limit int) ([]IPCount, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT ip, count(*) AS n, count(*) FILTER (WHERE outcome = 'forwarded')
		FROM intercept_logs WHERE created_at >= $1
		GROUP BY ip ORDER BY n DESC, ip LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("store: top ips: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IPCount, error) {
		var c IPCount
		return c, r.Scan(&c.IP, &c.Count, &c.Forwarded)
	})
	if err != nil {
		return nil, fmt.Errorf("store: top ips: %w", err)
	}
	return out, nil
}
