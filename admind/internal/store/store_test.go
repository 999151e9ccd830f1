package store

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openTestStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, testenv.PG(t), Options{MaxConns: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrations are not idempotent: %v", err)
	}
	return s
}

// TestRuleMatchingAgreesWithPostgres checks bindings.Binding.Allows (netip, the one admind
// and the plugin use) against PostgreSQL's own `inet <<= ANY(cidr[])` on stored rows.
func TestRuleMatchingAgreesWithPostgres(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	rules := [][]string{
		{"203.0.113.7/32"},
		{"192.168.1.0/24"},
		{"10.0.0.0/8", "2001:db8::/64"},
		{"2001:db8:1:2::/64"},
		{"0.0.0.0/0"},
	}
	ips := []string{"203.0.113.7", "203.0.113.8", "192.168.1.0", "192.168.1.255", "192.168.2.0", "192.168.0.255",
		"10.255.255.255", "11.0.0.0", "2001:db8::1", "2001:db8:0:1::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "::1", "127.0.0.1"}
	now := time.Now()
	for i, r := range rules {
		b := bindings.Binding{KeyHash: hashN(i), Mode: bindings.ModeMultiple, Status: bindings.StatusActive,
			FirstIP: netip.MustParseAddr("127.0.0.1"), LastIP: netip.MustParseAddr("127.0.0.1"), CreatedAt: now, LastUsedAt: now, UpdatedAt: now}
		for _, c := range r {
			b.CIDRs = append(b.CIDRs, netip.MustParsePrefix(c))
		}
		stored, created, err := s.BindFirstUse(ctx, b)
		if err != nil || !created {
			t.Fatalf("insert %v: %v %v", r, created, err)
		}
		for _, ip := range ips {
			var inPG bool
			if err := s.pool.QueryRow(ctx, `SELECT $1::inet <<= ANY(cidrs) FROM token_bindings WHERE id = $2`, ip, stored.ID).Scan(&inPG); err != nil {
				t.Fatal(err)
			}
			if got := stored.Allows(netip.MustParseAddr(ip)); got != inPG {
				t.Errorf("rule %v, ip %s: netip says %v, PostgreSQL says %v", r, ip, got, inPG)
			}
		}
	}
}

func TestBindFirstUseKeepsTheWinner(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	now := time.Now()
	mk := func(ip string) bindings.Binding {
		a := netip.MustParseAddr(ip)
		return bindings.Binding{KeyHash: hashN(99), Mode: bindings.ModeSingle, Status: bindings.StatusActive,
			CIDRs: []netip.Prefix{netip.PrefixFrom(a, 32)}, FirstIP: a, LastIP: a, CreatedAt: now, LastUsedAt: now, UpdatedAt: now}
	}
	first, created, err := s.BindFirstUse(ctx, mk("127.0.0.2"))
	if err != nil || !created {
		t.Fatal(created, err)
	}
	second, created, err := s.BindFirstUse(ctx, mk("127.0.0.3"))
	if err != nil || created || second.ID != first.ID || second.FirstIP != first.FirstIP {
		t.Fatalf("second insert: %+v created=%v err=%v", second, created, err)
	}
	if _, err := s.BindingByHash(ctx, hashN(7)); err != bindings.ErrNotFound {
		t.Fatalf("missing binding: %v", err)
	}
}

func TestInterceptTextIsStorable(t *testing.T) {
	s := openTestStore(t)
	err := s.InsertIntercepts(context.Background(), []bindings.Intercept{{
		KeyHash: hashN(1), IP: netip.MustParseAddr("127.0.0.9"), Reason: contract.ReasonIPNotAllowed, Outcome: bindings.OutcomeRefused,
		Path: "/v1/\x00bad\xff", UserAgent: "x\r\nFAKE", At: time.Now(),
	}})
	if err != nil {
		t.Fatalf("NUL or invalid UTF-8 broke the insert: %v", err)
	}
}

func hashN(n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 64)
	for i := range b {
		b[i] = hex[(n+i)%16]
	}
	return string(b)
}

// TestRehashLegacy: a binding under the hash of a key as spelled moves to the canonical hash
// once, keeping its rule; an existing canonical binding is never overwritten.
func TestRehashLegacy(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	now := time.Now()
	owner := netip.MustParseAddr("203.0.113.7")
	legacy, canonical := hashN(100), hashN(101)
	old, _, err := s.BindFirstUse(ctx, bindings.Binding{KeyHash: legacy, Mode: bindings.ModeSingle, Status: bindings.StatusActive,
		CIDRs: []netip.Prefix{netip.PrefixFrom(owner, 32)}, FirstIP: owner, LastIP: owner, CreatedAt: now, LastUsedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if moved, err := s.RehashLegacy(ctx, legacy, canonical); err != nil || !moved {
		t.Fatalf("first move: %v %v", moved, err)
	}
	got, err := s.BindingByHash(ctx, canonical)
	if err != nil || got.ID != old.ID || !got.Allows(owner) || got.Version <= old.Version {
		t.Fatalf("moved binding: %+v, %v", got, err)
	}
	if _, err := s.BindingByHash(ctx, legacy); err != bindings.ErrNotFound {
		t.Fatalf("legacy hash still bound: %v", err)
	}
	if moved, err := s.RehashLegacy(ctx, legacy, canonical); err != nil || moved {
		t.Fatalf("second move: %v %v", moved, err)
	}
	// A legacy row while the canonical hash is bound (a first use won): nothing moves.
	other := netip.MustParseAddr("198.51.100.1")
	if _, _, err := s.BindFirstUse(ctx, bindings.Binding{KeyHash: legacy, Mode: bindings.ModeSingle, Status: bindings.StatusActive,
		CIDRs: []netip.Prefix{netip.PrefixFrom(other, 32)}, FirstIP: other, LastIP: other, CreatedAt: now, LastUsedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if moved, err := s.RehashLegacy(ctx, legacy, canonical); err != nil || moved {
		t.Fatalf("move over a bound canonical hash: %v %v", moved, err)
	}
	if got, _ := s.BindingByHash(ctx, canonical); !got.Allows(owner) || got.Allows(other) {
		t.Fatalf("canonical binding changed: %v", got.CIDRs)
	}
}

// After PostgreSQL restarts, the connections pooled before are dead, each holding the
// server's "terminating connection" message. The first read finds one, the pool drops them
// all and the read is sent again: no decision fails, and no later statement meets another
// dead connection (without the reset, each of the 4 would fail one).
func TestPostgresRestartFailsNoStatement(t *testing.T) {
	pg := testenv.OwnPostgres(t)
	ctx := context.Background()
	s, err := Open(ctx, pg.DSN(), Options{MaxConns: 4, MinConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Four connections open and idle in the pool.
	conns := s.pool.AcquireAllIdle(ctx)
	for len(conns) < 4 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BindingByHash(ctx, hashN(1)); err != bindings.ErrNotFound {
		t.Fatalf("the first read after the restart: %v, want ErrNotFound", err)
	}
	for i := range 4 { // any statement, on whichever connection the pool hands out
		var one int
		if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			t.Fatalf("statement %d after the restart: %v", i+1, err)
		}
	}
}
