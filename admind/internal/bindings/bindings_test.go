package bindings

import (
	"net/netip"
	"testing"
	"time"
)

// The plugin parses these exact strings (plugin/binding_test.go, TestParseAdmindEntries).
func TestCacheEntryWireFormat(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		b    Binding
		want string
	}{
		{Binding{Status: StatusActive, Mode: ModeSingle, CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "v1|active|single|127.0.0.2/32"},
		{Binding{Status: StatusBanned, Mode: ModeMultiple, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/64")}}, "v1|banned|multiple|10.0.0.0/8,2001:db8::/64"},
		{Binding{Status: StatusActive, Mode: ModeAll}, "v1|active|all|"},
		// A learning rule is "learning" while it may learn, and the "multiple" it holds after.
		{Binding{Status: StatusActive, Mode: ModeLearning, LearnSlots: 2, LearnUntil: now.Add(time.Hour), CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "v1|active|learning|127.0.0.2/32"},
		{Binding{Status: StatusActive, Mode: ModeLearning, LearnSlots: 1, LearnUntil: now.Add(time.Hour), CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "v1|active|multiple|127.0.0.2/32"},
		{Binding{Status: StatusActive, Mode: ModeLearning, LearnSlots: 2, LearnUntil: now, CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "v1|active|multiple|127.0.0.2/32"},
		{Binding{Status: StatusBanned, Mode: ModeLearning, LearnSlots: 2, LearnUntil: now.Add(time.Hour), CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "v1|banned|multiple|127.0.0.2/32"},
		// Pre-bound and never used: "learning" with no address, decided by admind, open or not.
		{Binding{Status: StatusActive, Mode: ModeLearning, LearnSlots: 2, LearnUntil: now.Add(time.Hour)}, "v1|active|learning|"},
		{Binding{Status: StatusActive, Mode: ModeLearning, LearnSlots: 2, LearnUntil: now}, "v1|active|learning|"},
	}
	for _, tt := range tests {
		if got := tt.b.CacheEntry(now); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestFirstUsePrefix(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"203.0.113.7", "203.0.113.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		if got := FirstUsePrefix(netip.MustParseAddr(tt.ip), 32, 64).String(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.ip, got, tt.want)
		}
	}
	if got := FirstUsePrefix(netip.MustParseAddr("203.0.113.7"), 24, 64).String(); got != "203.0.113.0/24" {
		t.Errorf("configured /24: %s", got)
	}
}
