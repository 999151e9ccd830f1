package plugin

import "strconv"

// The plugin's side of its contract with admind, all in this file: the Redis keys and the
// binding entry format admind writes, the stream entries and counters the plugin writes, the
// internal HTTP API, the refusal reasons admind answers with and the limits both sides hold
// to. admind's side is admind/internal/contract; the golden fixture testdata/contract.json is
// read by both sides' tests (contract_test.go here), so a rename on one side fails go test.

// Redis keys. Every one starts with "sentinel:"; admind writes the first six, the plugin
// the others.
const (
	bindingKeyPrefix   = "sentinel:b:"             // + key hash: the binding entry
	generationKey      = "sentinel:gen"            // the binding generation (runtime.go)
	settingsKey        = "sentinel:settings"       // the published runtime settings (JSON)
	claimKeyPrefix     = "sentinel:claim:"         // + key hash: a provisional first use (exists or not)
	boundSetKey        = "sentinel:bound"          // set: boundMember of every binding's key hash
	boundCompleteKey   = "sentinel:bound:complete" // exists while boundSetKey holds every binding
	eventsStream       = "sentinel:events"         // intercept and failsafe events
	lastUseKey         = "sentinel:lastuse"        // hash: key hash → unix ms last seen used
	allowedStatsPrefix = "sentinel:stats:allowed:" // + UTC day (2006-01-02): allowed requests
)

// eventsStreamMax bounds the events stream (XADD MAXLEN ~).
const eventsStreamMax = "100000"

// redisBindingKey is where admind caches a binding.
func redisBindingKey(hash string) string { return bindingKeyPrefix + hash }

// redisClaimKey is where admind holds a key's provisional first use.
func redisClaimKey(hash string) string { return claimKeyPrefix + hash }

// boundMember is a key hash's member of the bound set: its first boundMemberLen hex
// characters. A collision with a bound key only sends the request to admind.
func boundMember(hash string) string { return hash[:boundMemberLen] }

const (
	keyHashLen     = 64 // hex HMAC-SHA256 (identity.Hash)
	boundMemberLen = 16
)

// The binding entry, v1|<status>|<mode>|<cidr>,<cidr>,... (parseBindingEntry).
const (
	entryVersion   = "v1"
	statusActive   = "active"
	statusBanned   = "banned"
	modeSingle     = "single"
	modeMultiple   = "multiple"
	modeAll        = "all"
	modeLearning   = "learning" // may take another address: admind decides the ones it lacks
	entrySeparator = "|"
	cidrSeparator  = ","
)

// publishedSettings is the part of sentinel:settings the plugin reads.
type publishedSettings struct {
	FailsafeMode string `json:"failsafe_mode"` // failsafeModeClosed or failsafeModeOpen
}

const (
	failsafeModeClosed = "closed"
	failsafeModeOpen   = "open"
)

// interceptEvent is the field list of a refusal's entry on eventsStream (forwarded: "true"
// in monitor mode).
func interceptEvent(ev decideRequest, atMillis string) []string {
	return []string{"key_hash", ev.KeyHash, "key_hint", ev.KeyHint, "ip", ev.IP, "reason", ev.Reason,
		"forwarded", strconv.FormatBool(ev.Forwarded), "method", ev.Method, "path", ev.Path, "user_agent", ev.UserAgent, "at", atMillis}
}

// failsafeEvent is the field list of a usage flush's failsafe entry on eventsStream: requests
// forwarded (open) and refused (closed) because nothing could decide, decide requests admind
// refused, keyed requests refused as coming from a relay, and first uses refused because
// their source was over its claim limit (limits.go).
func failsafeEvent(open, closed, rejected, hidden, limited int64, atMillis string) []string {
	return []string{"type", "failsafe", "open", strconv.FormatInt(open, 10), "closed", strconv.FormatInt(closed, 10),
		"rejected", strconv.FormatInt(rejected, 10), "hidden", strconv.FormatInt(hidden, 10),
		"limited", strconv.FormatInt(limited, 10), "at", atMillis}
}

// admind's internal API, under admindURL, each a POST with "Authorization: Bearer <token>".
const (
	pathDecide     = "/internal/v1/decide"     // decideRequest → decideResponse
	pathConfirm    = "/internal/v1/confirm"    // decideRequest with Claim → decideResponse
	pathRelease    = "/internal/v1/release"    // decideRequest with Claim
	pathIntercepts = "/internal/v1/intercepts" // decideRequest with Reason (Redis down)
)

// decideRequest is the body of every internal call, and of an intercept event.
type decideRequest struct {
	KeyHash string `json:"key_hash"`
	// LegacyKeyHash is the hash of the key as spelled, sent when that differs from KeyHash:
	// bindings made before the canonical key form are found under it.
	LegacyKeyHash string `json:"legacy_key_hash,omitempty"`
	KeyHint       string `json:"key_hint"`
	IP            string `json:"ip"`
	Method        string `json:"method"`
	Path          string `json:"path"`
	UserAgent     string `json:"user_agent"`
	Reason        string `json:"reason,omitempty"`
	// Forwarded: this plugin forwards the request whatever admind answers (monitor mode), so
	// admind records an intercept for it as forwarded, not refused.
	Forwarded bool `json:"forwarded,omitempty"`
	// Claim (confirm and release only) quotes the claim of a provisional answer.
	Claim string `json:"claim,omitempty"`
}

type decideResponse struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	// Binding is what may be cached; nil when Provisional.
	Binding *bindingReply `json:"binding"`
	// CacheTTLS bounds, in seconds, how long the binding may be cached locally.
	CacheTTLS int `json:"cache_ttl_s"`
	// Provisional: the key is unbound and, when allowed, claimed for this client until New
	// API's answer confirms the claim (claim.go).
	Provisional bool   `json:"provisional"`
	Claim       string `json:"claim"`
	// RetryAfterS, with reason claim_rate_limited: seconds until this address may claim again.
	RetryAfterS int `json:"retry_after_s"`
}

// bindingReply is a binding in admind's answer: the fields of a binding entry.
type bindingReply struct {
	Status string   `json:"status"`
	Mode   string   `json:"mode"`
	CIDRs  []string `json:"cidrs"`
}

// Refusal reasons admind answers with and accepts in intercept events; the refusal codes
// only the plugin gives are in respond.go.
const (
	codeIPNotAllowed = "ip_not_allowed"
	codeKeyBanned    = "key_banned"
	codeClaimLimited = "claim_rate_limited"
)

// maxReportedField bounds, in bytes, what is copied from the request into events (method,
// path, user agent). admind accepts exactly this: a field it refused would leave the request
// undecided.
const maxReportedField = 512

// claimLength is the length of admind's claim ids: lowercase hex.
const claimLength = 32

// validClaim reports whether id has the form admind's claim ids have.
func validClaim(id string) bool {
	if len(id) != claimLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
