package bindings

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Event is what the plugin reports about a request, as it arrives off the wire: the body of
// POST /internal/v1/decide and /intercepts, and the fields of a sentinel:events stream entry.
// Everything in it is plugin-written but carries attacker text (path, user agent), and the
// stream can be written by anyone with Redis access, so both ways in check it alike.
type Event struct {
	KeyHash string `json:"key_hash"`
	// LegacyKeyHash (decide only) is the hash of the key as spelled before the plugin hashed
	// a canonical key form; set when the two differ.
	LegacyKeyHash string `json:"legacy_key_hash,omitempty"`
	KeyHint       string `json:"key_hint"`
	IP            string `json:"ip"`
	Method        string `json:"method"`
	Path          string `json:"path"`
	UserAgent     string `json:"user_agent"`
	Reason        string `json:"reason,omitempty"`
	// Claim (confirm and release only) is the claim id decide answered with.
	Claim string `json:"claim,omitempty"`
}

// MaxEventField bounds method, path and user agent in bytes. The plugin makes every field
// valid UTF-8 without control characters and cuts it to this on a rune boundary
// (plugin/admind.go: reportedField), so everything it sends passes Check.
const MaxEventField = 512

// maxEventHint leaves room over MaxHintLen for hints of future formats, not for payloads.
const maxEventHint = 32

// Check validates the fields and returns the parsed address. needReason: the event reports a
// refusal, so its reason must be one the plugin gives.
func (e Event) Check(needReason bool) (netip.Addr, error) {
	if !ValidKeyHash(e.KeyHash) {
		return netip.Addr{}, errors.New("key_hash must be 64 lowercase hex characters")
	}
	if e.LegacyKeyHash != "" && !ValidKeyHash(e.LegacyKeyHash) {
		return netip.Addr{}, errors.New("legacy_key_hash must be 64 lowercase hex characters")
	}
	ip, err := netip.ParseAddr(e.IP)
	if err != nil || ip.Zone() != "" || ip.Is4In6() {
		return netip.Addr{}, errors.New("ip must be a canonical IP address")
	}
	if len(e.KeyHint) > maxEventHint || len(e.Method) > MaxEventField || len(e.Path) > MaxEventField || len(e.UserAgent) > MaxEventField {
		return netip.Addr{}, errors.New("a field is too long")
	}
	for _, f := range []string{e.KeyHint, e.Method, e.Path, e.UserAgent} {
		if !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
			return netip.Addr{}, errors.New("a field is not valid UTF-8 text")
		}
	}
	if e.Claim != "" && !ValidClaimID(e.Claim) {
		return netip.Addr{}, errors.New("claim must be 32 lowercase hex characters")
	}
	if needReason && e.Reason != ReasonIPNotAllowed && e.Reason != ReasonKeyBanned {
		return netip.Addr{}, errors.New("reason must be ip_not_allowed or key_banned")
	}
	return ip, nil
}
