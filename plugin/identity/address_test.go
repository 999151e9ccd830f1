package identity

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefixes(t *testing.T, list ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseAddressList("trustedProxies", list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientIP(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8", "fd00::/8")
	tests := []struct {
		desc    string
		remote  string
		trusted []netip.Prefix
		headers map[string][]string
		want    string
		wantErr bool
	}{
		{desc: "untrusted peer ignores every forwarding header", remote: "203.0.113.9:5000", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"1.1.1.1"}, "X-Real-Ip": {"2.2.2.2"}, "Forwarded": {"for=3.3.3.3"}, "X_forwarded_for": {"4.4.4.4"}},
			want:    "203.0.113.9"},
		{desc: "no trusted proxies configured", remote: "127.0.0.2:1", trusted: nil,
			headers: map[string][]string{"X-Forwarded-For": {"1.1.1.1"}}, want: "127.0.0.2"},
		{desc: "trusted peer, single hop", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.7"}}, want: "198.51.100.7"},
		{desc: "victim spoofed on the left, attacker appended by proxy", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"192.0.2.1, 198.51.100.66"}}, want: "198.51.100.66"},
		{desc: "walk skips trusted hops right to left", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"192.0.2.1, 198.51.100.66, 10.1.1.1, 10.2.2.2"}}, want: "198.51.100.66"},
		{desc: "several header lines are one chain", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"192.0.2.1", "198.51.100.5, 10.9.9.9", "10.8.8.8"}}, want: "198.51.100.5"},
		{desc: "all hops trusted: leftmost", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"10.3.3.3, 10.2.2.2"}}, want: "10.3.3.3"},
		{desc: "trusted peer without header names no client", remote: "10.0.0.1:1", trusted: trusted, wantErr: true},
		{desc: "X-Real-IP never trusted", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Real-Ip": {"198.51.100.1"}, "X-Forwarded-For": {"10.0.0.9"}}, want: "10.0.0.9"},
		{desc: "mapped IPv4 peer is unmapped", remote: "[::ffff:203.0.113.7]:443", want: "203.0.113.7"},
		{desc: "mapped IPv4 hop is unmapped", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"::ffff:203.0.113.7"}}, want: "203.0.113.7"},
		{desc: "zone dropped from peer", remote: "[fe80::1%eth0]:80", want: "fe80::1"},
		{desc: "zone dropped from hop", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"fe80::1%eth0"}}, want: "fe80::1"},
		{desc: "IPv6 peer", remote: "[2001:db8::1]:80", want: "2001:db8::1"},
		{desc: "bad hop left of the client is never read", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {"unknown, 198.51.100.1"}}, want: "198.51.100.1"},
		{desc: "unknown", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"unknown"}}, wantErr: true},
		{desc: "empty hop", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4, "}}, wantErr: true},
		{desc: "empty header", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {""}}, wantErr: true},
		{desc: "octal-looking", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"010.1.1.1"}}, wantErr: true},
		{desc: "short form", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"127.1"}}, wantErr: true},
		{desc: "hex form", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"0x7f.1"}}, wantErr: true},
		{desc: "port", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4:80"}}, wantErr: true},
		{desc: "bracketed", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"[2001:db8::1]"}}, wantErr: true},
		{desc: "tab", remote: "10.0.0.1:1", trusted: trusted, headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4\t"}}, wantErr: true},
		{desc: "10 000 entries", remote: "10.0.0.1:1", trusted: trusted,
			headers: map[string][]string{"X-Forwarded-For": {strings.Repeat("10.0.0.2,", 9999) + "10.0.0.2"}}, wantErr: true},
		{desc: "unparseable peer", remote: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, "http://sentinel.test/v1/models", nil)
		req.RemoteAddr = tt.remote
		for k, vs := range tt.headers {
			req.Header[k] = vs
		}
		got, err := ClientIP(req, tt.trusted)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: want error, got %s", tt.desc, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", tt.desc, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("%s: got %s, want %s", tt.desc, got, tt.want)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.0.0.5", want: "10.0.0.5/32"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "10.0.0.5/24", wantErr: "did you mean 10.0.0.0/24"},
		{in: "10.0.0.0/08", wantErr: "not a valid CIDR"},
		{in: "10.0.0.0/33", wantErr: "not a valid CIDR"},
		{in: "nonsense", wantErr: "not an IP address or CIDR"},
		{in: "fe80::1%eth0", wantErr: "not an IP address or CIDR"},
	}
	for _, tt := range tests {
		got, err := ParseAddressList("trustedProxies", []string{tt.in})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: want error containing %q, got %v", tt.in, tt.wantErr, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].String() != tt.want {
			t.Errorf("%q: got %v %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

// A trusted peer without X-Forwarded-For names no client: its own address comes back with
// ErrUnnamedClient (the gate refuses it; admind takes it as the client).
func TestClientIPUnnamedClient(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8")
	req, _ := http.NewRequest(http.MethodGet, "http://sentinel.test/v1/models", nil)
	req.RemoteAddr = "10.0.0.1:1"
	if a, err := ClientIP(req, trusted); err != ErrUnnamedClient || a.String() != "10.0.0.1" {
		t.Fatalf("ClientIP: %v %v, want 10.0.0.1 ErrUnnamedClient", a, err)
	}
}
