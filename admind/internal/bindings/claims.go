package bindings

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// A first use is a claim before it is a binding. Decide holds the unbound key for the
// client's bind prefix in Redis (SET NX: exactly one concurrent first use wins) and answers
// "allowed, provisional"; the plugin forwards the request and reports New API's answer:
// a success confirms the claim (the binding row is written then), anything else releases it.
// So a string New API does not accept leaves no binding row, no intercept row and no alert,
// and its claim is gone as soon as New API has answered (at the latest after ClaimTTL).

// Claim is a provisional first use of a key.
type Claim struct {
	ID     string       // random, 32 hex characters; the plugin quotes it to confirm
	Prefix netip.Prefix // the claimant's bind prefix: only it may use the key meanwhile
}

// Claims holds claims (Redis: cache.Cache).
type Claims interface {
	// ClaimWithin holds keyHash for c unless a claim is held or c's source is at its limit
	// (which then claims nothing), atomically, and counts a won claim against its source.
	ClaimWithin(ctx context.Context, keyHash string, c Claim, ttl time.Duration, l SourceLimit) (ClaimOutcome, error)
	HeldClaim(ctx context.Context, keyHash string) (Claim, bool, error)
	ReleaseClaim(ctx context.Context, keyHash, id string) error
	// ExpireClaim leaves the claim, if id holds it, ttl more to live.
	ExpireClaim(ctx context.Context, keyHash, id string, ttl time.Duration) error
}

// SourceLimit is the claim limit as it applies to one source; Limit 0: none.
type SourceLimit struct {
	Source netip.Prefix
	Limit  int
	Window time.Duration
}

// ClaimOutcome is what ClaimWithin found: the source at its limit (with the time left in its
// window), or the claim that holds the key after, and whether it is the one asked for.
type ClaimOutcome struct {
	Held       Claim
	Won        bool
	Limited    bool
	RetryAfter time.Duration
}

// ClaimLimit is how many new claims one source may make per window; Limit 0: no limit. A
// source is the client address widened to PrefixV4 / PrefixV6 (one /64 holds one IPv6 host's
// addresses, so a smaller prefix would let one host through as many sources).
type ClaimLimit struct {
	Limit              int
	Window             time.Duration
	PrefixV4, PrefixV6 int
}

// settledClaimTTL is how long a confirmed claim outlives its binding row. A decide that read
// "unbound" just before the row was written then finds the claim still held, by someone else,
// and refuses; with the claim deleted it would claim the key afresh and be served once. Short,
// so that after an unbind the key is soon free for anyone again.
const settledClaimTTL = 10 * time.Second

// DefaultClaimTTL bounds how long a claim waits for New API's answer: the answer to a
// non-streamed completion can take minutes. A refused claim is released at once.
const DefaultClaimTTL = 5 * time.Minute

// ErrClaimLost: the confirmation quotes a claim that no longer holds the key (another
// claimant holds it now).
var ErrClaimLost = errors.New("the claim no longer holds the key")

func newClaimID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// claim answers a decide for an unbound key.
func (s *Service) claim(ctx context.Context, r DecideRequest) (Decision, error) {
	// The block is read before this key is counted, so whether a claim is refused never
	// depends on how fast the detector counts it: the key that crosses scan_threshold is
	// decided as before, the claims after it are refused.
	var blocked time.Duration
	if s.ClaimBlocked != nil {
		blocked = s.ClaimBlocked(ctx, r.IP)
	}
	if s.KeyPresented != nil {
		s.KeyPresented(r.IP, r.KeyHash)
	}
	if blocked > 0 {
		// The source presented too many keys (alerts.KindKeyScan): it claims nothing for a
		// while. Its bound keys are decided before any claim, so they still work.
		s.observeClaim("blocked")
		return Decision{Provisional: true, Reason: contract.ReasonClaimLimited, RetryAfter: blocked}, nil
	}
	v4, v6 := s.BindPrefixes()
	id, err := newClaimID()
	if err != nil {
		return Decision{}, fmt.Errorf("decide: claim id: %w", err)
	}
	mine := Claim{ID: id, Prefix: FirstUsePrefix(r.IP, v4, v6)}
	out, err := s.Claims.ClaimWithin(ctx, r.KeyHash, mine, s.claimTTL(), s.sourceLimit(r.IP))
	if err != nil {
		return Decision{}, fmt.Errorf("decide: %w", err)
	}
	held := out.Held
	d := Decision{Provisional: true, ClaimID: held.ID, Binding: Binding{
		KeyHash: r.KeyHash, KeyHint: r.KeyHint, Mode: ModeSingle, Status: StatusActive, CIDRs: []netip.Prefix{held.Prefix}}}
	switch {
	case out.Limited:
		// A source at its limit claims nothing.
		d = Decision{Provisional: true, Reason: contract.ReasonClaimLimited, RetryAfter: out.RetryAfter}
		s.observeClaim("limited")
	case out.Won:
		d.Allow = true
		s.observeClaim("claimed")
	case held.Prefix.Contains(r.IP):
		d.Allow = true // the claimant again, before New API answered its first request
		s.observeClaim("joined")
	default:
		// Someone else's pending first use. No intercept row: the key may yet prove to be
		// no key at all.
		d.Reason, d.ClaimID = contract.ReasonIPNotAllowed, ""
		s.observeClaim("contended")
	}
	return d, nil
}

// sourceLimit is the claim limit in force for a claim from ip.
func (s *Service) sourceLimit(ip netip.Addr) SourceLimit {
	if s.ClaimLimits == nil {
		return SourceLimit{}
	}
	l := s.ClaimLimits()
	if l.Limit <= 0 {
		return SourceLimit{}
	}
	return SourceLimit{Source: FirstUsePrefix(ip, l.PrefixV4, l.PrefixV6), Limit: l.Limit, Window: l.Window}
}

// ConfirmRequest is the plugin's report that New API served a provisional request.
type ConfirmRequest struct {
	KeyHash, KeyHint, ClaimID string
	IP                        netip.Addr
}

// Confirm turns the claim into a binding (race-safe: the first binding written wins, as
// before claims), fills Redis and forgets the claim. A claim that expired meanwhile still
// confirms unless another claim holds the key now.
func (s *Service) Confirm(ctx context.Context, r ConfirmRequest) (Decision, error) {
	held, ok, err := s.Claims.HeldClaim(ctx, r.KeyHash)
	if err != nil {
		return Decision{}, fmt.Errorf("confirm: %w", err)
	}
	if ok && held.ID != r.ClaimID {
		s.observeClaim("lost")
		return Decision{}, ErrClaimLost
	}
	prefix := held.Prefix
	if !ok {
		v4, v6 := s.BindPrefixes()
		prefix = FirstUsePrefix(r.IP, v4, v6)
	}
	if !prefix.Contains(r.IP) {
		return Decision{}, ErrClaimLost // a confirmation from outside the claimant's prefix
	}
	now := s.Now()
	first := Binding{
		KeyHash: r.KeyHash, KeyHint: r.KeyHint, Mode: ModeSingle, CIDRs: []netip.Prefix{prefix},
		Status: StatusActive, FirstIP: r.IP, LastIP: r.IP, CreatedAt: now, LastUsedAt: now, UpdatedAt: now,
	}
	if s.FirstUseLearning != nil {
		if l, ok := s.FirstUseLearning(now); ok {
			first.Mode, first.LearnSlots, first.LearnUntil = ModeLearning, l.Slots, l.Until
		}
	}
	written := addBound(ctx, s.Bound, s.Log, r.KeyHash)
	b, created, err := s.Store.BindFirstUse(ctx, first)
	written()
	if err != nil {
		return Decision{}, fmt.Errorf("confirm: %w", err)
	}
	if err := s.fill(ctx, b); err != nil {
		s.Log.Warn("binding cache fill failed", "key_hint", b.KeyHint, "err", err)
	}
	if err := s.Claims.ExpireClaim(ctx, r.KeyHash, r.ClaimID, settledClaimTTL); err != nil {
		// Harmless: the claim expires anyway, and the binding decides from now on.
		s.Log.Warn("claim not settled after confirmation", "key_hint", r.KeyHint, "err", err)
	}
	d := Decision{Allow: b.Status != StatusBanned && b.Allows(r.IP), Binding: b, Created: created}
	if !d.Allow {
		d.Reason = contract.ReasonIPNotAllowed
		if b.Status == StatusBanned {
			d.Reason = contract.ReasonKeyBanned
		}
	}
	if created {
		s.observeClaim("confirmed")
		s.Log.Info("key bound on first use", "key_hint", b.KeyHint, "ip", r.IP.String(), "rule", b.CIDRStrings())
	}
	return d, nil
}

// Release forgets a claim New API refused (or never answered).
func (s *Service) Release(ctx context.Context, keyHash, claimID string) error {
	if err := s.Claims.ReleaseClaim(ctx, keyHash, claimID); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	s.observeClaim("released")
	return nil
}

func (s *Service) claimTTL() time.Duration {
	if s.ClaimTTL > 0 {
		return s.ClaimTTL
	}
	return DefaultClaimTTL
}

func (s *Service) observeClaim(outcome string) {
	if s.ObserveClaim != nil {
		s.ObserveClaim(outcome)
	}
}
