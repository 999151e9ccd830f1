package plugin

import (
	"encoding/hex"
	"net/netip"
	"os"
	"strings"
)

// Files the Linux kernel lists its routes in; variables so tests can point them elsewhere.
var (
	routeFileV4 = "/proc/net/route"
	routeFileV6 = "/proc/net/ipv6_route"
)

// defaultGateways returns the next hops of the default routes (IPv4 and IPv6) of the network
// namespace Traefik runs in. In a Docker container that is the bridge network's gateway, the
// address the engine's userland proxy (IPv6 to an IPv4-only container, connections to
// localhost) connects from: a relay, never a client. Missing or unreadable files (not Linux)
// give nothing.
func defaultGateways() []netip.Prefix {
	var out []netip.Prefix
	if data, err := os.ReadFile(routeFileV4); err == nil {
		out = append(out, parseRouteV4(string(data))...)
	}
	if data, err := os.ReadFile(routeFileV6); err == nil {
		out = append(out, parseRouteV6(string(data))...)
	}
	return out
}

// parseRouteV4 reads /proc/net/route: a header line, then "Iface Destination Gateway Flags
// ..." with addresses as 8 hex digits in the host's (little-endian) byte order.
func parseRouteV4(data string) []netip.Prefix {
	var out []netip.Prefix
	for i, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue // the header, or not a default route (destination and mask 0)
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
		if !a.IsUnspecified() {
			out = appendPrefix(out, netip.PrefixFrom(a, 32))
		}
	}
	return out
}

// parseRouteV6 reads /proc/net/ipv6_route: "dest dest_len src src_len next_hop metric refcnt
// use flags iface", addresses as 32 hex digits in network order.
func parseRouteV6(data string) []netip.Prefix {
	var out []netip.Prefix
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			continue
		}
		var a16 [16]byte
		copy(a16[:], b)
		a := netip.AddrFrom16(a16)
		if !a.IsUnspecified() {
			out = appendPrefix(out, netip.PrefixFrom(a, 128))
		}
	}
	return out
}

func appendPrefix(list []netip.Prefix, p netip.Prefix) []netip.Prefix {
	for _, q := range list {
		if q == p {
			return list
		}
	}
	return append(list, p)
}
