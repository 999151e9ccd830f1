// Package store is admind's PostgreSQL storage on pgx. Driver errors are translated here:
// callers see the bindings package's errors, never pgx's.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/migrations"
)

// Store wraps a connection pool.
type Store struct {
	pool *pgxpool.Pool
	// OnInterceptsWritten, when set, sees the intercepts each insert wrote (metrics, alerts).
	OnInterceptsWritten func(ctx context.Context, list []bindings.Intercept)
}

// Options tune the pool; the zero value is pgx's defaults.
type Options struct {
	MaxConns int32
	MinConns int32           // kept open while idle, so a burst does not wait for new connections
	Tracer   pgx.QueryTracer // sees every statement (metrics count failures)
}

// Open connects and checks the connection.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parse DSN: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	cfg.MinConns = o.MinConns
	resetter := &poolResetter{next: o.Tracer}
	cfg.ConnConfig.Tracer = resetter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	resetter.pool.Store(pool)
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: ping: %w", err)
	}
	return &Store{pool: pool}, nil
}

// serverEnded reports whether err is PostgreSQL ending the connection because the server is
// going away or coming back: shut down (57P01, which pg_terminate_backend also sends), crashed
// (57P02), starting or stopping (57P03). Nothing the statement did was committed.
func serverEnded(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "57P01", "57P02", "57P03":
		return true
	}
	return false
}

// poolResetter closes every pooled connection when a statement finds that PostgreSQL ended
// its connection (serverEnded): the other connections opened to that server are gone as well,
// and each would otherwise fail one more statement, a decision among them, before the pool
// dropped it (after a restart, up to DB_MAX_CONNS of them). It wraps the metrics tracer.
type poolResetter struct {
	next pgx.QueryTracer // nil: none
	pool atomic.Pointer[pgxpool.Pool]
}

func (r *poolResetter) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if r.next != nil {
		return r.next.TraceQueryStart(ctx, conn, data)
	}
	return ctx
}

func (r *poolResetter) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if r.next != nil {
		r.next.TraceQueryEnd(ctx, conn, data)
	}
	if serverEnded(data.Err) {
		if p := r.pool.Load(); p != nil {
			p.Reset() // safe with connections checked out: they are closed when released
		}
	}
}

// PoolStat is the connection pool's current state (size, use, waits), for /metrics.
func (s *Store) PoolStat() *pgxpool.Stat { return s.pool.Stat() }

// Migrate applies the embedded migrations. Concurrent admind starts are serialised by
// goose's session locker (a PostgreSQL advisory lock).
func (s *Store) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
	defer func() { _ = db.Close() }()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("store: migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// Ping checks PostgreSQL is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }
