package plugin

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	neturl "net/url"
	"strings"
	"testing"
)

var neturlParse = neturl.Parse

// TestHotPathAgreesWithGeneralPath sends every request shape twice, first decided on the
// general path only (which records what the hot path may repeat), then with the hot path
// enabled, and demands the same answer. The keys are bound first, so there are live cache
// entries to use; the shapes marked hot must have left an entry the hot path takes.
func TestHotPathAgreesWithGeneralPath(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TrustedProxies = []string{"10.9.0.0/16"} })
	warm := func(remote, auth string) {
		h.do(remote, map[string]string{"Authorization": auth})
	}
	warm("127.0.0.2:1", "Bearer sk-hotKeyAlpha0123")
	warm("[2001:db8::5]:1", "Bearer hotKeyBravo0123")
	warm("10.9.0.1:1", "Bearer hotKeyProxied0123") // bound through the proxy's forwarded client

	auth := func(v string) map[string]string { return map[string]string{"Authorization": v} }
	shapes := []hotShape{
		{"bound, Bearer sk-", "127.0.0.2:9", "/v1/chat/completions", auth("Bearer sk-hotKeyAlpha0123"), true},
		{"bound, bearer, channel suffix", "127.0.0.2:9", "/v1/chat/completions", auth("bearer hotKeyAlpha0123-7"), true},
		{"bound, bare value", "127.0.0.2:9", "/v1/models", auth("hotKeyAlpha0123"), true},
		{"bound, other address", "127.0.0.3:9", "/v1/chat/completions", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"bound, mapped address", "[::ffff:127.0.0.2]:9", "/v1/chat/completions", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"bound, bare peer", "127.0.0.2", "/v1/chat/completions", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"bound, zone", "[fe80::1%eth0]:9", "/v1/chat/completions", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"IPv6 bound", "[2001:db8::5]:9", "/v1/chat/completions", auth("Bearer sk-hotKeyBravo0123"), true},
		{"IPv6 other", "[2001:db8::6]:9", "/v1/chat/completions", auth("Bearer sk-hotKeyBravo0123"), false},
		{"trusted proxy peer", "10.9.0.1:9", "/v1/chat/completions", map[string]string{"Authorization": "Bearer hotKeyProxied0123", "X-Forwarded-For": "127.0.0.7"}, false},
		{"dashboard path", "127.0.0.3:9", "/api/user/self", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"dashboard key path", "127.0.0.3:9", "/api/usage/token", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"dot segments into the dashboard", "127.0.0.3:9", "/v1/../api/user", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"prefix look-alike", "127.0.0.3:9", "/apifoo", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"double slash", "127.0.0.3:9", "//v1/chat", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"query key, same", "127.0.0.2:9", "/v1/chat/completions?key=hotKeyAlpha0123", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"query key, different", "127.0.0.2:9", "/v1/chat/completions?key=other", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"second carrier differs", "127.0.0.2:9", "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-hotKeyAlpha0123", "X-Api-Key": "other"}, false},
		{"empty bearer", "127.0.0.2:9", "/v1/chat/completions", auth("Bearer "), false},
		{"midjourney placeholder", "127.0.0.2:9", "/mj/submit", map[string]string{"Authorization": "midjourney-proxy", "Mj-Api-Secret": "hotKeyAlpha0123"}, false},
		{"unknown key", "127.0.0.2:9", "/v1/chat/completions", auth("Bearer sk-neverSeen0123456"), false},
		{"encoded slash, bound address", "127.0.0.2:9", "/v1%2Fchat/completions", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"encoded character, bound address", "127.0.0.2:9", "/v1/chat/%63ompletions", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"case variant, other address", "127.0.0.3:9", "/v1/chat/completions", auth("Bearer sk-HOTKEYALPHA0123"), false},
		{"case variant, bound address", "127.0.0.2:9", "/v1/chat/completions", auth("Bearer sk-HOTKEYALPHA0123"), true},
		{"accented variant, bound address", "127.0.0.2:9", "/v1/chat/completions", auth("Bearer sk-hotKeyAlphá0123"), false},
		{"gin fallback from /api to a key route", "127.0.0.3:9", "/api/mj/submit/imagine", auth("Bearer sk-hotKeyAlpha0123"), false},
		{"uncleaned path into a key route", "127.0.0.3:9", "/v1beta/models/x/../../../api/user/self", auth("Bearer sk-hotKeyAlpha0123"), false},
	}
	agreeOnEveryShape(t, h, shapes)
}

// hotShape is a request TestHotPathAgreesWithGeneralPath sends; hot: the general path must
// leave an entry the hot path takes.
type hotShape struct {
	desc, remote, target string
	headers              map[string]string
	hot                  bool
}

// agreeOnEveryShape sends each shape decided by the general path alone, then with the hot
// path, and demands the same answer.
func agreeOnEveryShape(t *testing.T, h *harness, shapes []hotShape) {
	m := h.handler.(*middleware)
	for _, sh := range shapes {
		answer := func(general bool) (int, int) {
			if general {
				m.cache.forgetHot()
			}
			before := h.nexts
			req := httptest.NewRequest(http.MethodPost, "http://sentinel.test"+sh.target, nil)
			req.RemoteAddr = sh.remote
			for k, v := range sh.headers {
				req.Header.Set(k, v)
			}
			rw := httptest.NewRecorder()
			m.ServeHTTP(rw, req)
			return rw.Code, h.nexts - before
		}
		gCode, gNext := answer(true)
		if sh.hot {
			m.cache.mu.RLock()
			e := m.cache.hot[sh.headers["Authorization"]]
			m.cache.mu.RUnlock()
			if e == nil || !strings.HasPrefix(sh.remote, e.peer) {
				t.Errorf("%s: no hot-path entry for this request (%+v)", sh.desc, e)
			}
		}
		hCode, hNext := answer(false)
		if gCode != hCode || gNext != hNext {
			t.Errorf("%s: general path %d (next %d), hot path %d (next %d)", sh.desc, gCode, gNext, hCode, hNext)
		}
	}
}

// A learning binding: its listed address is hot, a new one is learned (by admind, on the
// general path) and then hot too, and one past its slots is refused on both paths.
func TestHotPathAgreesOnLearningBindings(t *testing.T) {
	h := newHarness(t, nil)
	h.admind.mode, h.admind.learnSlots = "learning", 2
	h.do("127.0.0.2:1", map[string]string{"Authorization": "Bearer sk-hotLearning0123"})
	auth := map[string]string{"Authorization": "Bearer sk-hotLearning0123"}
	agreeOnEveryShape(t, h, []hotShape{
		{"learned first", "127.0.0.2:9", "/v1/chat/completions", auth, true},
		{"learned now", "127.0.0.3:9", "/v1/chat/completions", auth, true},
		{"learned first, again", "127.0.0.2:9", "/v1/chat/completions", auth, true},
		{"past its slots", "127.0.0.4:9", "/v1/chat/completions", auth, false},
		{"learned now, again", "127.0.0.3:9", "/v1/chat/completions", auth, true},
	})
	if got := h.admind.bound; len(got) != 1 {
		t.Fatalf("bindings %v", got)
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		if rw := h.do(ip+":7", auth); rw.Code != http.StatusOK {
			t.Errorf("%s: %d", ip, rw.Code)
		}
	}
	if rw := h.do("127.0.0.4:7", auth); rw.Code != http.StatusForbidden {
		t.Errorf("127.0.0.4: %d", rw.Code)
	}
}

// FuzzHotPathAgrees: for any path, Authorization value and peer address, the hot path gives
// the general path's answer, for a key whose learning rule fills up as the peers vary. The peer is an ip:port as net/http sets RemoteAddr (from the
// socket, never from the request); the hot path compares only its address part.
func FuzzHotPathAgrees(f *testing.F) {
	f.Add("/v1/chat/completions", "Bearer sk-fuzzKeyAlpha0123", "127.0.0.2:1")
	f.Add("/api/../v1/x", "bearer fuzzKeyAlpha0123-3", "[::ffff:127.0.0.2]:1")
	f.Add("/api/usage/token/", "fuzzKeyAlpha0123", "127.0.0.3:1")
	f.Add("/v1", "Bearer  sk-fuzzKeyAlpha0123 ", "[fe80::1%eth0]:1")
	f.Add("/v1/chat/completions", "Bearer sk-FUZZKEYALPHA0123", "127.0.0.2:1")
	h := newHarness(f, nil)
	// A learning rule: the first peers learned, later ones refused, on both paths alike.
	h.admind.mode, h.admind.learnSlots = "learning", 3
	m := h.handler.(*middleware)
	h.do("127.0.0.2:1", map[string]string{"Authorization": "Bearer sk-fuzzKeyAlpha0123"})
	f.Fuzz(func(t *testing.T, path, auth, remote string) {
		// The path as a client spells it: escapes and all, as Traefik hands it on.
		u, err := neturlParse("http://sentinel.test" + path)
		if err != nil || u.Host != "sentinel.test" {
			return
		}
		if _, err := netip.ParseAddrPort(remote); err != nil {
			return
		}
		answer := func(general bool) (int, int) {
			if general {
				m.cache.forgetHot()
			}
			before := h.nexts
			req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/", nil)
			req.URL = u
			req.RemoteAddr = remote
			req.Header.Set("Authorization", auth)
			rw := httptest.NewRecorder()
			m.ServeHTTP(rw, req)
			return rw.Code, h.nexts - before
		}
		gCode, gNext := answer(true)
		hCode, hNext := answer(false)
		if gCode != hCode || gNext != hNext {
			t.Fatalf("path %q auth %q remote %q: general %d/%d, hot %d/%d", path, auth, remote, gCode, gNext, hCode, hNext)
		}
	})
}

// forgetHot empties the hot path's index, so the next request is decided on the general path
// (which records it again).
func (c *bindingCache) forgetHot() {
	c.mu.Lock()
	c.hot = make(map[string]*hotEntry)
	c.mu.Unlock()
}
