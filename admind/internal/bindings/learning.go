package bindings

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
)

// The learning rule is for clients whose address changes (mobile, campus, a few offices): the
// binding takes the first LearnSlots distinct addresses, each widened to the bind prefix, that
// use the key before LearnUntil, and from then on holds them like a "multiple" rule. Only a
// key that is bound already learns: the key has proved itself to New API, so an address using
// it is the key's owner or someone the key leaked to, and the slots bound how many of the
// latter there can be. The window and the slots are per binding; the runtime settings give
// the defaults and whether first uses bind with this rule (first_use_rule).

// LearnRule bounds a learning rule: how many addresses it takes, and until when.
type LearnRule struct {
	Slots int
	Until time.Time
}

// SystemActor is admind itself in admin_audit: addresses learned, keys banned on an alert.
var SystemActor = audit.Actor{Name: "system"}

// Learning reports whether the rule may learn another address at now.
func (b Binding) Learning(now time.Time) bool {
	return b.Mode == ModeLearning && b.Status == StatusActive && len(b.CIDRs) < b.LearnSlots && now.Before(b.LearnUntil)
}

// SlotsLeft is how many more addresses a learning rule may learn (0 once it holds).
func (b Binding) SlotsLeft(now time.Time) int {
	if !b.Learning(now) {
		return 0
	}
	return b.LearnSlots - len(b.CIDRs)
}

// setRule gives b the rule mode with entries, bounded by learn when mode is ModeLearning (and
// only then may learn be given).
func setRule(b *Binding, mode Mode, entries []string, learn LearnRule) error {
	cidrs, err := ParseRule(mode, entries)
	if err != nil {
		return err
	}
	if mode != ModeLearning {
		if learn != (LearnRule{}) {
			return inputErrorf(`learn_slots and learn_window_seconds are for the rule "learning" only`)
		}
		b.Mode, b.CIDRs, b.LearnSlots, b.LearnUntil = mode, cidrs, 0, time.Time{}
		return nil
	}
	if learn.Slots < 1 || learn.Slots > MaxRuleEntries {
		return inputErrorf("learn_slots must be in 1-%d, got %d", MaxRuleEntries, learn.Slots)
	}
	if len(cidrs) > learn.Slots {
		return inputErrorf("a learning rule with %d slots cannot start with %d addresses", learn.Slots, len(cidrs))
	}
	if learn.Until.IsZero() {
		return inputErrorf("a learning rule needs the end of its window")
	}
	b.Mode, b.CIDRs, b.LearnSlots, b.LearnUntil = mode, cidrs, learn.Slots, learn.Until
	return nil
}

// LearnStore is what learning needs from PostgreSQL.
type LearnStore interface {
	// LearnAddress adds p to the binding of keyHash if it is still learning at now and does
	// not list p yet (one conditional UPDATE under the row lock, with its audit row), and
	// returns the binding after; learned is false when nothing changed.
	LearnAddress(ctx context.Context, keyHash string, p netip.Prefix, ip netip.Addr, now time.Time, a audit.Entry) (b Binding, learned bool, err error)
}

// learn lets a learning binding take ip's bind prefix, and returns the binding that holds
// afterwards. Concurrent learners are serialised by PostgreSQL: each re-checks the slots
// under the row lock, so the binding never holds more than LearnSlots addresses.
func (s *Service) learn(ctx context.Context, b Binding, ip netip.Addr) (Binding, error) {
	v4, v6 := s.BindPrefixes()
	p := FirstUsePrefix(ip, v4, v6)
	after, learned, err := s.Store.LearnAddress(ctx, b.KeyHash, p, ip, s.Now(), audit.Entry{
		Actor: SystemActor, Action: "binding.learn", Target: fmt.Sprintf("binding:%d", b.ID), After: map[string]string{"learned": p.String()}})
	if err != nil {
		return Binding{}, fmt.Errorf("decide: learn: %w", err)
	}
	if learned {
		s.Log.Info("learning binding took an address", "key_hint", after.KeyHint, "ip", ip.String(), "rule", after.CIDRStrings(),
			"slots_left", after.SlotsLeft(s.Now()))
	}
	return after, nil
}
