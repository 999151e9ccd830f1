package netguard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestInternal(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
		"0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"} {
		if !Internal(netip.MustParseAddr(s)) {
			t.Errorf("%s is not internal", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "203.0.114.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"} {
		if Internal(netip.MustParseAddr(s)) {
			t.Errorf("%s is internal", s)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:6379/", "http://localhost/x", "http://LOCALHOST./x", "http://a.localhost/", "http://[::1]/",
		"http://169.254.169.254/latest/meta-data/", "https://10.0.0.5/hook", "http://[::ffff:127.0.0.1]/"} {
		if err := CheckURL(u); !errors.Is(err, ErrForbidden) {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"https://hooks.slack.com/services/T/B/x", "https://8.8.8.8/hook"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
}

// The check runs on the address dialed: a name that resolves to loopback is refused as the
// literal is, and nothing reaches the server; allowed, it is delivered.
func TestClientRefusesInternalAddressesAsDialed(t *testing.T) {
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("http_proxy", "")
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer srv.Close()
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, u := range []string{srv.URL, byName} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, u, nil)
		resp, err := Client(time.Second, false).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", u, err)
		}
	}
	if hits != 0 {
		t.Fatalf("%d requests reached the internal server", hits)
	}
	resp, err := Client(time.Second, true).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits != 1 {
		t.Fatalf("allowed: %d requests arrived", hits)
	}
}
