package bindings

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxRuleEntries bounds a rule: the plugin checks every entry on each request.
const MaxRuleEntries = 64

// InputError is a client mistake; its message is safe to show and names what is wrong.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

func inputErrorf(format string, args ...any) error {
	return &InputError{Message: fmt.Sprintf(format, args...)}
}

// ParseRule validates an admin's rule: "single" takes one address or CIDR, "multiple" one or
// more (IPv4 and IPv6 mixed), "learning" the addresses it starts with (none or more; its
// bounds are checked by setRule), "all" none. Entries must be exact: a CIDR with host bits set,
// a zone, an IPv4-mapped IPv6 address or a duplicate is refused with a message naming it,
// and so is a catch-all prefix (0.0.0.0/0, ::/0), for which "all" is the honest spelling.
func ParseRule(mode Mode, entries []string) ([]netip.Prefix, error) {
	switch mode {
	case ModeAll:
		if len(entries) > 0 {
			return nil, inputErrorf(`rule "all" takes no addresses`)
		}
		return []netip.Prefix{}, nil
	case ModeSingle:
		if len(entries) != 1 {
			return nil, inputErrorf(`rule "single" takes exactly one address or CIDR, got %d`, len(entries))
		}
	case ModeMultiple, ModeLearning:
		if len(entries) == 0 && mode == ModeMultiple {
			return nil, inputErrorf(`rule "multiple" needs at least one address or CIDR`)
		}
		if len(entries) > MaxRuleEntries {
			return nil, inputErrorf("a rule takes at most %d entries, got %d", MaxRuleEntries, len(entries))
		}
	default:
		return nil, inputErrorf(`rule mode must be "single", "multiple", "learning" or "all", got %q`, truncate(string(mode)))
	}
	out := make([]netip.Prefix, 0, len(entries))
	seen := make(map[netip.Prefix]bool, len(entries))
	for _, raw := range entries {
		p, err := parseRuleEntry(raw)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, inputErrorf("%q is listed twice", truncate(raw))
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

func parseRuleEntry(raw string) (netip.Prefix, error) {
	v := strings.TrimSpace(raw)
	shown := truncate(raw)
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Prefix{}, inputErrorf("%q is not an IP address or CIDR", shown)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, inputErrorf("%q has a zone; give the address without %%zone", shown)
		}
		if a.Is4In6() {
			return netip.Prefix{}, inputErrorf("%q is an IPv4-mapped IPv6 address; write %s", shown, a.Unmap())
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, inputErrorf("%q is not a valid CIDR", shown)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, inputErrorf("%q is an IPv4-mapped IPv6 range; write it as IPv4", shown)
	}
	if p.Masked() != p {
		return netip.Prefix{}, inputErrorf("%q has host bits set; did you mean %s?", shown, p.Masked())
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, inputErrorf(`%q allows every address; use the rule "all" instead`, shown)
	}
	return p, nil
}

// truncate keeps echoed input short in error messages.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
