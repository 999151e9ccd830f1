package archive_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/archive"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/cache"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/admind/internal/lastuse"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/store"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	db      *store.Store
	dsn     string
	rdb     *redis.Client
	svc     *bindings.Service
	syncer  *lastuse.Syncer
	arch    *archive.Archiver
	now     time.Time
	created map[string]bindings.Binding
}

func hashOf(name string) string {
	h := []byte(name)
	out := make([]byte, 64)
	for i := range out {
		out[i] = "0123456789abcdef"[(int(h[i%len(h)])+i)%16]
	}
	return string(out)
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.PG(t)
	db, err := store.Open(ctx, dsn, store.Options{MaxConns: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rdb := testenv.Redis(t).Client(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := cache.New(rdb)
	e := &env{db: db, dsn: dsn, rdb: rdb, now: time.Now(), created: map[string]bindings.Binding{}}
	e.svc = &bindings.Service{Store: db, Cache: c, Claims: c, Log: log, BindPrefixes: func() (int, int) { return 32, 64 }, RedisEntryTTL: time.Hour, Now: time.Now}
	admin := &bindings.Admin{Store: db, Cache: c, Log: log, RedisEntryTTL: time.Hour, Now: time.Now}
	e.syncer = &lastuse.Syncer{Redis: rdb, Store: db, Name: "test"}
	e.arch = &archive.Archiver{Store: db, SyncLastUse: e.syncer.Sync, DropCached: admin.DropCached,
		Settings: func() settings.Settings { return settings.Settings{ArchiveDays: 30} }, Now: func() time.Time { return e.now }, Log: log}
	return e
}

func (e *env) conn(t *testing.T) *pgx.Conn {
	c, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// bindFirstUse is a first use New API served: decide's claim, then its confirmation.
func (e *env) bindFirstUse(t *testing.T, r bindings.DecideRequest) bindings.Decision {
	t.Helper()
	ctx := context.Background()
	d, err := e.svc.Decide(ctx, r)
	if err != nil || !d.Allow || !d.Provisional {
		t.Fatalf("first use: %+v %v", d, err)
	}
	d, err = e.svc.Confirm(ctx, bindings.ConfirmRequest{KeyHash: r.KeyHash, KeyHint: r.KeyHint, ClaimID: d.ClaimID, IP: r.IP})
	if err != nil || !d.Allow || !d.Created {
		t.Fatalf("confirm: %+v %v", d, err)
	}
	return d
}

// bind creates a binding through the decide path and backdates its last use.
func (e *env) bind(t *testing.T, conn *pgx.Conn, name, ip string, idle time.Duration) string {
	t.Helper()
	h := hashOf(name)
	e.bindFirstUse(t, bindings.DecideRequest{KeyHash: h, KeyHint: "sk-" + name, IP: netip.MustParseAddr(ip)})
	if _, err := conn.Exec(context.Background(), `UPDATE token_bindings SET last_used_at = $2 WHERE key_hash = $1`, h, e.now.Add(-idle)); err != nil {
		t.Fatal(err)
	}
	return h
}

func exists(t *testing.T, conn *pgx.Conn, table, h string) bool {
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE key_hash = $1`, h).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// class D, docs/testing.md (archive): idle bindings move to archived_bindings and leave Redis; banned
// and recently used ones stay, including a key whose use is still waiting in Redis; the
// archived key binds again on its next use.
func TestArchive(t *testing.T) {
	e := setup(t)
	conn := e.conn(t)
	ctx := context.Background()
	idle := e.bind(t, conn, "idle", "127.0.0.2", 40*24*time.Hour)
	banned := e.bind(t, conn, "banned", "127.0.0.3", 40*24*time.Hour)
	if _, err := conn.Exec(ctx, `UPDATE token_bindings SET status = 'banned' WHERE key_hash = $1`, banned); err != nil {
		t.Fatal(err)
	}
	recent := e.bind(t, conn, "recent", "127.0.0.4", 2*24*time.Hour)
	inUse := e.bind(t, conn, "inuse", "127.0.0.5", 40*24*time.Hour)
	// The plugin saw inUse a moment ago; admind has not synced it yet.
	e.rdb.HSet(ctx, contract.LastUseKey, inUse, strconv.FormatInt(e.now.UnixMilli(), 10))
	// Pre-bound 40 days ago: one never used (kept: archiving would hand the key to its next
	// user), one used then (archived like any idle binding).
	preNever, preUsed := hashOf("prebound-never"), hashOf("prebound-used")
	for h, used := range map[string]any{preNever: nil, preUsed: e.now.Add(-40 * 24 * time.Hour)} {
		if _, err := conn.Exec(ctx, `INSERT INTO token_bindings (key_hash, rule_mode, cidrs, origin, created_at, updated_at, last_used_at)
			VALUES ($1, 'single', '{127.0.0.6/32}', 'admin', $2, $2, $3)`, h, e.now.Add(-40*24*time.Hour), used); err != nil {
			t.Fatal(err)
		}
	}

	moved, ran, err := e.arch.RunOnce(ctx)
	if err != nil || !ran || moved != 2 {
		t.Fatalf("archive run: moved %d ran %v err %v", moved, ran, err)
	}
	for name, h := range map[string]string{"idle": idle, "pre-bound and used": preUsed} {
		if exists(t, conn, "token_bindings", h) || !exists(t, conn, "archived_bindings", h) {
			t.Fatalf("%s binding not archived", name)
		}
	}
	for name, h := range map[string]string{"banned": banned, "recent": recent, "in use": inUse, "pre-bound, never used": preNever} {
		if !exists(t, conn, "token_bindings", h) || exists(t, conn, "archived_bindings", h) {
			t.Errorf("%s binding was archived", name)
		}
	}
	if n := e.rdb.Exists(ctx, contract.BindingKey(idle)).Val(); n != 0 {
		t.Fatal("archived binding still in Redis")
	}
	if n := e.rdb.Exists(ctx, contract.BindingKey(recent)).Val(); n != 1 {
		t.Fatal("a kept binding left Redis")
	}
	// The archived key binds again, to whoever uses it next.
	if d := e.bindFirstUse(t, bindings.DecideRequest{KeyHash: idle, IP: netip.MustParseAddr("127.0.0.9")}); d.Binding.CIDRs[0].String() != "127.0.0.9/32" {
		t.Fatalf("rebind after archive: %+v", d)
	}
}

// One replica at a time: while another holds the archive lock, a run does nothing.
func TestArchiveLock(t *testing.T) {
	e := setup(t)
	conn := e.conn(t)
	ctx := context.Background()
	idle := e.bind(t, conn, "idle", "127.0.0.2", 40*24*time.Hour)
	tx, err := e.conn(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, 0x5e47_a7c1); err != nil {
		t.Fatal(err)
	}
	moved, ran, err := e.arch.RunOnce(ctx)
	if err != nil || ran || moved != 0 || !exists(t, conn, "token_bindings", idle) {
		t.Fatalf("archived while another replica held the lock: moved %d ran %v err %v", moved, ran, err)
	}
	_ = tx.Rollback(ctx)
	if moved, ran, err := e.arch.RunOnce(ctx); err != nil || !ran || moved != 1 {
		t.Fatalf("after the lock was released: moved %d ran %v err %v", moved, ran, err)
	}
}

// Last use reported by the plugin reaches PostgreSQL, never moves backwards, and a batch
// that could not be written is applied on the next run.
func TestLastUseSync(t *testing.T) {
	e := setup(t)
	conn := e.conn(t)
	ctx := context.Background()
	a := e.bind(t, conn, "a", "127.0.0.2", 10*24*time.Hour)
	b := e.bind(t, conn, "b", "127.0.0.3", 0)
	seen := e.now.Add(-time.Minute).Truncate(time.Millisecond)
	e.rdb.HSet(ctx, contract.LastUseKey, a, strconv.FormatInt(seen.UnixMilli(), 10), b, strconv.FormatInt(seen.Add(-48*time.Hour).UnixMilli(), 10), "junk", "x")
	if n, err := e.syncer.Sync(ctx); err != nil || n != 2 {
		t.Fatalf("sync: %d %v", n, err)
	}
	var gotA, gotB time.Time
	_ = conn.QueryRow(ctx, `SELECT last_used_at FROM token_bindings WHERE key_hash = $1`, a).Scan(&gotA)
	_ = conn.QueryRow(ctx, `SELECT last_used_at FROM token_bindings WHERE key_hash = $1`, b).Scan(&gotB)
	if !gotA.Equal(seen) || gotB.Before(e.now.Add(-time.Second)) {
		t.Fatalf("last use: a %v (want %v), b %v went backwards", gotA, seen, gotB)
	}
	if n := e.rdb.Exists(ctx, contract.LastUseKey, contract.LastUseKey+":syncing:test").Val(); n != 0 {
		t.Fatal("sync left keys behind")
	}
	// PostgreSQL refuses the batch (the pool is closed): it stays for the next run.
	e.rdb.HSet(ctx, contract.LastUseKey, a, strconv.FormatInt(e.now.UnixMilli(), 10))
	broken := &lastuse.Syncer{Redis: e.rdb, Store: failingStore{}, Name: "test"}
	if _, err := broken.Sync(ctx); err == nil {
		t.Fatal("a failed write reported success")
	}
	if n, err := e.syncer.Sync(ctx); err != nil || n != 1 {
		t.Fatalf("retry after failure: %d %v", n, err)
	}
}

type failingStore struct{}

func (failingStore) TouchBindings(context.Context, map[string]time.Time) error {
	return context.DeadlineExceeded
}
