package plugin

import (
	"net/http"
	"strings"
	"sync"
)

// New API reads Authorization as a dashboard login (a session JWT or an access token) on
// most routes under /api and /pg, and as an API key everywhere else. Which one it reads is
// decided by its gin router on the exact path it receives: the path is neither cleaned nor
// unescaped again, and a path that misses a static route falls back to a parameter or
// catch-all route (so /api/mj/submit/imagine reaches /:mode/mj/submit/imagine, which reads a
// key). So Authorization goes unchecked only when the request's own path matches one of the
// dashboard routes and none of the key routes, whatever the method; everything else is
// checked. A dashboard credential mistaken for a key costs one binding; a key mistaken for a
// dashboard credential would be a bypass.
//
// The default tables (newapi_routes.go) are New API's own router, read from its source.

// routeSet matches request paths against gin route patterns: static segments, ":param"
// segments and a final "*catchall".
type routeSet struct {
	byFirst  map[string][][]string // patterns by their first segment
	anyFirst [][]string            // patterns whose first segment is a parameter
}

func parseRoutes(name string, patterns []string, bad func(string, ...interface{})) *routeSet {
	rs := &routeSet{byFirst: map[string][][]string{}}
	for _, raw := range patterns {
		p := strings.TrimSpace(raw)
		if p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/") {
			bad("%s: %q must start with /", name, raw)
			continue
		}
		segs := strings.Split(p[1:], "/")
		ok := true
		for i, s := range segs {
			if strings.HasPrefix(s, "*") && i != len(segs)-1 {
				bad("%s: %q has a catch-all before its last segment", name, raw)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if first := segs[0]; strings.HasPrefix(first, ":") || strings.HasPrefix(first, "*") {
			rs.anyFirst = append(rs.anyFirst, segs)
		} else {
			rs.byFirst[first] = append(rs.byFirst[first], segs)
		}
	}
	return rs
}

// matchRoute reports whether path matches a pattern, ignoring one trailing slash (gin answers
// that difference with a redirect, and the redirected request is checked again). Strict
// matching (the dashboard table) wants every parameter non-empty; loose matching (the key
// table) takes empty ones too, so each errs toward checking.
func matchRoute(rs *routeSet, path string, strict bool) bool {
	if !strings.HasPrefix(path, "/") {
		return false
	}
	segs := strings.Split(path[1:], "/")
	if matchSegs(rs, segs, strict) {
		return true
	}
	if n := len(segs); n > 1 && segs[n-1] == "" {
		return matchSegs(rs, segs[:n-1], strict)
	}
	return matchSegs(rs, append(segs, ""), strict)
}

// matchSegs matches a path already split into segments.
func matchSegs(rs *routeSet, segs []string, strict bool) bool {
	for _, pat := range rs.byFirst[segs[0]] {
		if segmentsMatch(pat, segs, strict) {
			return true
		}
	}
	for _, pat := range rs.anyFirst {
		if segmentsMatch(pat, segs, strict) {
			return true
		}
	}
	return false
}

func segmentsMatch(pat, segs []string, strict bool) bool {
	for i, p := range pat {
		if strings.HasPrefix(p, "*") {
			return true
		}
		if i >= len(segs) {
			return false
		}
		if strings.HasPrefix(p, ":") {
			if strict && segs[i] == "" {
				return false
			}
			continue
		}
		if p != segs[i] {
			return false
		}
	}
	return len(pat) == len(segs)
}

// authorizationIsAPIKey applies the route tables to the path as New API will route it.
func authorizationIsAPIKey(s *options, req *http.Request) bool {
	if req.URL == nil {
		return true
	}
	p := req.URL.Path
	// The remembered answer, read here rather than in a function of its own: under Yaegi a
	// call with two results costs a cache miss about 15 allocations.
	rv := s.routeVerdicts
	rv.mu.RLock()
	v, ok := rv.m[p]
	rv.mu.RUnlock()
	if ok {
		return v
	}
	v = !matchRoute(s.dashboardRoutes, p, true) || matchRoute(s.keyRoutes, p, false)
	rememberRouteVerdict(rv, p, v)
	return v
}

// routeVerdicts remembers authorizationIsAPIKey's answer by path: the tables are matched in
// interpreted code (about a tenth of a cache miss's cost under Yaegi), and clients send the
// same few paths again and again. Bounded in paths and path length; once full it takes no
// more, so a client sending many paths costs the match, as it would without it.
type routeVerdicts struct {
	mu sync.RWMutex
	m  map[string]bool
}

const (
	maxRouteVerdicts  = 4096
	maxRouteVerdictOf = 256 // bytes of path
)

func newRouteVerdicts() *routeVerdicts { return &routeVerdicts{m: map[string]bool{}} }

// rememberRouteVerdict remembers path's answer while there is room.
func rememberRouteVerdict(rv *routeVerdicts, path string, verdict bool) {
	if len(path) > maxRouteVerdictOf {
		return
	}
	rv.mu.Lock()
	if len(rv.m) < maxRouteVerdicts {
		rv.m[path] = verdict
	}
	rv.mu.Unlock()
}

// hasEncodedSeparator reports whether an escaped path spells "/" or "\" as %2F or %5C: a
// path New API's router would split differently from how a client or proxy that reads the
// escaped form would. No New API client sends one.
func hasEncodedSeparator(rawPath string) bool {
	for i := 0; i+2 < len(rawPath); i++ {
		if rawPath[i] == '%' {
			if hex := rawPath[i+1 : i+3]; strings.EqualFold(hex, "2f") || strings.EqualFold(hex, "5c") {
				return true
			}
		}
	}
	return false
}
