package plugin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

var (
	// errAmbiguousKey: the request names more than one distinct API key. New API would pick
	// one by its own precedence; Sentinel refuses rather than guess which one to check.
	errAmbiguousKey = errors.New("request carries more than one distinct API key")
	// errMalformedKey: a carrier holds a value New API would look up as a key but that is not
	// in the form New API issues keys in (see identity.CanonicalKey).
	errMalformedKey = identity.ErrMalformedKey
)

// wsKeyPrefix is what New API looks for in a Sec-WebSocket-Protocol entry. It matches the
// entry by this prefix without the dot, then removes the prefix with the dot.
const wsKeyPrefix = "openai-insecure-api-key"

// Canonical header names, computed once.
var (
	hdrAuthorization = http.CanonicalHeaderKey("Authorization")
	hdrGoogAPIKey    = http.CanonicalHeaderKey("x-goog-api-key")
	hdrAPIKey        = http.CanonicalHeaderKey("x-api-key")
	hdrWSProtocol    = http.CanonicalHeaderKey("Sec-WebSocket-Protocol")
	hdrMJSecret      = http.CanonicalHeaderKey("mj-api-secret")
)

// keyCollector gathers the keys a request carries and notices when two differ or one is
// malformed. key is the canonical form (what is hashed and compared); spelled is the first
// spelling seen, case kept (for the display hint and the pre-canonical hash, see
// legacyKeyHash).
type keyCollector struct {
	key     string
	spelled string
	err     error
}

// collectKey takes a value New API would read as a token key, before its normalisation.
func collectKey(c *keyCollector, v string) {
	if c.err != nil {
		return
	}
	spelled := identity.NormaliseKey(v)
	k, err := identity.CanonicalKey(spelled)
	switch {
	case err != nil:
		c.err = err
	case k == "":
	case c.key == "":
		c.key, c.spelled = k, spelled
	case c.key != k:
		c.err = errAmbiguousKey
	}
}

// apiKey returns the canonical API key the request carries ("" when it carries none) and its
// first spelling. It reads every carrier New API's TokenAuth and TokenAuthReadOnly read
// (middleware/auth.go), extracting each value exactly as they do, but on every path and from
// every header line and entry (a superset: a later New API that widens a carrier opens no
// hole, and a legitimate client never sends two different keys):
//   - Sec-WebSocket-Protocol: New API splits the value on "," and takes the first trimmed
//     entry that starts with "openai-insecure-api-key", less "openai-insecure-api-key.";
//     when no entry does, it takes the whole header value. Here every entry that starts so
//     is a key, and so is each header line without such an entry.
//   - x-goog-api-key, ?key=, x-api-key: New API copies them into "Authorization: Bearer <v>",
//     so the value is trimmed.
//   - Authorization: "Bearer "/"bearer " stripped and the rest trimmed, otherwise the whole
//     value; "midjourney-proxy" is a placeholder that sends New API to mj-api-secret. Not read
//     on routes where New API's router reads it as a dashboard login (routes.go).
//   - mj-api-secret: like Authorization.
//
// The common request (one Authorization line at most, no other carrier, no query) is read by
// authorizationKey: under Yaegi a call pays for the whole frame of the function it enters,
// and keyFromEveryCarrier's is large. FuzzAuthorizationKeyAgrees holds the two to one reading.
func apiKey(req *http.Request, s *options) (key, spelled string, err error) {
	h := req.Header
	if h[hdrWSProtocol] == nil {
		if h[hdrGoogAPIKey] == nil {
			if h[hdrAPIKey] == nil {
				if h[hdrMJSecret] == nil {
					if req.URL == nil || req.URL.RawQuery == "" {
						if len(h[hdrAuthorization]) < 2 {
							return authorizationKey(req, s)
						}
					}
				}
			}
		}
	}
	return keyFromEveryCarrier(req, s)
}

// authorizationKey is apiKey for a request whose only possible carrier is at most one
// Authorization line (the common case): the same reading as keyFromEveryCarrier's, in a
// function small enough that Yaegi's frame for it is cheap.
func authorizationKey(req *http.Request, s *options) (key, spelled string, err error) {
	auth := req.Header[hdrAuthorization]
	if len(auth) == 0 || !authorizationIsAPIKey(s, req) {
		return "", "", nil
	}
	v := identity.StripBearer(auth[0])
	if v == "midjourney-proxy" {
		return "", "", nil
	}
	spelled = identity.NormaliseKey(v)
	key, err = identity.CanonicalKey(spelled)
	if err != nil || key == "" {
		return "", "", err
	}
	return key, spelled, nil
}

// keyFromEveryCarrier is apiKey for every other request.
func keyFromEveryCarrier(req *http.Request, s *options) (key, spelled string, err error) {
	var c keyCollector
	h := req.Header
	for _, line := range h[hdrWSProtocol] {
		found := false
		for _, part := range strings.Split(line, ",") {
			part = strings.TrimSpace(part)
			if strings.HasPrefix(part, wsKeyPrefix) {
				found = true
				collectKey(&c, strings.TrimSpace(strings.TrimPrefix(part, wsKeyPrefix+".")))
			}
		}
		if !found {
			collectKey(&c, strings.TrimSpace(line))
		}
	}
	for _, v := range h[hdrGoogAPIKey] {
		collectKey(&c, strings.TrimSpace(v))
	}
	if req.URL != nil && req.URL.RawQuery != "" {
		for _, v := range req.URL.Query()["key"] {
			collectKey(&c, strings.TrimSpace(v))
		}
	}
	for _, v := range h[hdrAPIKey] {
		collectKey(&c, strings.TrimSpace(v))
	}
	if auth := h[hdrAuthorization]; len(auth) > 0 && authorizationIsAPIKey(s, req) {
		for _, v := range auth {
			if k := identity.StripBearer(v); k != "midjourney-proxy" {
				collectKey(&c, k)
			}
		}
	}
	for _, v := range h[hdrMJSecret] {
		collectKey(&c, identity.StripBearer(v))
	}
	return c.key, c.spelled, c.err
}
