// Package netguard keeps admind's outbound requests (alert webhooks) away from the addresses
// of its own network: an admin token, stolen or not, must not turn admind into a way to reach
// the services beside it (Redis, PostgreSQL, cloud metadata at 169.254.169.254, New API's
// internals). Operators whose receiver is on such an address allow it explicitly
// (ALERT_WEBHOOK_ALLOW_PRIVATE).
package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrForbidden is the answer for an address of admind's own network.
var ErrForbidden = errors.New("the webhook address is loopback, private, link-local or otherwise internal; set ALERT_WEBHOOK_ALLOW_PRIVATE=true to allow it")

var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT (RFC 6598)

// Internal reports whether a is not a public unicast address.
func Internal(a netip.Addr) bool {
	a = a.Unmap()
	return !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		sharedAddressSpace.Contains(a) || (a.Is4() && a.As4()[0] == 0)
}

// CheckURL refuses, before anything is sent, a URL whose host is an internal address literal
// or localhost. Names are checked when they are dialed (Client), where the address is known.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return ErrForbidden
	}
	if a, err := netip.ParseAddr(host); err == nil && Internal(a) {
		return ErrForbidden
	}
	return nil
}

// Client is an HTTP client that never follows redirects and, unless allowInternal, refuses
// to connect to an internal address: the check runs on the address actually dialed, after
// name resolution, so a name that resolves (or re-resolves) to one is refused too. Through a
// proxy from the environment, the proxy is dialed unchecked and the target's name is resolved
// and checked before the request instead (CheckTarget), as the proxy will resolve it itself.
func Client(timeout time.Duration, allowInternal bool) *http.Client {
	d := dialer(timeout, allowInternal, proxyAddrs())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Dialer dials with a timeout and, unless allowInternal, refuses an internal address, checked
// on the address actually dialed (the alert e-mail's SMTP server).
func Dialer(timeout time.Duration, allowInternal bool) *net.Dialer {
	return dialer(timeout, allowInternal, nil)
}

// dialer is Dialer that lets the addresses in exempt (the proxies) through.
func dialer(timeout time.Duration, allowInternal bool, exempt map[string]bool) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if !allowInternal {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			if exempt[address] {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil || Internal(ap.Addr()) {
				return ErrForbidden
			}
			return nil
		}
	}
	return d
}

// CheckTarget, for a request that goes through a proxy, resolves the target's name and
// refuses it when any of its addresses is internal. Direct requests are checked as dialed.
// The caller has checked the URL itself with CheckURL.
func CheckTarget(ctx context.Context, req *http.Request) error {
	if p, err := http.ProxyFromEnvironment(req); err != nil || p == nil {
		return err
	}
	host := req.URL.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // a literal, checked by CheckURL
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil // the proxy may resolve what we cannot; it answers for that name
	}
	for _, a := range addrs {
		if Internal(a) {
			return ErrForbidden
		}
	}
	return nil
}

// proxyAddrs are the host:port of the proxies the environment names, which the dialer lets
// through (the targets behind them are checked by CheckTarget).
func proxyAddrs() map[string]bool {
	out := map[string]bool{}
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		raw := os.Getenv(name)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443"}[u.Scheme]
			if port == "" {
				port = "80"
			}
		}
		for _, a := range resolve(u.Hostname()) {
			out[net.JoinHostPort(a, port)] = true
		}
	}
	return out
}

func resolve(host string) []string {
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{host}
	}
	addrs, err := net.LookupHost(host) //nolint:gosec // G704: resolving is how the guard checks the target
	if err != nil {
		return nil
	}
	return addrs
}
