package intercepts

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// FuzzParseEvent: a sentinel:events entry is plugin-written but carries attacker text, and
// anyone with Redis access can add one. Whatever its fields, parsing never panics, and an
// accepted entry is as valid as one admind accepts over HTTP.
func FuzzParseEvent(f *testing.F) {
	hash := strings.Repeat("ab", 32)
	f.Add(hash, "sk-abcd…wxyz", "127.0.0.2", "ip_not_allowed", "false", "POST", "/v1/chat/completions", "curl/8", "1700000000000")
	f.Add(hash, "", "::ffff:127.0.0.2", "key_banned", "true", "", "", "", "x")
	f.Add(hash, "h", "127.0.0.2", "ip_not_allowed", "", "GET", "/v1/\x00", "\xff\xfe", "1700000000000")
	f.Add(hash, "h", "127.0.0.2", "ip_not_allowed", "TRUE", "GET", "/", "ua", "9223372036854775807")
	f.Add(strings.ToUpper(hash), "h", "fe80::1%eth0", "other", "1", "GET", "/", strings.Repeat("u", 600), "-1")
	f.Fuzz(func(t *testing.T, keyHash, hint, ip, reason, forwarded, method, path, ua, at string) {
		now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
		in, ok := parseEvent(map[string]any{"key_hash": keyHash, "key_hint": hint, "ip": ip, "reason": reason,
			"forwarded": forwarded, "method": method, "path": path, "user_agent": ua, "at": at}, now)
		if !ok {
			return
		}
		if !contract.ValidKeyHash(in.KeyHash) || !in.IP.IsValid() || in.IP.Zone() != "" || in.IP.Is4In6() ||
			(in.Reason != contract.ReasonIPNotAllowed && in.Reason != contract.ReasonKeyBanned) ||
			len(in.Path) > contract.MaxEventField || len(in.UserAgent) > contract.MaxEventField || len(in.Method) > contract.MaxEventField ||
			!storable(in.KeyHint) || !storable(in.Method) || !storable(in.Path) || !storable(in.UserAgent) ||
			in.At.Year() < 2020 || in.At.After(now.Add(time.Hour)) ||
			in.Outcome != bindings.OutcomeOf(forwarded == "true") || (forwarded != "true" && forwarded != "false" && forwarded != "") {
			t.Fatalf("accepted an invalid entry: %+v", in)
		}
	})
}

// storable: text PostgreSQL takes (valid UTF-8, no NUL).
func storable(s string) bool { return utf8.ValidString(s) && !strings.Contains(s, "\x00") }

// An entry says whether its request was forwarded (monitor mode) in "true" or "false"; an
// entry from a plugin older than that field was refused. Any other spelling is not the
// plugin's, and the entry is dropped rather than guessed at.
func TestParseEventOutcome(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for forwarded, want := range map[any]string{"true": bindings.OutcomeForwarded, "false": bindings.OutcomeRefused, nil: bindings.OutcomeRefused,
		"TRUE": "", "1": "", "": bindings.OutcomeRefused} {
		v := map[string]any{"key_hash": strings.Repeat("ab", 32), "ip": "127.0.0.2", "reason": "ip_not_allowed"}
		if forwarded != nil {
			v["forwarded"] = forwarded
		}
		got := "" // dropped
		if in, ok := parseEvent(v, now); ok {
			got = in.Outcome
		}
		if got != want {
			t.Errorf("forwarded %v: outcome %q (\"\" when dropped), want %q", forwarded, got, want)
		}
	}
}
