package bindings_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/cache"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pausingStore is an in-memory store whose BindingByHash can be held, so a test can slip an
// admin change between a decide's read and its cache fill.
type pausingStore struct {
	bindings.AdminStore // pre-binding and export are not used here: calling them panics

	mu      sync.Mutex
	rows    map[string]bindings.Binding
	version int64
	readHit chan struct{} // receives when a held read has happened
	release chan struct{} // the held read returns when closed
}

func (s *pausingStore) next() int64 { s.version++; return s.version }

func (s *pausingStore) BindingByHash(_ context.Context, h string) (bindings.Binding, error) {
	s.mu.Lock()
	b, ok := s.rows[h]
	hold := s.release
	s.mu.Unlock()
	if hold != nil {
		s.readHit <- struct{}{}
		<-hold
	}
	if !ok {
		return b, bindings.ErrNotFound
	}
	return b, nil
}

func (s *pausingStore) BindFirstUse(_ context.Context, b bindings.Binding) (bindings.Binding, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.rows[b.KeyHash]; ok {
		return cur, false, nil
	}
	b.ID, b.Version = 1, s.next()
	s.rows[b.KeyHash] = b
	return b, true, nil
}

func (s *pausingStore) RehashLegacy(_ context.Context, legacy, canonical string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.rows[legacy]
	if _, taken := s.rows[canonical]; !ok || taken {
		return false, nil
	}
	delete(s.rows, legacy)
	b.KeyHash, b.Version = canonical, s.next()
	s.rows[canonical] = b
	return true, nil
}

func (s *pausingStore) LearnAddress(context.Context, string, netip.Prefix, netip.Addr, time.Time, audit.Entry) (bindings.Binding, bool, error) {
	return bindings.Binding{}, false, errors.New("learning is not part of this test")
}

func (s *pausingStore) InsertIntercepts(context.Context, []bindings.Intercept) error { return nil }

func (s *pausingStore) ListBindings(context.Context, bindings.Query) ([]bindings.Binding, int, error) {
	return nil, 0, nil
}

func (s *pausingStore) ChangeBinding(_ context.Context, _ int64, change func(*bindings.Binding) error, _ audit.Entry) (bindings.Binding, bindings.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, b := range s.rows {
		before := b
		if err := change(&b); err != nil {
			return before, b, err
		}
		b.Version = s.next()
		s.rows[h] = b
		return before, b, nil
	}
	return bindings.Binding{}, bindings.Binding{}, bindings.ErrNotFound
}

func (s *pausingStore) DeleteBinding(_ context.Context, _ int64, _ audit.Entry) (bindings.Binding, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, b := range s.rows {
		delete(s.rows, h)
		return b, s.next(), nil
	}
	return bindings.Binding{}, 0, bindings.ErrNotFound
}

// A decide reads the binding, an admin changes it (ban, or unbind), then the decide fills
// Redis: the fill must lose, in both orders of events that matter.
func TestStaleFillLosesToAdminChange(t *testing.T) {
	for _, change := range []string{"ban", "unbind", "set_rule"} {
		t.Run(change, func(t *testing.T) {
			rdb := testenv.Redis(t).Client(t)
			c := cache.New(rdb)
			st := &pausingStore{rows: map[string]bindings.Binding{}}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc := &bindings.Service{Store: st, Cache: c, Claims: c, Log: log, BindPrefixes: func() (int, int) { return 32, 64 },
				RedisEntryTTL: time.Hour, Now: time.Now}
			admin := &bindings.Admin{Store: st, Cache: c, Log: log, RedisEntryTTL: time.Hour, Now: time.Now}
			ctx := context.Background()
			const hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
			ip := netip.MustParseAddr("127.0.0.2")
			bindFirstUse(t, svc, bindings.DecideRequest{KeyHash: hash, IP: ip})

			st.mu.Lock()
			st.readHit, st.release = make(chan struct{}), make(chan struct{})
			st.mu.Unlock()
			done := make(chan error)
			go func() {
				_, err := svc.Decide(ctx, bindings.DecideRequest{KeyHash: hash, IP: ip})
				done <- err
			}()
			<-st.readHit // the decide holds the old binding now
			st.mu.Lock()
			release := st.release
			st.release = nil
			st.mu.Unlock()
			who := audit.Actor{Name: "admin"}
			var err error
			switch change {
			case "ban":
				_, err = admin.Ban(ctx, who, 1)
			case "unbind":
				_, err = admin.Unbind(ctx, who, 1)
			case "set_rule":
				_, err = admin.SetRule(ctx, who, 1, bindings.ModeSingle, []string{"127.0.0.9"}, bindings.LearnRule{})
			}
			if err != nil {
				t.Fatal(err)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			want := ""
			if b, ok := st.rows[hash]; ok {
				want = b.CacheEntry(time.Now())
			}
			if got := rdb.Get(ctx, contract.BindingKey(hash)).Val(); got != want {
				t.Fatalf("redis holds %q after the admin change, want %q", got, want)
			}
		})
	}
}

// TestDecideAdoptsLegacyBinding: a key bound before the canonical key form keeps its owner
// after the upgrade: its first request under the canonical hash, from another address, is
// refused by the old binding (moved to the canonical hash), not bound afresh.
func TestDecideAdoptsLegacyBinding(t *testing.T) {
	c := cache.New(testenv.Redis(t).Client(t))
	st := &pausingStore{rows: map[string]bindings.Binding{}}
	svc := &bindings.Service{Store: st, Cache: c, Claims: c, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BindPrefixes: func() (int, int) { return 32, 64 }, RedisEntryTTL: time.Hour, Now: time.Now}
	ctx := context.Background()
	const legacy = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	const canonical = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
	owner, other := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	bindFirstUse(t, svc, bindings.DecideRequest{KeyHash: legacy, IP: owner})
	d, err := svc.Decide(ctx, bindings.DecideRequest{KeyHash: canonical, LegacyKeyHash: legacy, IP: other})
	if err != nil || d.Allow || d.Created {
		t.Fatalf("other address after the upgrade: %+v, %v", d, err)
	}
	d, err = svc.Decide(ctx, bindings.DecideRequest{KeyHash: canonical, IP: owner})
	if err != nil || !d.Allow || d.Created {
		t.Fatalf("owner after the upgrade: %+v, %v", d, err)
	}
	if _, ok := st.rows[legacy]; ok {
		t.Fatal("the legacy row stayed")
	}
}

// bindFirstUse is a first use New API served: the claim decide answers, then its confirmation.
func bindFirstUse(t *testing.T, svc *bindings.Service, r bindings.DecideRequest) bindings.Decision {
	t.Helper()
	ctx := context.Background()
	d, err := svc.Decide(ctx, r)
	if err != nil || !d.Allow || !d.Provisional {
		t.Fatalf("first use of %s: %+v, %v", r.KeyHash, d, err)
	}
	d, err = svc.Confirm(ctx, bindings.ConfirmRequest{KeyHash: r.KeyHash, KeyHint: r.KeyHint, ClaimID: d.ClaimID, IP: r.IP})
	if err != nil || !d.Created {
		t.Fatalf("confirming the first use of %s: %+v, %v", r.KeyHash, d, err)
	}
	return d
}

// The key-scan block is read before the claim's key is counted: even a detector that blocks
// the source the moment it counts (the fastest it could) leaves the key that crossed the
// threshold decided as before, and refuses the next claim.
func TestKeyThatCrossesTheScanThresholdIsNotItselfBlocked(t *testing.T) {
	c := cache.New(testenv.Redis(t).Client(t))
	var mu sync.Mutex
	presented := map[string]bool{}
	blocked := false
	svc := &bindings.Service{Store: &pausingStore{rows: map[string]bindings.Binding{}}, Cache: c, Claims: c,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BindPrefixes: func() (int, int) { return 32, 64 },
		RedisEntryTTL: time.Hour, Now: time.Now,
		KeyPresented: func(_ netip.Addr, h string) {
			mu.Lock()
			defer mu.Unlock()
			presented[h] = true
			blocked = blocked || len(presented) >= 2
		},
		ClaimBlocked: func(context.Context, netip.Addr) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			if blocked {
				return 30 * time.Second
			}
			return 0
		}}
	ip := netip.MustParseAddr("127.0.0.9")
	for i, h := range []string{strings.Repeat("a", 64), strings.Repeat("b", 64)} {
		if d, err := svc.Decide(context.Background(), bindings.DecideRequest{KeyHash: h, IP: ip}); err != nil || !d.Allow || !d.Provisional {
			t.Fatalf("claim %d (the second crosses the threshold): %+v, %v", i+1, d, err)
		}
	}
	d, err := svc.Decide(context.Background(), bindings.DecideRequest{KeyHash: strings.Repeat("c", 64), IP: ip})
	if err != nil || d.Allow || d.Reason != contract.ReasonClaimLimited || d.RetryAfter != 30*time.Second {
		t.Fatalf("the claim after the threshold: %+v, %v", d, err)
	}
}
