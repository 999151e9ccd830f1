package plugin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeAdmind binds on first use like admind does and records what it was asked.
type fakeAdmind struct {
	mu         sync.Mutex
	bound      map[string]string // key_hash -> ip
	decides    int
	forwarded  int // decides that said the plugin forwards whatever the answer (monitor mode)
	intercepts []decideRequest
	auth       string
	// status, when set, is the answer to every decide; refuseUserAgent answers 400 to a decide
	// that reports a user agent. (Plain fields: under Yaegi a closure stored here and called
	// from the server's goroutine panics.)
	status          int
	refuseUserAgent bool
	// claims: an unbound key is claimed (a provisional answer) and bound only by /confirm,
	// as admind does; claimed maps key_hash -> claimant ip, confirms and releases count.
	claims             bool
	claimed            map[string]string
	confirms, releases int
	limited            int    // when set, every new claim is over the limit: retry after this
	mode               string // the rule mode of the bindings it answers with ("single" when "")
	// learnSlots, with mode "learning": a bound key takes new addresses (bound holds them
	// comma-separated) until it holds this many, as admind's learning rule does.
	learnSlots int
}

const testClaimID = "0123456789abcdef0123456789abcdef"

func (f *fakeAdmind) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = req.Header.Get("Authorization")
	var dr decideRequest
	body, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(body, &dr); err != nil {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	switch req.URL.Path {
	case "/internal/v1/intercepts":
		f.intercepts = append(f.intercepts, dr)
		return
	case "/internal/v1/confirm":
		f.confirms++
		if f.bound[dr.KeyHash] != dr.IP { // not confirmed already (by a concurrent request)
			if dr.Claim != testClaimID || f.claimed[dr.KeyHash] != dr.IP {
				rw.WriteHeader(http.StatusConflict)
				return
			}
			delete(f.claimed, dr.KeyHash)
			f.bound[dr.KeyHash] = dr.IP
		}
		_ = json.NewEncoder(rw).Encode(decideResponse{Allow: true, CacheTTLS: 60,
			Binding: &bindingReply{Status: "active", Mode: "single", CIDRs: []string{dr.IP + "/32"}}})
		return
	case "/internal/v1/release":
		f.releases++
		if dr.Claim == testClaimID {
			delete(f.claimed, dr.KeyHash)
		}
		return
	}
	f.decides++
	if dr.Forwarded {
		f.forwarded++
	}
	if f.status != 0 {
		rw.WriteHeader(f.status)
		return
	}
	if f.refuseUserAgent && dr.UserAgent != "" {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	ip, ok := f.bound[dr.KeyHash]
	if !ok && f.limited > 0 {
		_ = json.NewEncoder(rw).Encode(decideResponse{Reason: codeClaimLimited, Provisional: true, RetryAfterS: f.limited})
		return
	}
	if !ok && f.claims {
		holder, held := f.claimed[dr.KeyHash]
		if !held {
			f.claimed[dr.KeyHash], holder = dr.IP, dr.IP
		}
		resp := decideResponse{Allow: holder == dr.IP, Provisional: true}
		if resp.Allow {
			resp.Claim = testClaimID
		} else {
			resp.Reason = codeIPNotAllowed
		}
		_ = json.NewEncoder(rw).Encode(resp)
		return
	}
	if !ok {
		ip = dr.IP
		f.bound[dr.KeyHash] = ip
	}
	ips := strings.Split(ip, ",")
	if f.mode == "learning" && !slices.Contains(ips, dr.IP) && len(ips) < f.learnSlots {
		ips = append(ips, dr.IP)
		f.bound[dr.KeyHash] = strings.Join(ips, ",")
	}
	// The rule is the bound addresses alone (/32 or /128), and the decision agrees with it,
	// as admind's does.
	var cidrs []string
	for _, a := range ips {
		bits := "/32"
		if strings.Contains(a, ":") {
			bits = "/128"
		}
		cidrs = append(cidrs, a+bits)
	}
	mode := f.mode
	switch {
	case mode == "":
		mode = "single"
	case mode == "learning" && len(ips) >= f.learnSlots:
		mode = "multiple"
	}
	resp := decideResponse{Allow: slices.Contains(ips, dr.IP), Reason: "", CacheTTLS: 60,
		Binding: &bindingReply{Status: "active", Mode: mode, CIDRs: cidrs}}
	if !resp.Allow {
		resp.Reason = codeIPNotAllowed
	}
	_ = json.NewEncoder(rw).Encode(resp)
}

type harness struct {
	admind  *fakeAdmind
	server  *httptest.Server
	handler http.Handler
	nexts   int
}

var harnessSeq int

func newHarness(t testing.TB, tweak func(c *Config)) *harness {
	t.Helper()
	h := &harness{admind: &fakeAdmind{bound: map[string]string{}, claimed: map[string]string{}}}
	h.server = httptest.NewServer(h.admind)
	t.Cleanup(func() { h.server.Close() })
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Set through os (not t.Setenv): under Yaegi, os.Getenv reads the interpreter's copy of
	// the environment, which only the interpreted os.Setenv changes.
	os.Setenv("SENTINEL_TEST_INTERNAL_TOKEN", "internal-token-for-tests")
	t.Cleanup(func() { os.Unsetenv("SENTINEL_TEST_INTERNAL_TOKEN") })
	c := CreateConfig()
	c.AdmindURL = h.server.URL
	c.HMACSecretFile = secret
	c.InternalTokenEnv = "SENTINEL_TEST_INTERNAL_TOKEN"
	if tweak != nil {
		tweak(c)
	}
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		h.nexts++
		rw.WriteHeader(http.StatusOK)
	})
	harnessSeq++
	// A distinct middleware name per test keeps the shared local cache per test.
	handler, err := New(context.Background(), next, c, "test-"+t.Name()+"-"+strings.Repeat("x", harnessSeq))
	if err != nil {
		t.Fatal(err)
	}
	h.handler = handler
	return h
}

func (h *harness) do(remote string, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
	req.RemoteAddr = remote
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rw := httptest.NewRecorder()
	h.handler.ServeHTTP(rw, req)
	return rw
}

func TestServeHTTP(t *testing.T) {
	h := newHarness(t, nil)
	auth := map[string]string{"Authorization": "Bearer sk-firstkey123456789"}

	if rw := h.do("127.0.0.2:4000", auth); rw.Code != http.StatusOK {
		t.Fatalf("first use: %d %s", rw.Code, rw.Body)
	}
	if h.admind.decides != 1 || h.admind.auth != "Bearer internal-token-for-tests" {
		t.Fatalf("admind decides=%d auth=%q", h.admind.decides, h.admind.auth)
	}
	if rw := h.do("127.0.0.2:4001", map[string]string{"X-Api-Key": "firstkey123456789-2"}); rw.Code != http.StatusOK {
		t.Fatalf("same key, same IP: %d", rw.Code)
	}
	if h.admind.decides != 1 {
		t.Fatalf("cache hit asked admind: decides=%d", h.admind.decides)
	}
	rw := h.do("127.0.0.3:4000", auth)
	if rw.Code != http.StatusForbidden {
		t.Fatalf("other IP: %d", rw.Code)
	}
	var body struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(rw.Body.Bytes(), &body); err != nil || body.Error.Code != codeIPNotAllowed || body.Error.Type != "sentinel_error" {
		t.Fatalf("refusal body %s (%v)", rw.Body, err)
	}
	if strings.Contains(rw.Body.String(), "firstkey") {
		t.Fatal("refusal body echoes the key")
	}
	if len(h.admind.intercepts) != 1 || h.admind.intercepts[0].IP != "127.0.0.3" || h.admind.intercepts[0].Reason != codeIPNotAllowed ||
		h.admind.intercepts[0].Forwarded || h.admind.forwarded != 0 {
		t.Fatalf("intercepts %+v", h.admind.intercepts)
	}
	for _, ev := range h.admind.intercepts {
		if strings.Contains(ev.KeyHash+ev.KeyHint+ev.Path, "firstkey") || len(ev.KeyHash) != 64 {
			t.Fatalf("intercept leaks the key or lacks the hash: %+v", ev)
		}
	}
	if h.nexts != 2 {
		t.Fatalf("next called %d times, want 2", h.nexts)
	}
}

func TestServeHTTPRefusals(t *testing.T) {
	tests := []struct {
		desc     string
		tweak    func(c *Config)
		admindUp bool
		remote   string
		headers  map[string]string
		wantCode int
		wantNext bool
	}{
		{desc: "no key passes untouched", admindUp: true, remote: "127.0.0.2:1", wantCode: 200, wantNext: true},
		{desc: "no key refused when required", tweak: func(c *Config) { c.RequireKey = true }, admindUp: true, remote: "127.0.0.2:1", wantCode: 401},
		{desc: "ambiguous key", admindUp: true, remote: "127.0.0.2:1",
			headers: map[string]string{"Authorization": "Bearer aaaa", "X-Api-Key": "bbbb"}, wantCode: 400},
		{desc: "bad forwarded chain from a trusted peer", tweak: func(c *Config) { c.TrustedProxies = []string{"127.0.0.0/8"} },
			admindUp: true, remote: "127.0.0.2:1", headers: map[string]string{"Authorization": "Bearer aaaa", "X-Forwarded-For": "unknown"}, wantCode: 400},
		{desc: "admind down, closed", admindUp: false, remote: "127.0.0.2:1", headers: map[string]string{"Authorization": "Bearer aaaa"}, wantCode: 503},
		{desc: "admind down, open", tweak: func(c *Config) { c.FailsafeMode = "open" }, admindUp: false, remote: "127.0.0.2:1",
			headers: map[string]string{"Authorization": "Bearer aaaa"}, wantCode: 200, wantNext: true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			h := newHarness(t, tt.tweak)
			if !tt.admindUp {
				h.server.Close()
			}
			rw := h.do(tt.remote, tt.headers)
			if rw.Code != tt.wantCode || (h.nexts == 1) != tt.wantNext {
				t.Fatalf("status %d next=%d; want %d next=%v (%s)", rw.Code, h.nexts, tt.wantCode, tt.wantNext, rw.Body)
			}
		})
	}
}

func TestMonitorModeNeverBlocks(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Mode = "monitor" })
	auth := map[string]string{"Authorization": "Bearer monitoredkey"}
	h.do("127.0.0.2:1", auth)
	if rw := h.do("127.0.0.3:1", auth); rw.Code != http.StatusOK {
		t.Fatalf("monitor mode blocked: %d", rw.Code)
	}
	if len(h.admind.intercepts) != 1 {
		t.Fatalf("monitor mode did not record the intercept: %d", len(h.admind.intercepts))
	}
	// admind records what it refuses on a decide itself: it must know the request goes on.
	if !h.admind.intercepts[0].Forwarded || h.admind.forwarded != h.admind.decides || h.admind.decides == 0 {
		t.Fatalf("monitor mode's reports do not say the request was forwarded: intercept %+v, %d of %d decides",
			h.admind.intercepts[0], h.admind.forwarded, h.admind.decides)
	}
}

func TestRedisEntryDecidesWithoutAdmind(t *testing.T) {
	entry := "v1|active|single|10.1.2.3/32"
	addr, cmds := fakeRedis(t, []string{bulk(entry), "$3\r\n1-1\r\n"})
	h := newHarness(t, func(c *Config) { c.RedisAddr = addr })
	rw := h.do("127.0.0.9:1", map[string]string{"Authorization": "Bearer rediskey"})
	if rw.Code != http.StatusForbidden || h.admind.decides != 0 {
		t.Fatalf("status %d, admind decides %d", rw.Code, h.admind.decides)
	}
	get := <-cmds
	if get[0] != "GET" || !strings.HasPrefix(get[1], "sentinel:b:") || len(get[1]) != len("sentinel:b:")+64 {
		t.Fatalf("lookup %q", get)
	}
	xadd := <-cmds
	if xadd[0] != "XADD" || xadd[1] != "sentinel:events" || strings.Contains(strings.Join(xadd, " "), "rediskey") {
		t.Fatalf("intercept event %q", xadd)
	}
}

// A learning binding decides the addresses it lists alone, and asks admind about any other
// (admind may learn it), whether the binding came from Redis or from the local cache.
func TestLearningBindingAsksAdmindForNewAddresses(t *testing.T) {
	addr, _ := fakeRedis(t, []string{bulk("v1|active|learning|10.1.2.3/32"), "$3\r\n1-1\r\n"})
	h := newHarness(t, func(c *Config) { c.RedisAddr = addr })
	// From Redis: an address it lacks goes to admind, which (as a fake) binds and allows it.
	if rw := h.do("127.0.0.9:1", map[string]string{"Authorization": "Bearer learnkey"}); rw.Code != http.StatusOK || h.admind.decides != 1 {
		t.Fatalf("new address: status %d, admind decides %d", rw.Code, h.admind.decides)
	}

	h = newHarness(t, nil)
	h.admind.mode, h.admind.learnSlots = "learning", 2
	if rw := h.do("127.0.0.1:1", map[string]string{"Authorization": "Bearer learnkey2"}); rw.Code != http.StatusOK || h.admind.decides != 1 {
		t.Fatalf("first use: status %d, admind decides %d", rw.Code, h.admind.decides)
	}
	// From the local cache: the listed address is decided without admind, another is asked.
	if rw := h.do("127.0.0.1:2", map[string]string{"Authorization": "Bearer learnkey2"}); rw.Code != http.StatusOK || h.admind.decides != 1 {
		t.Fatalf("listed address: status %d, admind decides %d", rw.Code, h.admind.decides)
	}
	if rw := h.do("127.0.0.2:1", map[string]string{"Authorization": "Bearer learnkey2"}); rw.Code != http.StatusOK || h.admind.decides != 2 {
		t.Fatalf("another address: status %d, admind decides %d (admind learns it)", rw.Code, h.admind.decides)
	}
	// Full now: admind's answer says "multiple", and a third address is refused here.
	if rw := h.do("127.0.0.3:1", map[string]string{"Authorization": "Bearer learnkey2"}); rw.Code != http.StatusForbidden || h.admind.decides != 2 {
		t.Fatalf("past the slots: status %d, admind decides %d", rw.Code, h.admind.decides)
	}
}

// The package's unit tests run the background loop's work (poll, flush) themselves, against
// scripted Redis replies.
func init() { backgroundLoops = false }

// The failsafe mode admind publishes in sentinel:settings overrides the option: with Redis
// holding no entry for a new key and admind down, "open" forwards and "closed" answers 503.
func TestPublishedFailsafeModeApplies(t *testing.T) {
	tests := []struct {
		desc      string
		option    string
		published string
		wantCode  int
	}{
		{"published open beats option closed", "closed", bulk(`{"failsafe_mode":"open","archive_days":30}`), http.StatusOK},
		{"published closed beats option open", "open", bulk(`{"failsafe_mode":"closed"}`), http.StatusServiceUnavailable},
		{"nothing published: option closed", "closed", "$-1\r\n", http.StatusServiceUnavailable},
		{"unreadable: option open", "open", bulk(`{"failsafe_mode":`), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			// The background loop's poll (generation, settings), then the key's lookup.
			addr, _ := fakeRedis(t, []string{"$-1\r\n", tt.published, "$-1\r\n"})
			h := newHarness(t, func(c *Config) { c.RedisAddr = addr; c.FailsafeMode = tt.option })
			h.server.Close()
			r := h.handler.(*middleware).redis
			r.runtime.poll(r, cacheClock())
			rw := h.do("127.0.0.9:1", map[string]string{"Authorization": "Bearer failsafekey"})
			if rw.Code != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", rw.Code, tt.wantCode, rw.Body)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	c := CreateConfig()
	c.AdmindURL = "ftp://x"
	c.FailsafeMode = "maybe"
	c.CacheTTL = "soon"
	c.TrustedProxies = []string{"10.0.0.5/24"}
	_, err := New(context.Background(), http.NotFoundHandler(), c, "bad")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"admindURL", "failsafeMode", "cacheTTL", "10.0.0.0/24", "hmacSecret is required", "internalToken is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

// A secret that cannot be read fails New (so Traefik serves no router with the middleware),
// unless missingSecrets is "refuse": then every request is refused with 503. Neither setting
// lets a misconfiguration through.
func TestMissingSecrets(t *testing.T) {
	config := func(missing string) *Config {
		c := CreateConfig()
		c.AdmindURL = "http://127.0.0.1:9"
		c.InternalTokenFile = filepath.Join(t.TempDir(), "absent")
		c.HMACSecretEnv = "SENTINEL_TEST_UNSET_VARIABLE"
		c.MissingSecrets = missing
		return c
	}
	_, err := New(context.Background(), http.NotFoundHandler(), config("fail"), "missing")
	if err == nil || !strings.Contains(err.Error(), "internalTokenFile") || !strings.Contains(err.Error(), "SENTINEL_TEST_UNSET_VARIABLE") {
		t.Fatalf("fail: %v", err)
	}

	reached := false
	h, err := New(context.Background(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }), config("refuse"), "missing")
	if err != nil {
		t.Fatalf("refuse: %v", err)
	}
	for _, auth := range []string{"", "Bearer sk-anyKey0123456789"} {
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		if rw.Code != http.StatusServiceUnavailable || !strings.Contains(rw.Body.String(), codeUnconfigured) || reached {
			t.Fatalf("refuse, Authorization %q: %d %s, forwarded %v", auth, rw.Code, rw.Body, reached)
		}
	}

	// "refuse" covers secrets that cannot be read, not a configuration without them.
	c := config("refuse")
	c.InternalTokenFile, c.HMACSecretEnv = "", ""
	if _, err := New(context.Background(), http.NotFoundHandler(), c, "missing"); err == nil || !strings.Contains(err.Error(), "hmacSecret is required") {
		t.Fatalf("refuse without secret options: %v", err)
	}
	c = config("sometimes")
	if _, err := New(context.Background(), http.NotFoundHandler(), c, "missing"); err == nil || !strings.Contains(err.Error(), "missingSecrets") {
		t.Fatalf("bad missingSecrets: %v", err)
	}
}

func TestRedisSentinelOptions(t *testing.T) {
	for _, tt := range []struct {
		addr, master string
		sentinels    []string
		want         string
	}{
		{"127.0.0.1:6379", "primary", []string{"127.0.0.1:26379"}, "not both"},
		{"", "", []string{"127.0.0.1:26379"}, "redisMasterName is required"},
		{"", "primary", []string{"sentinel"}, "host:port"},
	} {
		c := CreateConfig()
		c.AdmindURL, c.InternalTokenEnv, c.HMACSecretEnv = "http://127.0.0.1:9", "PATH", "PATH"
		c.RedisAddr, c.RedisMasterName, c.RedisSentinels = tt.addr, tt.master, tt.sentinels
		if _, err := parseConfig(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error saying %q", tt, err, tt.want)
		}
	}
	c := CreateConfig()
	c.AdmindURL, c.InternalTokenEnv, c.HMACSecretEnv = "http://127.0.0.1:9", "PATH", "PATH"
	c.RedisMasterName, c.RedisSentinels = "primary", []string{"127.0.0.1:26379", " sentinel-2:26379 "}
	s, err := parseConfig(c)
	if err != nil || len(s.redis.sentinels) != 2 || s.redis.sentinels[1] != "sentinel-2:26379" || s.redis.addr != "" {
		t.Fatalf("%+v, %v", s, err)
	}
}

// TestRefusesWhatNewAPIWouldReadDifferently: the path and key spellings New API's router or
// database would resolve differently are refused before any decision, never forwarded, and
// the allowEncodedSlash option lets encoded separators through to the normal decision.
func TestRefusesWhatNewAPIWouldReadDifferently(t *testing.T) {
	tests := []struct {
		desc, target, auth string
		allowSlash         bool
		wantStatus         int
		wantCode           string
	}{
		{"encoded slash", "/v1%2Fchat/completions", "Bearer sk-refuseKey0123456789", false, 400, codeEncodedSlash},
		{"encoded backslash", "/v1/chat%5ccompletions", "Bearer sk-refuseKey0123456789", false, 400, codeEncodedSlash},
		{"encoded slash, no key", "/v1%2Fmodels", "", false, 400, codeEncodedSlash},
		{"encoded slash allowed", "/v1%2Fchat/completions", "Bearer sk-refuseKey0123456789", true, 200, ""},
		{"accented key", "/v1/chat/completions", "Bearer sk-refuséKey0123456789", false, 400, codeMalformedKey},
		{"space before a channel suffix", "/v1/chat/completions", "Bearer sk-refuseKey0123456789 -2", false, 400, codeMalformedKey},
	}
	for _, tt := range tests {
		h := newHarness(t, func(c *Config) { c.AllowEncodedSlash = tt.allowSlash })
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test"+tt.target, nil)
		req.RemoteAddr = "127.0.0.2:1"
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rw := httptest.NewRecorder()
		h.handler.ServeHTTP(rw, req)
		if rw.Code != tt.wantStatus || tt.wantCode != "" && !strings.Contains(rw.Body.String(), `"code":"`+tt.wantCode+`"`) {
			t.Errorf("%s: %d %s", tt.desc, rw.Code, rw.Body.String())
		}
		if tt.wantCode != "" && h.nexts != 0 {
			t.Errorf("%s: forwarded", tt.desc)
		}
	}
}

// Only "admind could not decide" lets the failsafe mode decide. admind refusing what the
// plugin sent (a 4xx, a 500) is a bug or an attack on one of the request's fields: the plugin
// asks again with the key and address alone, and refuses the request if that is refused too,
// in either failsafe mode.
func TestAdmindRefusalIsNotFailsafe(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer sk-refusedkey123456789", "User-Agent": "ua"}
	for _, mode := range []string{"open", "closed"} {
		for _, st := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusInternalServerError} {
			h := newHarness(t, func(c *Config) { c.FailsafeMode = mode })
			h.admind.status = st
			rw := h.do("127.0.0.2:1", auth)
			if rw.Code != http.StatusForbidden || !strings.Contains(rw.Body.String(), codeUndecided) || h.nexts != 0 {
				t.Errorf("%s mode, admind %d: %d %s, forwarded %d", mode, st, rw.Code, rw.Body, h.nexts)
			}
			if h.admind.decides != 2 {
				t.Errorf("%s mode, admind %d: %d decides, want 2 (the event, then key and address alone)", mode, st, h.admind.decides)
			}
		}
		// Refused for one field only: the second ask, without it, decides.
		h := newHarness(t, func(c *Config) { c.FailsafeMode = mode })
		h.admind.refuseUserAgent = true
		if rw := h.do("127.0.0.2:1", auth); rw.Code != http.StatusOK || h.nexts != 1 {
			t.Errorf("%s mode, refused for the user agent: %d %s", mode, rw.Code, rw.Body)
		}
		if rw := h.do("127.0.0.3:1", auth); rw.Code != http.StatusForbidden || h.nexts != 1 {
			t.Errorf("%s mode, other address: %d %s", mode, rw.Code, rw.Body)
		}
		// admind's own 503 ("cannot decide now") is the failsafe case.
		h = newHarness(t, func(c *Config) { c.FailsafeMode = mode })
		h.admind.status = http.StatusServiceUnavailable
		rw := h.do("127.0.0.2:1", auth)
		if mode == "open" && (rw.Code != http.StatusOK || h.nexts != 1) || mode == "closed" && rw.Code != http.StatusServiceUnavailable {
			t.Errorf("%s mode, admind 503: %d %s", mode, rw.Code, rw.Body)
		}
	}
}

// What the plugin reports is valid UTF-8 without control characters, within admind's bound,
// and unchanged when it already was.
func TestReportedField(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"openai-python/1.0", "openai-python/1.0"},
		{"/v1/\x00x", "/v1/\uFFFDx"},
		{"a\xffb", "a\uFFFDb"},
		{"tab\there", "tab\uFFFDhere"},
		{"caf\u00e9 \u4e2d", "caf\u00e9 \u4e2d"},
		{"c1\u0085", "c1\uFFFD"},
		{strings.Repeat("a", 600), strings.Repeat("a", maxReportedField)},
		{strings.Repeat("\u4e2d", 200), strings.Repeat("\u4e2d", maxReportedField/3)}, // cut on a rune boundary
		{strings.Repeat("\xff", 512), strings.Repeat("\uFFFD", maxReportedField/3)},
	} {
		if got := reportedField(tt.in); got != tt.want {
			t.Errorf("reportedField(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The fast path's alphabet is exactly 0x20 to 0x7e.
	var want strings.Builder
	for c := byte(0x20); c < 0x7f; c++ {
		want.WriteByte(c)
	}
	if printableASCII != want.String() {
		t.Errorf("printableASCII = %q", printableASCII)
	}
}

// A keyed request whose only known address is a relay's (relayAddresses, or a trusted proxy
// that sent no X-Forwarded-For) is refused without asking admind, so no binding is made to
// it; the same key from the client's own address still binds, and keyless requests from the
// relay pass.
func TestRelayAddressesAreNeverBound(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.RelayAddresses = []string{"127.0.9.1", "fd00:9::/64"}
		c.TrustedProxies = []string{"127.0.8.0/24"}
	})
	key := map[string]string{"Authorization": "Bearer relayedkey123456789"}
	for _, remote := range []string{"127.0.9.1:1", "[fd00:9::5]:1", "127.0.8.1:1"} {
		rw := h.do(remote, key)
		if rw.Code != http.StatusForbidden || !strings.Contains(rw.Body.String(), codeClientHidden) {
			t.Fatalf("%s: %d %s, want 403 %s", remote, rw.Code, rw.Body, codeClientHidden)
		}
	}
	if h.admind.decides != 0 || h.nexts != 0 {
		t.Fatalf("a relay's request reached admind (%d) or the upstream (%d)", h.admind.decides, h.nexts)
	}
	if rw := h.do("127.0.8.1:1", map[string]string{"Authorization": key["Authorization"], "X-Forwarded-For": "127.0.9.1"}); rw.Code != http.StatusForbidden {
		t.Fatalf("a trusted proxy naming a relay: %d", rw.Code)
	}
	if rw := h.do("127.0.9.1:1", nil); rw.Code != http.StatusOK {
		t.Fatalf("keyless request from a relay: %d", rw.Code)
	}
	if rw := h.do("127.0.8.1:1", map[string]string{"Authorization": key["Authorization"], "X-Forwarded-For": "127.0.0.7"}); rw.Code != http.StatusOK {
		t.Fatalf("the client named by a trusted proxy: %d %s", rw.Code, rw.Body)
	}
	if len(h.admind.bound) != 1 || h.admind.decides != 1 {
		t.Fatalf("bindings %v after %d decides, want one, to 127.0.0.7", h.admind.bound, h.admind.decides)
	}
	for _, ip := range h.admind.bound {
		if ip != "127.0.0.7" {
			t.Fatalf("bound to %s, want 127.0.0.7", ip)
		}
	}

	m := newHarness(t, func(c *Config) { c.RelayAddresses = []string{"127.0.9.1"}; c.Mode = "monitor" })
	if rw := m.do("127.0.9.1:1", key); rw.Code != http.StatusOK || m.admind.decides != 0 {
		t.Fatalf("monitor mode: %d, decides %d; want forwarded, unbound", rw.Code, m.admind.decides)
	}
}
