package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// ErrMalformedKey: a value New API would look up as a key that is not in the form New API
// issues keys in (see CanonicalKey).
var ErrMalformedKey = errors.New("request carries a malformed API key")

// StripBearer mirrors New API: only the exact prefixes "Bearer " and "bearer " are removed
// (then the rest is trimmed); any other value is used whole.
func StripBearer(v string) string {
	if strings.HasPrefix(v, "Bearer ") || strings.HasPrefix(v, "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return v
}

// NormaliseKey mirrors New API: drop "sk-", keep what precedes the first "-" (the rest
// selects a channel). "sk-KEY", "KEY" and "sk-KEY-3" are one key.
func NormaliseKey(k string) string {
	k = strings.TrimPrefix(k, "sk-")
	if i := strings.IndexByte(k, '-'); i >= 0 {
		k = k[:i]
	}
	return k
}

// CanonicalKey gives one form to every spelling a New API database resolves to one key.
// New API issues keys of letters and digits (common.GenerateKey: 48 of [0-9a-zA-Z]), and
// looks them up with "key = ?": exact on SQLite and PostgreSQL, but on MySQL and MariaDB
// under case- and accent-insensitive collations that also ignore trailing spaces. So:
//   - letters and digits only: the key, in ASCII lower case ("ABC" and "abc" are one key);
//   - a value containing ".": not a key on any database (no issued key has one, and no
//     collation ignores it or equates it with a letter or digit) — a dashboard JWT: "", nil;
//   - anything else (accents, full-width forms, spaces, controls, ...) may be an issued key
//     to some collation, so the request is refused (ErrMalformedKey).
//
// The checks are single standard-library calls rather than a loop over the bytes: under Yaegi
// each interpreted iteration costs allocations, a compiled call costs a few in all.
func CanonicalKey(k string) (string, error) {
	if strings.Trim(k, keyAlphabet) == "" {
		return strings.ToLower(k), nil
	}
	if strings.IndexByte(k, '.') >= 0 {
		return "", nil
	}
	return "", ErrMalformedKey
}

// keyAlphabet is what New API issues keys in.
const keyAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// Hint is what may be shown of a key: the first and last four characters of the key as
// spelled (normalised, case kept), and nothing for keys too short to hide anything.
func Hint(spelled string) string {
	if len(spelled) < 16 {
		return "sk-…"
	}
	return "sk-" + spelled[:4] + "…" + spelled[len(spelled)-4:]
}

// Hash is the only form of a key that leaves the plugin: hex HMAC-SHA256 of the canonical key
// with the secret the plugin and admind share.
func Hash(secret []byte, canonical string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(canonical))
	return hex.EncodeToString(h.Sum(nil))
}

// HashRawKey is how admind finds a key an admin pastes: normalised as New API does ("sk-KEY-3"
// is "KEY"), put in its canonical form, then hashed exactly as the plugin hashes it. ok is
// false when the value is not a key the plugin would ever hash.
func HashRawKey(secret []byte, raw string) (hash string, ok bool) {
	k, err := CanonicalKey(NormaliseKey(StripBearer(strings.TrimSpace(raw))))
	if err != nil || k == "" {
		return "", false
	}
	return Hash(secret, k), true
}

// HintRawKey is the hint the plugin reports for a raw key (admind's pre-binding by raw key).
func HintRawKey(raw string) string {
	return Hint(NormaliseKey(StripBearer(strings.TrimSpace(raw))))
}
