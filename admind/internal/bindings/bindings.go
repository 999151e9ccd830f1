// Package bindings is admind's domain: key bindings, the rules that decide whether an
// address may use a key, and first-use binding. It imports no driver; the store and the
// cache are interfaces implemented elsewhere.
package bindings

import (
	"errors"
	"net/netip"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// Status of a binding.
type Status string

// Statuses of a binding.
const (
	StatusActive Status = "active"
	StatusBanned Status = "banned"
)

// Mode of a binding's rule.
type Mode string

// Modes of a rule.
const (
	ModeSingle   Mode = "single"   // one address or one CIDR
	ModeMultiple Mode = "multiple" // several addresses/CIDRs, IPv4 and IPv6 mixed
	ModeAll      Mode = "all"      // any address
	ModeLearning Mode = "learning" // learns addresses until full or its window ends (learning.go)
)

// Origin says how a binding was made.
type Origin string

// Origins of a binding.
const (
	OriginFirstUse Origin = "first_use" // the key's first use New API accepted
	OriginAdmin    Origin = "admin"     // pre-bound by an admin (prebind.go)
	OriginImport   Origin = "import"    // pre-bound by a bulk import (transfer.go)
)

// Binding ties a key (by its HMAC) to the addresses allowed to use it.
type Binding struct {
	ID      int64
	KeyHash string
	KeyHint string
	Mode    Mode
	CIDRs   []netip.Prefix
	Status  Status
	Origin  Origin
	// FirstIP and LastIP are the first use's address; zero for a pre-bound binding.
	FirstIP netip.Addr
	LastIP  netip.Addr
	// LastUsedAt is zero until the plugin reports a use of a pre-bound binding.
	CreatedAt  time.Time
	LastUsedAt time.Time
	UpdatedAt  time.Time
	Note       string
	// LearnSlots and LearnUntil bound a learning rule: at most LearnSlots addresses, learned
	// before LearnUntil. Zero for every other mode.
	LearnSlots int
	LearnUntil time.Time
	// Version grows on every write (one PostgreSQL sequence for all bindings); the cache
	// refuses entries older than the newest version it has seen for the key.
	Version int64
}

// Allows reports whether ip matches the rule (the status is checked separately). A learning
// rule allows the addresses it has learned; Learning says whether it may learn ip.
func (b Binding) Allows(ip netip.Addr) bool {
	if b.Mode == ModeAll {
		return true
	}
	for _, p := range b.CIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CacheEntry is the binding's wire form in Redis at now, read by the plugin
// (contract.BindingEntry).
func (b Binding) CacheEntry(now time.Time) string {
	return contract.BindingEntry(string(b.Status), b.WireMode(now), b.CIDRStrings())
}

// WireMode is the mode the plugin is told at now (in the cache entry and in a decision). A
// learning rule is "learning" only while it may learn (the plugin then asks admind about an
// address it does not list); once full or past its window it is the "multiple" rule it holds,
// decided by the plugin alone (one that learned nothing stays "learning": a "multiple" rule
// without an address is no rule, so admind keeps deciding it).
func (b Binding) WireMode(now time.Time) string {
	if b.Mode == ModeLearning && !b.Learning(now) && len(b.CIDRs) > 0 {
		return string(ModeMultiple)
	}
	return string(b.Mode)
}

// CIDRStrings returns the rule's prefixes as text.
func (b Binding) CIDRStrings() []string {
	out := make([]string, len(b.CIDRs))
	for i, p := range b.CIDRs {
		out[i] = p.String()
	}
	return out
}

// Intercept is one request refused, or in monitor mode forwarded, by a binding.
type Intercept struct {
	ID      int64 // set when read back
	KeyHash string
	KeyHint string
	IP      netip.Addr
	Reason  string
	// Outcome is OutcomeRefused or OutcomeForwarded; "" on rows recorded before outcomes were.
	Outcome   string
	Method    string
	Path      string
	UserAgent string
	At        time.Time
}

// What happened to an intercepted request.
const (
	OutcomeRefused   = "refused"
	OutcomeForwarded = "forwarded" // the plugin runs in monitor mode: it records, never blocks
)

// OutcomeOf is the outcome of an intercept the plugin reported with forwarded.
func OutcomeOf(forwarded bool) string {
	if forwarded {
		return OutcomeForwarded
	}
	return OutcomeRefused
}

// ErrNotFound is returned by a Store when no binding exists.
var ErrNotFound = errors.New("binding not found")

// FirstUsePrefix is the rule a new binding gets: the client's address widened to the
// configured prefix (IPv4 /32 and IPv6 /64 by default, since IPv6 privacy addresses rotate
// inside their /64).
func FirstUsePrefix(ip netip.Addr, v4Bits, v6Bits int) netip.Prefix {
	bits := v6Bits
	if ip.Is4() {
		bits = v4Bits
	}
	p, _ := ip.Prefix(bits)
	return p
}

// LogQuery selects intercept log rows.
type LogQuery struct {
	KeyHash  string
	IP       netip.Prefix // rows whose address is inside (a single address is a /32 or /128)
	From, To time.Time    // zero for open ends; From inclusive, To exclusive
	Reason   string
	Outcome  string
	Page     int // from 1; 0 with PageSize 0 means every row (export)
	PageSize int
}
