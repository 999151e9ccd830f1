// Package contract is admind's side of its contract with the plugin, all in one place: the
// Redis keys and binding entry format admind writes, the stream entries and counters the
// plugin writes, the internal HTTP API, the refusal reasons and the limits both sides hold
// to. The plugin's side is plugin/contract.go; the golden fixture testdata/contract.json is
// read by both sides' tests, so a rename on one side fails go test.
//
// Standard library only: the domain packages (bindings) import it.
package contract

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Redis keys the plugin reads or writes. Every one starts with "sentinel:". Keys only admind
// uses (claims, versions, lockouts, alert windows) live with the code that uses them.
const (
	bindingKeyPrefix   = "sentinel:b:"
	GenerationKey      = "sentinel:gen"      // the binding generation (plugin/runtime.go)
	SettingsKey        = "sentinel:settings" // PluginSettings as JSON
	EventsStream       = "sentinel:events"   // intercept and failsafe events, from the plugin
	LastUseKey         = "sentinel:lastuse"  // hash: key hash → unix ms last seen used
	allowedStatsPrefix = "sentinel:stats:allowed:"
)

// BindingKey is where a binding's entry is cached for the plugin.
func BindingKey(keyHash string) string { return bindingKeyPrefix + keyHash }

// ClaimKey holds a provisional first use of a key until New API's answer confirms or refuses
// it (admind/internal/bindings/claims.go). The plugin only asks whether it exists.
func ClaimKey(keyHash string) string { return "sentinel:claim:" + keyHash }

// The bound set: BoundMember of every binding's key hash, a superset of the bindings while
// BoundCompleteKey exists (admind/internal/cache/bound.go). The plugin reads both to refuse a
// source over its claim limit without asking admind: a key whose member is missing from a
// complete set, and that no claim holds, is bound nowhere.
const (
	BoundSetKey      = "sentinel:bound"
	BoundCompleteKey = "sentinel:bound:complete"
	BoundMemberLen   = 16 // hex characters: 64 bits, so a collision is rare and only costs a decide
)

// BoundMember is keyHash's member of the bound set (keyHash is valid: ValidKeyHash).
func BoundMember(keyHash string) string { return keyHash[:BoundMemberLen] }

// AllowedCounterKey counts the allowed requests of one UTC day ("2006-01-02"), written by
// the plugin's usage flush.
func AllowedCounterKey(day string) string { return allowedStatsPrefix + day }

// BindingEntry is a binding's wire form in Redis: "v1|<status>|<mode>|<cidr>,<cidr>".
func BindingEntry(status, mode string, cidrs []string) string {
	return "v1|" + status + "|" + mode + "|" + strings.Join(cidrs, ",")
}

// PluginSettings is the part of the runtime settings published for the plugin.
type PluginSettings struct {
	FailsafeMode string `json:"failsafe_mode"` // "closed" or "open"
}

// Fields of an entry on EventsStream. An intercept carries the Event fields and at (unix
// ms); the plugin's periodic counters carry type=failsafe and the counts.
const (
	FieldKeyHash      = "key_hash"
	FieldKeyHint      = "key_hint"
	FieldIP           = "ip"
	FieldReason       = "reason"
	FieldForwarded    = "forwarded" // "true" or "false" (Event.Forwarded); absent from older plugins
	FieldMethod       = "method"
	FieldPath         = "path"
	FieldUserAgent    = "user_agent"
	FieldAt           = "at"
	FieldType         = "type"
	EventTypeFailsafe = "failsafe"
	FieldOpen         = "open"     // requests forwarded unbound (failsafe open)
	FieldClosed       = "closed"   // requests answered 503 (failsafe closed)
	FieldRejected     = "rejected" // decide requests admind refused
	FieldHidden       = "hidden"   // keyed requests refused as coming from a relay
	FieldLimited      = "limited"  // first uses the plugin refused itself: their source is over its claim limit
)

// The internal API, each a POST behind the internal token, on the internal listener only.
const (
	InternalPrefix = "/internal/v1"
	PathDecide     = "/decide"     // Event → DecideResponse
	PathConfirm    = "/confirm"    // Event with Claim → DecideResponse
	PathRelease    = "/release"    // Event with Claim
	PathIntercepts = "/intercepts" // Event with Reason (the plugin's fallback when Redis is down)
)

// Event is what the plugin reports about a request, as it arrives off the wire: the body of
// every internal call, and the fields of an intercept on EventsStream. Everything in it is
// plugin-written but carries attacker text (path, user agent), and the stream can be written
// by anyone with Redis access, so both ways in check it alike (Check).
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
	// Forwarded: the plugin forwards this request whatever admind answers (monitor mode), so
	// an intercept recorded for it is one forwarded, not refused.
	Forwarded bool `json:"forwarded,omitempty"`
	// Claim (confirm and release only) is the claim id decide answered with.
	Claim string `json:"claim,omitempty"`
}

// DecideResponse is admind's answer to decide and confirm.
type DecideResponse struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	// Binding is what the plugin may cache; null for a provisional answer.
	Binding *BindingReply `json:"binding"`
	// CacheTTLS bounds, in seconds, how long the plugin may cache the binding locally.
	CacheTTLS int `json:"cache_ttl_s"`
	// Provisional: the key is unbound; when allowed, the plugin reports New API's answer
	// to confirm or release quoting Claim.
	Provisional bool   `json:"provisional,omitempty"`
	Claim       string `json:"claim,omitempty"`
	// RetryAfterS, with ReasonClaimLimited: seconds until the source may claim again.
	RetryAfterS int `json:"retry_after_s,omitempty"`
}

// BindingReply is a binding in DecideResponse: the fields of its BindingEntry.
type BindingReply struct {
	Status string   `json:"status"`
	Mode   string   `json:"mode"`
	CIDRs  []string `json:"cidrs"`
}

// Refusal reasons admind answers with and accepts in intercept events.
const (
	ReasonIPNotAllowed = "ip_not_allowed"
	ReasonKeyBanned    = "key_banned"
	// ReasonClaimLimited: the source made its limit of new first-use claims this window;
	// never an intercept, the plugin answers 429.
	ReasonClaimLimited = "claim_rate_limited"
)

// MaxEventField bounds method, path and user agent in bytes. The plugin makes every field
// valid UTF-8 without control characters and cuts it to this on a rune boundary
// (plugin/admind.go: reportedField), so everything it sends passes Check.
const MaxEventField = 512

// MaxHintLen is the longest key hint in bytes: "sk-" + 4 + "…" + 4 (identity.Hint).
const MaxHintLen = len("sk-abcd…wxyz")

// maxEventHint leaves room over MaxHintLen for hints of future formats, not for payloads.
const maxEventHint = 32

// ClaimIDLength is the length of a claim id, lowercase hex.
const ClaimIDLength = 32

// ValidKeyHash reports whether s is a lowercase hex HMAC-SHA256.
func ValidKeyHash(s string) bool { return isLowerHex(s, 64) }

// ValidClaimID reports whether id has the form of admind's claim ids.
func ValidClaimID(id string) bool { return isLowerHex(id, ClaimIDLength) }

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

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
