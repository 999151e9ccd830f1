package identity

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// MaxForwardedHops bounds the X-Forwarded-For chain accepted from a trusted proxy. Real
// chains are a handful of hops; a longer one is an attack or a misconfiguration.
const MaxForwardedHops = 32

// Why ClientIP found no client address.
var (
	ErrBadPeer   = errors.New("unparseable peer address")
	ErrBadHop    = errors.New("malformed X-Forwarded-For hop")
	ErrLongChain = errors.New("X-Forwarded-For chain too long")
	// ErrUnnamedClient: the peer is a trusted proxy that sent no X-Forwarded-For, so the only
	// address known is the proxy's own (returned with it). The gate refuses such a request;
	// admind, which binds nothing to it, takes the proxy as the client.
	ErrUnnamedClient = errors.New("a trusted proxy sent no X-Forwarded-For")
	headerXFF        = http.CanonicalHeaderKey("X-Forwarded-For")
)

// ClientIP returns the client's address: the peer itself unless the peer is a trusted proxy,
// in which case X-Forwarded-For (every header line, joined) is walked right to left and the
// first address outside trusted is the client. X-Real-IP is never read: Traefik passes a
// client-sent one through unchanged from trusted peers. A trusted peer without
// X-Forwarded-For gives its own address and ErrUnnamedClient; if every hop is trusted, the
// leftmost is the client.
func ClientIP(req *http.Request, trusted []netip.Prefix) (netip.Addr, error) {
	// The usual "ip:port" is parsed here rather than in a function of its own: under Yaegi a
	// call with two results costs every keyed request outside the hot path about 15
	// allocations.
	var peer netip.Addr
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err == nil {
		peer = CanonicalAddr(ap.Addr())
	} else if peer, err = barePeer(req.RemoteAddr); err != nil {
		return netip.Addr{}, err
	}
	if len(trusted) == 0 || !InPrefixes(peer, trusted) {
		return peer, nil
	}
	return forwardedClient(req, peer, trusted)
}

// forwardedClient walks X-Forwarded-For for ClientIP; a function of its own so that the
// common request (a peer that is not a trusted proxy) does not pay, under Yaegi, for the
// frame of the walk.
func forwardedClient(req *http.Request, peer netip.Addr, trusted []netip.Prefix) (netip.Addr, error) {
	lines := req.Header[headerXFF]
	if len(lines) == 0 {
		return peer, ErrUnnamedClient
	}
	hops := 0
	for _, line := range lines {
		hops += strings.Count(line, ",") + 1
	}
	if hops > MaxForwardedHops {
		return netip.Addr{}, ErrLongChain
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
			if !InPrefixes(a, trusted) {
				return a, nil
			}
			leftmost = a
			if !more {
				break
			}
		}
	}
	return leftmost, nil
}

// barePeer parses a RemoteAddr without a port, which tests and some servers give.
func barePeer(remote string) (netip.Addr, error) {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return netip.Addr{}, ErrBadPeer
	}
	return CanonicalAddr(a), nil
}

// parseHop parses one X-Forwarded-For entry strictly: only surrounding spaces are allowed,
// no ports, no brackets, no octal or shortened IPv4 forms (netip refuses those).
func parseHop(hop string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.Trim(hop, " "))
	if err != nil {
		return netip.Addr{}, ErrBadHop
	}
	return CanonicalAddr(a), nil
}

// CanonicalAddr unmaps IPv4-mapped IPv6 and drops zones so one client has one spelling.
func CanonicalAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// InPrefixes reports whether a is in one of list.
func InPrefixes(a netip.Addr, list []netip.Prefix) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseAddressList parses a list of CIDRs and single addresses (the plugin's trustedProxies
// and relayAddresses, admind's ADMIN_TRUSTED_PROXIES); option names the list in errors, and
// every bad entry is reported. Non-canonical CIDRs such as 10.0.0.5/24 are refused rather than
// silently widened or narrowed: the operator meant something and should say it exactly.
func ParseAddressList(option string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, raw := range list {
		v := strings.TrimSpace(raw)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "/") {
			a, err := netip.ParseAddr(v)
			if err != nil || a.Zone() != "" {
				errs = append(errs, fmt.Errorf("%s: %q is not an IP address or CIDR", option, raw))
				continue
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a valid CIDR", option, raw))
			continue
		}
		if p.Masked() != p {
			errs = append(errs, fmt.Errorf("%s: %q has host bits set; did you mean %s?", option, raw, p.Masked()))
			continue
		}
		if p.Addr().Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				errs = append(errs, fmt.Errorf("%s: %q mixes IPv4-mapped and IPv6 ranges", option, raw))
				continue
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}
