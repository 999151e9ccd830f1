package plugin

import (
	"errors"
	"net/http"
	"path"
	"strings"
)

// errAmbiguousKey: the request names more than one distinct API key. New API would pick one
// by its own precedence; Sentinel refuses rather than guess which one to check.
var errAmbiguousKey = errors.New("request carries more than one distinct API key")

const wsKeyPrefix = "openai-insecure-api-key."

// Canonical header names, computed once.
var (
	hdrAuthorization = http.CanonicalHeaderKey("Authorization")
	hdrGoogAPIKey    = http.CanonicalHeaderKey("x-goog-api-key")
	hdrAPIKey        = http.CanonicalHeaderKey("x-api-key")
	hdrWSProtocol    = http.CanonicalHeaderKey("Sec-WebSocket-Protocol")
	hdrMJSecret      = http.CanonicalHeaderKey("mj-api-secret")
)

// keyCollector gathers normalised keys and notices when two differ.
type keyCollector struct {
	key string
	err error
}

func (c *keyCollector) add(k string) {
	if k == "" || c.err != nil {
		return
	}
	if c.key == "" {
		c.key = k
	} else if c.key != k {
		c.err = errAmbiguousKey
	}
}

// apiKey returns the normalised API key the request carries, "" when it carries none.
// It reads every carrier New API's TokenAuth reads, on every path (a superset of New API's
// per-path conditions), and extracts the value the way New API would:
//   - x-goog-api-key, ?key=, x-api-key, the websocket subprotocol entry: New API copies them
//     into "Authorization: Bearer <v>" and trims, so the value is trimmed;
//   - Authorization: "Bearer "/"bearer " prefix stripped and trimmed, otherwise the whole
//     value as is; "midjourney-proxy" is a placeholder that sends New API to mj-api-secret;
//   - mj-api-secret: like Authorization.
//
// Under dashboardPaths (New API's /api and /pg) Authorization is a dashboard login, not an
// API key, except on dashboardKeyPaths. Duplicate header lines count as separate carriers.
func apiKey(req *http.Request, s *settings) (string, error) {
	var c keyCollector
	h := req.Header
	for _, v := range h[hdrGoogAPIKey] {
		c.add(normaliseKey(strings.TrimSpace(v)))
	}
	if req.URL != nil && req.URL.RawQuery != "" {
		for _, v := range req.URL.Query()["key"] {
			c.add(normaliseKey(strings.TrimSpace(v)))
		}
	}
	for _, v := range h[hdrAPIKey] {
		c.add(normaliseKey(strings.TrimSpace(v)))
	}
	if ws := h[hdrWSProtocol]; len(ws) > 0 {
		for _, part := range strings.Split(strings.Join(ws, ","), ",") {
			part = strings.TrimSpace(part)
			if strings.HasPrefix(part, wsKeyPrefix) {
				c.add(normaliseKey(strings.TrimSpace(part[len(wsKeyPrefix):])))
			}
		}
	}
	if auth := h[hdrAuthorization]; len(auth) > 0 && authorizationIsAPIKey(req, s) {
		for _, v := range auth {
			k := stripBearer(v)
			if k != "midjourney-proxy" {
				c.add(normaliseKey(k))
			}
		}
	}
	for _, v := range h[hdrMJSecret] {
		c.add(normaliseKey(stripBearer(v)))
	}
	return c.key, c.err
}

// stripBearer mirrors New API: only the exact prefixes "Bearer " and "bearer " are removed
// (then the rest is trimmed); any other value is used whole.
func stripBearer(v string) string {
	if strings.HasPrefix(v, "Bearer ") || strings.HasPrefix(v, "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return v
}

// normaliseKey mirrors New API: drop "sk-", keep what precedes the first "-" (the rest
// selects a channel). "sk-KEY", "KEY" and "sk-KEY-3" are one key.
func normaliseKey(k string) string {
	k = strings.TrimPrefix(k, "sk-")
	if i := strings.IndexByte(k, '-'); i >= 0 {
		k = k[:i]
	}
	return k
}

// authorizationIsAPIKey applies New API's route table to the cleaned path.
func authorizationIsAPIKey(req *http.Request, s *settings) bool {
	if len(s.dashboardPaths) == 0 || req.URL == nil {
		return true
	}
	p := req.URL.Path
	if p == "" || !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	p = path.Clean(p)
	if !underAny(p, s.dashboardPaths) {
		return true
	}
	return underAny(p, s.dashboardKeyPaths)
}

// underAny reports whether p equals one of prefixes or lies below it.
func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) && (len(p) == len(pre) || p[len(pre)] == '/') {
			return true
		}
	}
	return false
}

// keyHint is what may be shown of a key: the first and last four characters of the
// normalised key, and nothing for keys too short to hide anything.
func keyHint(k string) string {
	if len(k) < 16 {
		return "sk-…"
	}
	return "sk-" + k[:4] + "…" + k[len(k)-4:]
}
