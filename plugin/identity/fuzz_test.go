package identity

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP: never panics; the result is an error or a valid, unmapped, zone-free address.
func FuzzClientIP(f *testing.F) {
	for _, seed := range []string{"1.2.3.4", "1.2.3.4, 10.0.0.1", "::ffff:1.2.3.4", "fe80::1%eth0", "unknown", "", "010.1.1.1", ", ,", "1.2.3.4:80"} {
		f.Add("10.0.0.1:1234", seed)
	}
	f.Add("[::1]:80", "2001:db8::1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": strings.Split(xff, "\n")}}
		a, err := ClientIP(req, trusted)
		if err != nil {
			return
		}
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			t.Fatalf("ClientIP(%q, %q) = %v", remote, xff, a)
		}
	})
}
