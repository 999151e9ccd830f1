package bindings

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	many := make([]string, MaxRuleEntries+1)
	for i := range many {
		many[i] = "10.0." + strconv.Itoa(i) + ".0/24"
	}
	tests := []struct {
		desc    string
		mode    Mode
		entries []string
		want    string // joined prefixes, or the error text to find
		wantErr bool
	}{
		{"single IPv4 address", ModeSingle, []string{"203.0.113.7"}, "203.0.113.7/32", false},
		{"single CIDR", ModeSingle, []string{"192.168.1.0/24"}, "192.168.1.0/24", false},
		{"single IPv6 address", ModeSingle, []string{" 2001:db8::1 "}, "2001:db8::1/128", false},
		{"multiple v4 and v6 mixed", ModeMultiple, []string{"10.0.0.0/8", "2001:db8:1:2::/64", "127.0.0.2"}, "10.0.0.0/8,2001:db8:1:2::/64,127.0.0.2/32", false},
		{"all", ModeAll, nil, "", false},
		{"0.0.0.0/0 as single", ModeSingle, []string{"0.0.0.0/0"}, `"0.0.0.0/0" allows every address; use the rule "all"`, true},
		{"::/0 in multiple", ModeMultiple, []string{"10.0.0.0/8", "::/0"}, `"::/0" allows every address`, true},
		{"host bits set", ModeSingle, []string{"10.0.0.5/24"}, `"10.0.0.5/24" has host bits set; did you mean 10.0.0.0/24?`, true},
		{"not an address", ModeMultiple, []string{"10.0.0.1", "bogus"}, `"bogus" is not an IP address or CIDR`, true},
		{"leading zeros", ModeSingle, []string{"010.1.1.1"}, `"010.1.1.1" is not an IP address`, true},
		{"short IPv4", ModeSingle, []string{"127.1"}, `"127.1" is not an IP address`, true},
		{"bad prefix length", ModeSingle, []string{"10.0.0.0/33"}, `"10.0.0.0/33" is not a valid CIDR`, true},
		{"zone", ModeSingle, []string{"fe80::1%eth0"}, `"fe80::1%eth0" has a zone`, true},
		{"mapped address", ModeSingle, []string{"::ffff:203.0.113.7"}, "write 203.0.113.7", true},
		{"duplicate", ModeMultiple, []string{"10.0.0.1", "10.0.0.1/32"}, `"10.0.0.1/32" is listed twice`, true},
		{"single with two", ModeSingle, []string{"10.0.0.1", "10.0.0.2"}, "exactly one", true},
		{"single with none", ModeSingle, nil, "exactly one", true},
		{"multiple with none", ModeMultiple, []string{}, "at least one", true},
		{"all with addresses", ModeAll, []string{"10.0.0.1"}, `"all" takes no addresses`, true},
		{"too many", ModeMultiple, many, "at most 64 entries", true},
		{"unknown mode", Mode("any"), []string{"10.0.0.1"}, `rule mode must be`, true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := ParseRule(tt.mode, tt.entries)
			if tt.wantErr {
				var input *InputError
				if !errors.As(err, &input) || !strings.Contains(input.Message, tt.want) {
					t.Fatalf("error %v, want an InputError containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, ",") != tt.want || got == nil {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
}

// class C, docs/testing.md: CIDR edges, mixed families, all.
func TestRuleAllows(t *testing.T) {
	tests := []struct {
		mode    Mode
		entries []string
		ip      string
		want    bool
	}{
		{ModeSingle, []string{"192.168.1.0/24"}, "192.168.1.0", true},
		{ModeSingle, []string{"192.168.1.0/24"}, "192.168.1.255", true},
		{ModeSingle, []string{"192.168.1.0/24"}, "192.168.2.0", false},
		{ModeSingle, []string{"192.168.1.0/24"}, "192.168.0.255", false},
		{ModeSingle, []string{"203.0.113.7"}, "203.0.113.8", false},
		{ModeMultiple, []string{"10.0.0.0/8", "2001:db8::/64"}, "2001:db8::ffff", true},
		{ModeMultiple, []string{"10.0.0.0/8", "2001:db8::/64"}, "2001:db8:0:1::1", false},
		{ModeMultiple, []string{"10.0.0.0/8", "2001:db8::/64"}, "11.0.0.0", false},
		{ModeAll, nil, "198.51.100.1", true},
		{ModeAll, nil, "::1", true},
	}
	for _, tt := range tests {
		cidrs, err := ParseRule(tt.mode, tt.entries)
		if err != nil {
			t.Fatal(err)
		}
		b := Binding{Mode: tt.mode, CIDRs: cidrs}
		if got := b.Allows(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("%s %v allows %s = %v, want %v", tt.mode, tt.entries, tt.ip, got, tt.want)
		}
	}
}

// FuzzParseRule: rule input comes from the admin API. Whatever it is, ParseRule either
// refuses it with an InputError or returns canonical, non-catch-all prefixes that survive the
// trip through the cache entry the plugin parses.
func FuzzParseRule(f *testing.F) {
	f.Add("single", "203.0.113.7")
	f.Add("multiple", "10.0.0.0/8,2001:db8::/64")
	f.Add("single", "0.0.0.0/0")
	f.Add("all", "")
	f.Add("multiple", "::ffff:1.2.3.4/120,fe80::1%eth0")
	f.Fuzz(func(t *testing.T, mode, list string) {
		var entries []string
		if list != "" {
			entries = strings.Split(list, ",")
		}
		got, err := ParseRule(Mode(mode), entries)
		if err != nil {
			var input *InputError
			if !errors.As(err, &input) {
				t.Fatalf("not an InputError: %v", err)
			}
			return
		}
		for _, p := range got {
			if !p.IsValid() || p.Masked() != p || p.Bits() == 0 || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				t.Fatalf("accepted a non-canonical prefix %v from %q", p, list)
			}
			if back, err := netip.ParsePrefix(p.String()); err != nil || back != p {
				t.Fatalf("%v does not round-trip: %v", p, err)
			}
		}
	})
}
