package bindings

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// Store is the authoritative binding storage (PostgreSQL).
type Store interface {
	LearnStore
	BindingByHash(ctx context.Context, keyHash string) (Binding, error)
	// BindFirstUse inserts b unless a binding for b.KeyHash exists, and returns the binding
	// that holds afterwards and whether b was the one inserted.
	BindFirstUse(ctx context.Context, b Binding) (Binding, bool, error)
	// RehashLegacy moves the binding under legacyHash to keyHash, unless keyHash is bound
	// already; it reports whether it moved one.
	RehashLegacy(ctx context.Context, legacyHash, keyHash string) (bool, error)
	InsertIntercepts(ctx context.Context, list []Intercept) error
}

// Cache is the shared binding cache (Redis) the plugin reads.
type Cache interface {
	// SetBinding stores entry unless the cache has seen a newer version of the key.
	SetBinding(ctx context.Context, keyHash, entry string, version int64, ttl time.Duration) error
}

// DecideRequest is what the plugin sends on a cache miss.
type DecideRequest struct {
	KeyHash string
	// LegacyKeyHash, when set, is where a binding made before the canonical key form is.
	LegacyKeyHash string
	KeyHint       string
	IP            netip.Addr
	Method        string
	Path          string
	UserAgent     string
	// Forwarded: the plugin forwards the request whatever the decision (monitor mode).
	Forwarded bool
}

// Decision is the answer, with the binding the plugin should cache.
type Decision struct {
	Allow   bool
	Reason  string // "" when allowed
	Binding Binding
	Created bool // this request created the binding
	// Provisional: the key is unbound and claimed (claims.go); nothing is to be cached, and
	// when allowed the plugin confirms or releases ClaimID once New API has answered.
	Provisional bool
	ClaimID     string
	// RetryAfter, with contract.ReasonClaimLimited: when the source may claim again.
	RetryAfter time.Duration
}

// Service decides requests and binds keys on first use.
type Service struct {
	Store  Store
	Cache  Cache
	Claims Claims
	Bound  BoundSet // nil: none kept (the plugin then never finds it complete)
	Log    *slog.Logger
	// BindPrefixes gives the IPv4 and IPv6 prefix lengths a first use binds (runtime settings).
	BindPrefixes  func() (v4, v6 int)
	RedisEntryTTL time.Duration // lifetime of a binding entry in Redis
	// FillTimeout bounds the Redis refresh; a slow Redis must not delay the decision.
	FillTimeout time.Duration
	Now         func() time.Time
	// Observe, when set, sees every decision (metrics).
	Observe func(Decision)
	// FirstUseLearning, when set and answering true, makes a first use bind with a learning
	// rule bounded by its answer (runtime setting first_use_rule); otherwise "single".
	FirstUseLearning func(now time.Time) (LearnRule, bool)
	// ClaimTTL bounds a claim's wait for confirmation (DefaultClaimTTL when 0).
	ClaimTTL time.Duration
	// ClaimLimits gives the per-source limit on new claims (runtime settings); nil: none.
	ClaimLimits func() ClaimLimit
	// KeyPresented, when set, hears of every key a claim presents (the key-scan detector; it
	// must not block). ClaimBlocked, when set, says how long the client's source is still
	// refused new claims (the detector's block; 0: not).
	KeyPresented func(ip netip.Addr, keyHash string)
	ClaimBlocked func(ctx context.Context, ip netip.Addr) time.Duration
	// ObserveClaim, when set, sees each claim outcome: claimed, joined (the claimant again),
	// contended (another address), limited (over the source's limit), confirmed (a binding
	// written), released, lost (metrics).
	ObserveClaim func(outcome string)
}

// Decide looks the key up in PostgreSQL; an unbound key is claimed for ip (race-safe: exactly
// one concurrent first use wins; claims.go), a bound one decided, Redis refreshed and a
// denial recorded as an intercept.
func (s *Service) Decide(ctx context.Context, r DecideRequest) (Decision, error) {
	b, err := s.Store.BindingByHash(ctx, r.KeyHash)
	if err == ErrNotFound && r.LegacyKeyHash != "" {
		// Upgrading from hashes of the key as spelled: the key keeps its binding (and its
		// owner), rather than being bound afresh to whoever uses it first after the upgrade.
		var moved bool
		if moved, err = s.Store.RehashLegacy(ctx, r.LegacyKeyHash, r.KeyHash); err == nil {
			b, err = s.Store.BindingByHash(ctx, r.KeyHash)
			if moved {
				// Added after the move, not before: almost every first use sends a legacy hash
				// and finds nothing to move. The legacy member stays until the next rebuild, so
				// the spelling that moved it keeps finding it meanwhile.
				addBound(ctx, s.Bound, s.Log, r.KeyHash)()
				s.Log.Info("binding moved to the canonical key hash", "key_hint", r.KeyHint)
			}
		}
	}
	if err == ErrNotFound {
		d, err := s.claim(ctx, r)
		if err == nil && s.Observe != nil {
			s.Observe(d)
		}
		return d, err
	}
	if err != nil {
		return Decision{}, fmt.Errorf("decide: %w", err)
	}
	if b.Status == StatusActive && !b.Allows(r.IP) && b.Learning(s.Now()) {
		if b, err = s.learn(ctx, b, r.IP); err != nil {
			return Decision{}, err
		}
	}
	d := Decision{Allow: true, Binding: b}
	switch {
	case b.Status == StatusBanned:
		d.Allow, d.Reason = false, contract.ReasonKeyBanned
	case !b.Allows(r.IP):
		d.Allow, d.Reason = false, contract.ReasonIPNotAllowed
	}
	if err := s.fill(ctx, b); err != nil {
		// Not fatal: the plugin asks again on its next miss and PostgreSQL stays the truth.
		s.Log.Warn("binding cache fill failed", "key_hint", b.KeyHint, "err", err)
	}
	if !d.Allow {
		err := s.Store.InsertIntercepts(ctx, []Intercept{{
			KeyHash: r.KeyHash, KeyHint: r.KeyHint, IP: r.IP, Reason: d.Reason, Outcome: OutcomeOf(r.Forwarded),
			Method: r.Method, Path: r.Path, UserAgent: r.UserAgent, At: s.Now(),
		}})
		if err != nil {
			return Decision{}, fmt.Errorf("decide: record intercept: %w", err)
		}
	}
	if s.Observe != nil {
		s.Observe(d)
	}
	return d, nil
}

func (s *Service) fill(ctx context.Context, b Binding) error {
	if s.FillTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.FillTimeout)
		defer cancel()
	}
	return s.Cache.SetBinding(ctx, b.KeyHash, b.CacheEntry(s.Now()), b.Version, s.RedisEntryTTL)
}
