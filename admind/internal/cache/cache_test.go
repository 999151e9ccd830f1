package cache

import (
	"context"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// A decide that read the binding before an admin change must not put the old rule back:
// writes carry the binding's version and Redis refuses older ones, also after an unbind.
func TestBindingWritesAreOrderedByVersion(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	c := New(rdb)
	ctx := context.Background()
	get := func() string { return rdb.Get(ctx, contract.BindingKey(hash)).Val() }

	steps := []struct {
		desc string
		do   func() error
		want string
	}{
		{"first fill (v5)", func() error { return c.SetBinding(ctx, hash, "v1|active|single|127.0.0.2/32", 5, time.Hour) }, "v1|active|single|127.0.0.2/32"},
		{"admin bans (v7)", func() error { return c.ChangeBinding(ctx, hash, "v1|banned|single|127.0.0.2/32", 7, time.Hour) }, "v1|banned|single|127.0.0.2/32"},
		{"stale fill (v5) refused", func() error { return c.SetBinding(ctx, hash, "v1|active|single|127.0.0.2/32", 5, time.Hour) }, "v1|banned|single|127.0.0.2/32"},
		{"same version refill", func() error { return c.SetBinding(ctx, hash, "v1|banned|single|127.0.0.2/32", 7, time.Hour) }, "v1|banned|single|127.0.0.2/32"},
		{"unbind (v8)", func() error { return c.DropBinding(ctx, hash, 8, time.Hour) }, ""},
		{"stale fill (v7) after unbind refused", func() error { return c.SetBinding(ctx, hash, "v1|banned|single|127.0.0.2/32", 7, time.Hour) }, ""},
		{"rebind (v9)", func() error { return c.SetBinding(ctx, hash, "v1|active|single|127.0.0.3/32", 9, time.Hour) }, "v1|active|single|127.0.0.3/32"},
		{"late unbind retry (v8) refused", func() error { return c.DropBinding(ctx, hash, 8, time.Hour) }, "v1|active|single|127.0.0.3/32"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.desc, err)
		}
		if got := get(); got != s.want {
			t.Fatalf("%s: entry %q, want %q", s.desc, got, s.want)
		}
	}
	// The generation moved with the ban (v7) and the unbind (v8) only: fills and refused
	// writes leave it.
	if gen := rdb.Get(ctx, contract.GenerationKey).Val(); gen != "8" {
		t.Errorf("generation %q, want 8", gen)
	}
	for _, k := range rdb.Keys(ctx, "sentinel:*").Val() {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("%s has no TTL", k)
		}
	}
}

func TestAllowedCounts(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	rdb.Set(ctx, contract.AllowedCounterKey("2026-11-28"), "42", time.Hour)
	got, err := New(rdb).AllowedCounts(ctx, []string{"2026-11-27", "2026-11-28"})
	if err != nil || got[0] != 0 || got[1] != 42 {
		t.Fatalf("got %v, %v", got, err)
	}
}
