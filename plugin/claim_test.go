package plugin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// claimHarness is a gate in front of next, with a fake admind that claims unbound keys.
func claimHarness(t *testing.T, next http.Handler) (*fakeAdmind, http.Handler) {
	t.Helper()
	f := &fakeAdmind{bound: map[string]string{}, claimed: map[string]string{}, claims: true}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	secret := filepath.Join(t.TempDir(), "hmac")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Setenv("SENTINEL_TEST_INTERNAL_TOKEN", "internal-token-for-tests")
	t.Cleanup(func() { os.Unsetenv("SENTINEL_TEST_INTERNAL_TOKEN") })
	c := CreateConfig()
	c.AdmindURL, c.HMACSecretFile, c.InternalTokenEnv = srv.URL, secret, "SENTINEL_TEST_INTERNAL_TOKEN"
	harnessSeq++
	h, err := New(context.Background(), next, c, "claim-"+t.Name()+strings.Repeat("x", harnessSeq))
	if err != nil {
		t.Fatal(err)
	}
	return f, h
}

func claimRequest(h http.Handler, from string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
	req.RemoteAddr = from + ":5000"
	req.Header.Set("Authorization", "Bearer sk-claimedkey0123456789")
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)
	return rw
}

// newAPI answers as New API would: status for every request, then a body in two writes.
type newAPI struct{ status int }

func (n *newAPI) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	rw.WriteHeader(n.status)
	_, _ = rw.Write([]byte("data: one\n\n"))
	_, _ = rw.Write([]byte("data: two\n\n"))
}

// A first use binds only when New API served it; while its claim is pending, other addresses
// are refused; a claim New API refused is released, and the key is free for its next user.
func TestFirstUseBindsOnlyWhatNewAPIServes(t *testing.T) {
	upstream := &newAPI{status: http.StatusUnauthorized}
	f, h := claimHarness(t, upstream)

	if rw := claimRequest(h, "127.0.0.2"); rw.Code != http.StatusUnauthorized {
		t.Fatalf("New API's 401 not passed on: %d", rw.Code)
	}
	if f.releases != 1 || f.confirms != 0 || len(f.bound) != 0 || len(f.claimed) != 0 {
		t.Fatalf("refused first use: releases %d confirms %d bound %v claimed %v", f.releases, f.confirms, f.bound, f.claimed)
	}

	upstream.status = http.StatusOK
	rw := claimRequest(h, "127.0.0.3")
	if rw.Code != http.StatusOK || !rw.Flushed || rw.Body.String() != "data: one\n\ndata: two\n\n" {
		t.Fatalf("served first use: %d flushed=%v %q", rw.Code, rw.Flushed, rw.Body)
	}
	if f.confirms != 1 || len(f.bound) != 1 {
		t.Fatalf("served first use not confirmed: confirms %d bound %v", f.confirms, f.bound)
	}
	for _, ip := range f.bound {
		if ip != "127.0.0.3" {
			t.Fatalf("bound to %s", ip)
		}
	}
	if rw := claimRequest(h, "127.0.0.2"); rw.Code != http.StatusForbidden {
		t.Fatalf("another address after the binding: %d", rw.Code)
	}
}

// While a claim waits for New API's answer, another address is refused and the claimant's
// own second request is provisional too.
func TestPendingClaimRefusesOthers(t *testing.T) {
	var inner http.Handler
	var during []int
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Inner") == "" {
			for _, from := range []string{"127.0.0.4", "127.0.0.5"} {
				r := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
				r.RemoteAddr = from + ":1"
				r.Header.Set("Authorization", req.Header.Get("Authorization"))
				r.Header.Set("X-Inner", "1")
				rec := httptest.NewRecorder()
				inner.ServeHTTP(rec, r)
				during = append(during, rec.Code)
			}
		}
		rw.WriteHeader(http.StatusOK)
	})
	f, h := claimHarness(t, next)
	inner = h
	if rw := claimRequest(h, "127.0.0.4"); rw.Code != http.StatusOK {
		t.Fatalf("claimant: %d", rw.Code)
	}
	if len(during) != 2 || during[0] != http.StatusOK || during[1] != http.StatusForbidden {
		t.Fatalf("during the claim: claimant again %v, other address: want [200 403]", during)
	}
	if len(f.bound) != 1 || f.confirms != 2 {
		t.Fatalf("bound %v after %d confirms", f.bound, f.confirms)
	}
}

// A request New API never answered (the client went away) releases its claim.
func TestUnansweredClaimIsReleased(t *testing.T) {
	f, h := claimHarness(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	claimRequest(h, "127.0.0.2")
	if f.releases != 1 || len(f.bound) != 0 || len(f.claimed) != 0 {
		t.Fatalf("releases %d bound %v claimed %v", f.releases, f.bound, f.claimed)
	}
}

// When the confirmation is refused (the claim expired and someone else bound the key while
// New API worked), the client gets 403, not New API's answer.
func TestRefusedConfirmationDropsNewAPIsAnswer(t *testing.T) {
	var f *fakeAdmind
	next := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		for h := range f.claimed {
			delete(f.claimed, h)
			f.bound[h] = "127.0.0.9"
		}
		f.mu.Unlock()
		rw.Header().Set("X-New-Api-Version", "v0")
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write([]byte("the answer"))
	})
	f, h := claimHarness(t, next)
	rw := claimRequest(h, "127.0.0.2")
	if rw.Code != http.StatusForbidden || strings.Contains(rw.Body.String(), "the answer") || rw.Header().Get("X-New-Api-Version") != "" {
		t.Fatalf("%d %v %q, want 403 without New API's answer", rw.Code, rw.Header(), rw.Body)
	}
	if len(f.intercepts) != 1 || f.intercepts[0].Reason != codeIPNotAllowed || f.intercepts[0].IP != "127.0.0.2" {
		t.Fatalf("intercepts %+v, want the refusal recorded", f.intercepts)
	}
}

// An address over its limit of new claims gets 429 with admind's Retry-After, in New API's
// error shape, and the request goes nowhere.
func TestClaimLimitedIs429(t *testing.T) {
	nexts := 0
	f, h := claimHarness(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { nexts++ }))
	f.limited = 17
	rw := claimRequest(h, "127.0.0.2")
	if rw.Code != http.StatusTooManyRequests || rw.Header().Get("Retry-After") != "17" ||
		!strings.Contains(rw.Body.String(), `"code":"claim_rate_limited"`) || nexts != 0 {
		t.Fatalf("%d Retry-After=%q %s (forwarded %d)", rw.Code, rw.Header().Get("Retry-After"), rw.Body, nexts)
	}
}
