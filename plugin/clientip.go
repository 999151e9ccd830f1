package plugin

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds the X-Forwarded-For chain we accept from a trusted proxy. Real
// chains are a handful of hops; a longer one is an attack or a misconfiguration.
const maxForwardedHops = 32

var (
	errBadPeer   = errors.New("unparseable peer address")
	errBadHop    = errors.New("malformed X-Forwarded-For hop")
	errLongChain = errors.New("X-Forwarded-For chain too long")
	// errUnnamedClient: the peer is a trusted proxy that sent no X-Forwarded-For, so the only
	// address known is the proxy's own.
	errUnnamedClient = errors.New("a trusted proxy sent no X-Forwarded-For")
	headerXFFName    = http.CanonicalHeaderKey("X-Forwarded-For")
)

// ClientIP is clientIP for admind, which resolves admin clients behind Traefik the same way;
// a trusted peer that names no client is taken as the client there (health checks, tools on
// the sentinel network), since admind binds nothing to it.
func ClientIP(req *http.Request, trusted []netip.Prefix) (netip.Addr, error) {
	a, err := clientIP(req, trusted)
	if err == errUnnamedClient {
		return a, nil
	}
	return a, err
}

// clientIP returns the client's address: the peer itself unless the peer is a trusted proxy,
// in which case X-Forwarded-For (every header line, joined) is walked right to left and the
// first address outside trustedProxies is the client. X-Real-IP is never read: Traefik passes
// a client-sent one through unchanged from trusted peers. A trusted peer without
// X-Forwarded-For gives its own address and errUnnamedClient.
func clientIP(req *http.Request, trusted []netip.Prefix) (netip.Addr, error) {
	peer, err := parsePeer(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(trusted) == 0 || !inPrefixes(peer, trusted) {
		return peer, nil
	}
	lines := req.Header[headerXFFName]
	if len(lines) == 0 {
		return peer, errUnnamedClient
	}
	hops := 0
	for _, line := range lines {
		hops += strings.Count(line, ",") + 1
	}
	if hops > maxForwardedHops {
		return netip.Addr{}, errLongChain
	}
	var leftmost netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for {
			hop := rest
			rest = ""
			more := false
			if j := strings.LastIndexByte(hop, ','); j >= 0 {
				rest = hop[:j]
				hop = hop[j+1:]
				more = true
			}
			a, err := parseHop(hop)
			if err != nil {
				return netip.Addr{}, err
			}
			if !inPrefixes(a, trusted) {
				return a, nil
			}
			leftmost = a
			if !more {
				break
			}
		}
	}
	return leftmost, nil // every hop is a trusted proxy: the leftmost is the client
}

// parsePeer parses req.RemoteAddr ("ip:port"); tests and some servers give a bare address.
func parsePeer(remote string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remote)
	if err == nil {
		return canonicalAddr(ap.Addr()), nil
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return netip.Addr{}, errBadPeer
	}
	return canonicalAddr(a), nil
}

// parseHop parses one X-Forwarded-For entry strictly: only surrounding spaces are allowed,
// no ports, no brackets, no octal or shortened IPv4 forms (netip refuses those).
func parseHop(hop string) (netip.Addr, error) {
	hop = strings.Trim(hop, " ")
	a, err := netip.ParseAddr(hop)
	if err != nil {
		return netip.Addr{}, errBadHop
	}
	return canonicalAddr(a), nil
}

// canonicalAddr unmaps IPv4-mapped IPv6 and drops zones so one client has one spelling.
func canonicalAddr(a netip.Addr) netip.Addr {
	if a.Is4In6() {
		return a.Unmap()
	}
	if a.Zone() != "" {
		return a.WithZone("")
	}
	return a
}

func inPrefixes(a netip.Addr, list []netip.Prefix) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
