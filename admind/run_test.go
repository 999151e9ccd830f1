package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testInternalToken = "internal-token-0123456789"
	testHMACSecret    = "hmac-secret-0123456789abcdef"
	testAdminPassword = "admin-password-0123"
	testJWTSecret     = "jwt-secret-0123456789abcdef0123456789"
)

type admindUnderTest struct {
	publicURL   string
	internalURL string
	dsn         string
	redis       *testenv.RedisServer
	stderr      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAdmind runs admind in-process on free ports against real PostgreSQL and Redis and
// waits for /health.
func startAdmind(t testing.TB, extra map[string]string) *admindUnderTest {
	t.Helper()
	a := &admindUnderTest{dsn: testenv.PG(t), redis: testenv.Redis(t), stderr: &syncBuffer{}}
	appPort, internalPort := testenv.FreePort(t), testenv.FreePort(t)
	env := a.env(appPort, internalPort)
	for k, v := range extra {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, a.stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admind exited with %v", err)
		}
	})
	a.publicURL = "http://127.0.0.1:" + strconv.Itoa(appPort)
	a.internalURL = "http://127.0.0.1:" + strconv.Itoa(internalPort)
	testenv.WaitFor(t, 30*time.Second, "admind /health", func() bool {
		select {
		case err := <-done:
			t.Fatalf("admind exited early: %v\n%s", err, a.stderr)
		default:
		}
		resp, err := http.Get(a.publicURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

// env is admind's environment for a test: this PostgreSQL and Redis, these ports.
func (a *admindUnderTest) env(appPort, internalPort int) map[string]string {
	return map[string]string{
		"DATABASE_URL":            a.dsn,
		"REDIS_ADDR":              a.redis.Addr,
		"REDIS_DB":                strconv.Itoa(a.redis.DB),
		"SENTINEL_HMAC_SECRET":    testHMACSecret,
		"SENTINEL_INTERNAL_TOKEN": testInternalToken,
		"LISTEN_HOST":             "127.0.0.1",
		"APP_PORT":                strconv.Itoa(appPort),
		"INTERNAL_PORT":           strconv.Itoa(internalPort),
		"DB_MAX_CONNS":            "30",
		"ADMIN_PASSWORD":          testAdminPassword,
		"ADMIN_JWT_SECRET":        testJWTSecret,
	}
}

// hashKey is the plugin's hash of a normalised key: of its canonical, lower-case form.
func hashKey(key string) string {
	m := hmac.New(sha256.New, []byte(testHMACSecret))
	m.Write([]byte(strings.ToLower(key)))
	return hex.EncodeToString(m.Sum(nil))
}

type decideReply struct {
	Allow   bool   `json:"allow"`
	Reason  string `json:"reason"`
	Binding struct {
		Status string   `json:"status"`
		Mode   string   `json:"mode"`
		CIDRs  []string `json:"cidrs"`
	} `json:"binding"`
	CacheTTLS   int    `json:"cache_ttl_s"`
	Provisional bool   `json:"provisional"`
	Claim       string `json:"claim"`
	RetryAfterS int    `json:"retry_after_s"`
}

// decide asks as the plugin does for a request New API then serves: an allowed provisional
// answer (a first use) is confirmed, and the confirmation's answer returned.
func (a *admindUnderTest) decide(t testing.TB, client *http.Client, hash, ip string) (decideReply, int) {
	return a.decideHinted(t, client, hash, "sk-…", ip)
}

func (a *admindUnderTest) decideHinted(t testing.TB, client *http.Client, hash, hint, ip string) (decideReply, int) {
	d, st := a.internal(t, client, "decide", hash, hint, ip, "")
	if st == http.StatusOK && d.Allow && d.Provisional {
		return a.internal(t, client, "confirm", hash, hint, ip, d.Claim)
	}
	return d, st
}

// internal posts an event to /internal/v1/<path> as the plugin does.
func (a *admindUnderTest) internal(t testing.TB, client *http.Client, path, hash, hint, ip, claim string) (decideReply, int) {
	body := fmt.Sprintf(`{"key_hash":%q,"key_hint":%q,"ip":%q,"method":"POST","path":"/v1/chat/completions","user_agent":"test","claim":%q}`, hash, hint, ip, claim)
	return a.post(t, client, path, body)
}

// post posts body to /internal/v1/<path> with the plugin's token.
func (a *admindUnderTest) post(t testing.TB, client *http.Client, path, body string) (decideReply, int) {
	req, _ := http.NewRequest(http.MethodPost, a.internalURL+"/internal/v1/"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testInternalToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return decideReply{}, 0
	}
	defer resp.Body.Close()
	var out decideReply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Errorf("decode: %v", err)
		}
	}
	return out, resp.StatusCode
}

func (a *admindUnderTest) db(t testing.TB) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), a.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func count(t testing.TB, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestHealthAndReady(t *testing.T) {
	a := startAdmind(t, nil)
	for _, path := range []string{"/health", "/ready"} {
		resp, err := http.Get(a.publicURL + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	// The internal API is not on the public listener.
	resp, err := http.Post(a.publicURL+"/internal/v1/decide", "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("internal API on the public listener: %v %v", resp, err)
	}
	resp.Body.Close()
	// Redis gone: not ready, with a generic message.
	a.redis.Kill()
	resp, err = http.Get(a.publicURL + "/ready")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ready without Redis: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "127.0.0.1") || !strings.Contains(string(b), `"code":"not_ready"`) {
		t.Fatalf("ready body leaks internals: %s", b)
	}
}

// A listener that cannot be bound stops admind with nothing left serving: every port is bound
// before any serves, so a /health that answers means the internal API answers too (a unit
// test decided right after /health and met a refused connection), and a start that failed
// leaves no public listener behind claiming health.
func TestTakenPortLeavesNothingServing(t *testing.T) {
	a := &admindUnderTest{dsn: testenv.PG(t), redis: testenv.Redis(t)}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	appPort := testenv.FreePort(t)
	env := a.env(appPort, taken.Addr().(*net.TCPAddr).Port)
	// A run that ignored the failed listen would serve until this deadline, not forever.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("run with its internal port taken: %v", err)
	}
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(appPort) + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("after a failed start the public listener still answers: %s", resp.Status)
	}
}

func TestInternalTokenRequired(t *testing.T) {
	a := startAdmind(t, nil)
	for _, auth := range []string{"", "Bearer wrong", testInternalToken, "Bearer " + testInternalToken + "x"} {
		req, _ := http.NewRequest(http.MethodPost, a.internalURL+"/internal/v1/decide", strings.NewReader(`{}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("auth %q: %v %v", auth, resp, err)
		}
		resp.Body.Close()
	}
}

func TestDecideBindsAndRefuses(t *testing.T) {
	a := startAdmind(t, nil)
	conn := a.db(t)
	rc := a.redis.Client(t)
	ctx := context.Background()
	v4, v6 := hashKey("v4key"), hashKey("v6key")

	d, st := a.decide(t, http.DefaultClient, v4, "127.0.0.2")
	if st != 200 || !d.Allow || d.Binding.Mode != "single" || len(d.Binding.CIDRs) != 1 || d.Binding.CIDRs[0] != "127.0.0.2/32" {
		t.Fatalf("first use: %d %+v", st, d)
	}
	if got, _ := rc.Get(ctx, "sentinel:b:"+v4).Result(); got != "v1|active|single|127.0.0.2/32" {
		t.Fatalf("redis entry %q", got)
	}
	if ttl, _ := rc.TTL(ctx, "sentinel:b:"+v4).Result(); ttl <= 0 {
		t.Fatalf("redis entry has no TTL: %v", ttl)
	}
	if d, _ := a.decide(t, http.DefaultClient, v4, "127.0.0.2"); !d.Allow {
		t.Fatal("same address refused")
	}
	d, _ = a.decide(t, http.DefaultClient, v4, "127.0.0.3")
	if d.Allow || d.Reason != "ip_not_allowed" {
		t.Fatalf("other address: %+v", d)
	}
	if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND ip = '127.0.0.3' AND reason = 'ip_not_allowed'`, v4); n != 1 {
		t.Fatalf("intercept rows: %d", n)
	}
	// IPv6 binds its /64.
	d, _ = a.decide(t, http.DefaultClient, v6, "2001:db8:1:2:aaaa::1")
	if !d.Allow || d.Binding.CIDRs[0] != "2001:db8:1:2::/64" {
		t.Fatalf("v6 first use: %+v", d)
	}
	if d, _ := a.decide(t, http.DefaultClient, v6, "2001:db8:1:2:bbbb::9"); !d.Allow {
		t.Fatal("v6 privacy address in the same /64 refused")
	}
	if d, _ := a.decide(t, http.DefaultClient, v6, "2001:db8:1:3::1"); d.Allow {
		t.Fatal("v6 address in another /64 allowed")
	}
	// Banned keys are refused even from their address.
	if _, err := conn.Exec(ctx, `UPDATE token_bindings SET status = 'banned' WHERE key_hash = $1`, v4); err != nil {
		t.Fatal(err)
	}
	if d, _ := a.decide(t, http.DefaultClient, v4, "127.0.0.2"); d.Allow || d.Reason != "key_banned" {
		t.Fatalf("banned: %+v", d)
	}
	// Bad input is refused with a message, never stored.
	for _, body := range []string{`{"key_hash":"nothex","ip":"127.0.0.2"}`, `{"key_hash":"` + v4 + `","ip":"127.1"}`, `{"unknown":1}`, `not json`} {
		req, _ := http.NewRequest(http.MethodPost, a.internalURL+"/internal/v1/decide", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testInternalToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %v %v", body, resp, err)
		}
		resp.Body.Close()
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings`); n != 2 {
		t.Fatalf("bindings: %d", n)
	}
}

// TestFirstUseRace: 50 goroutines from 50 addresses hit a new key at once, 100 rounds. Each
// round: exactly one address is allowed (its claim), 49 are refused without intercept rows
// (the key is not proven yet); the winner's confirmation (New API served it) writes exactly
// one binding row, Redis holds the same rule as PostgreSQL, and then the 49 are refused and
// logged.
func TestFirstUseRace(t *testing.T) {
	a := startAdmind(t, nil)
	conn := a.db(t)
	rc := a.redis.Client(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const rounds, racers = 100, 50
	for round := 0; round < rounds; round++ {
		hash := hashKey("race-key-" + strconv.Itoa(round))
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var allowed []string
		var claim string
		refused := 0
		for i := 0; i < racers; i++ {
			ip := "127.0.1." + strconv.Itoa(i+1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, st := a.internal(t, client, "decide", hash, "sk-…", ip, "")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case st == 200 && d.Allow && d.Provisional:
					allowed = append(allowed, ip)
					claim = d.Claim
				case st == 200 && d.Reason == "ip_not_allowed":
					refused++
				default:
					t.Errorf("round %d %s: status %d %+v", round, ip, st, d)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(allowed) != 1 || refused != racers-1 {
			t.Fatalf("round %d: %d allowed %v, %d refused", round, len(allowed), allowed, refused)
		}
		if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, hash) + count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, hash); n != 0 {
			t.Fatalf("round %d: %d rows written for a claim", round, n)
		}
		if d, st := a.internal(t, client, "confirm", hash, "sk-…", allowed[0], claim); st != 200 || !d.Allow {
			t.Fatalf("round %d: confirm %d %+v", round, st, d)
		}
		for i := 0; i < racers; i++ {
			if ip := "127.0.1." + strconv.Itoa(i+1); ip != allowed[0] {
				if d, _ := a.decide(t, client, hash, ip); d.Allow {
					t.Fatalf("round %d: %s allowed after the binding", round, ip)
				}
			}
		}
		var firstIP string
		if err := conn.QueryRow(context.Background(),
			`SELECT host(first_ip) FROM token_bindings WHERE key_hash = $1`, hash).Scan(&firstIP); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if firstIP != allowed[0] {
			t.Fatalf("round %d: row bound to %s, allowed %s", round, firstIP, allowed[0])
		}
		if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, hash); n != racers-1 {
			t.Fatalf("round %d: %d intercept rows", round, n)
		}
		if got, _ := rc.Get(context.Background(), "sentinel:b:"+hash).Result(); got != "v1|active|single|"+firstIP+"/32" {
			t.Fatalf("round %d: redis %q, pg %s", round, got, firstIP)
		}
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings`); n != rounds {
		t.Fatalf("%d binding rows after %d rounds", n, rounds)
	}
	t.Logf("%d rounds x %d racers: %d bindings, one allowed address per round", rounds, racers, rounds)
}

func TestInterceptStreamConsumed(t *testing.T) {
	a := startAdmind(t, nil)
	conn := a.db(t)
	rc := a.redis.Client(t)
	hash := hashKey("streamed")
	ua := "x\r\nFAKE: header"
	for i := 0; i < 3; i++ {
		err := rc.XAdd(context.Background(), redisXAdd{hash: hash, ip: "127.0.0.9", ua: ua}.args()).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "3 intercept rows", func() bool {
		return count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, hash) == 3
	})
	if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE user_agent = $1`, ua); n != 3 {
		t.Fatalf("user agent not stored verbatim in one row each: %d", n)
	}
	testenv.WaitFor(t, 5*time.Second, "stream emptied", func() bool {
		n, _ := rc.XLen(context.Background(), "sentinel:events").Result()
		return n == 0
	})
}

func TestConfigRefusesToStart(t *testing.T) {
	err := run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("started without configuration")
	}
	for _, want := range []string{"DATABASE_URL", "SENTINEL_HMAC_SECRET", "SENTINEL_INTERNAL_TOKEN", "ADMIN_PASSWORD", "ADMIN_JWT_SECRET must be at least 32 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestHealthcheckCommand(t *testing.T) {
	a := startAdmind(t, nil)
	port := a.publicURL[strings.LastIndex(a.publicURL, ":")+1:]
	getenv := func(k string) string {
		if k == "APP_PORT" {
			return port
		}
		return ""
	}
	if err := run(context.Background(), []string{"admind", "healthcheck"}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck against a running admind: %v", err)
	}
	getenv = func(k string) string {
		if k == "APP_PORT" {
			return strconv.Itoa(testenv.FreePort(t))
		}
		return ""
	}
	if err := run(context.Background(), []string{"admind", "healthcheck"}, getenv, io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck passed with nothing listening")
	}
}

// A claim New API refused (the plugin releases it) leaves no binding row, no intercept row
// and no Redis entry, and the key is free at once for its next user; a confirmation that
// does not quote the holding claim, or comes from outside its prefix, binds nothing.
func TestReleasedClaimLeavesNothing(t *testing.T) {
	a := startAdmind(t, nil)
	conn := a.db(t)
	rc := a.redis.Client(t)
	ctx := context.Background()
	hash := hashKey("notAKeyOfNewAPIs0123")
	d, st := a.internal(t, http.DefaultClient, "decide", hash, "sk-…", "127.0.0.2", "")
	if st != 200 || !d.Allow || !d.Provisional || d.Claim == "" {
		t.Fatalf("first use: %d %+v", st, d)
	}
	if d, _ := a.internal(t, http.DefaultClient, "decide", hash, "sk-…", "127.0.0.3", ""); d.Allow || d.Reason != "ip_not_allowed" || d.Claim != "" {
		t.Fatalf("another address during the claim: %+v", d)
	}
	if _, st := a.internal(t, http.DefaultClient, "confirm", hash, "sk-…", "127.0.0.2", ""); st != http.StatusBadRequest {
		t.Fatalf("confirm without the claim: %d", st)
	}
	if _, st := a.internal(t, http.DefaultClient, "confirm", hash, "sk-…", "127.0.0.3", "ffffffffffffffffffffffffffffffff"); st != http.StatusConflict {
		t.Fatalf("confirm quoting another claim: %d", st)
	}
	if _, st := a.internal(t, http.DefaultClient, "confirm", hash, "sk-…", "127.0.0.3", d.Claim); st != http.StatusConflict {
		t.Fatalf("the claim confirmed from outside its prefix: %d", st)
	}
	if _, st := a.internal(t, http.DefaultClient, "release", hash, "sk-…", "127.0.0.2", d.Claim); st != 200 {
		t.Fatalf("release: %d", st)
	}
	if n := rc.Exists(ctx, "sentinel:claim:"+hash, "sentinel:b:"+hash).Val(); n != 0 {
		t.Fatalf("%d Redis keys left by a released claim", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, hash) + count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, hash); n != 0 {
		t.Fatalf("%d rows left by a released claim", n)
	}
	if d, _ := a.decide(t, http.DefaultClient, hash, "127.0.0.3"); !d.Allow || d.Binding.CIDRs[0] != "127.0.0.3/32" {
		t.Fatalf("the next user after the release: %+v", d)
	}
}

// Each source may make CLAIM_LIMIT new claims per window: the next gets claim_rate_limited
// with the seconds left, writes nothing, and is counted; bound keys, the claimant's repeats
// and other sources are not limited; IPv6 addresses in one /64 are one source.
func TestClaimLimitPerSource(t *testing.T) {
	a := startAdmind(t, map[string]string{"CLAIM_LIMIT": "3", "CLAIM_WINDOW_SECONDS": "60"})
	conn := a.db(t)
	bound := hashKey("limitBoundKey0123456")
	if d, _ := a.decide(t, http.DefaultClient, bound, "127.0.0.2"); !d.Allow {
		t.Fatalf("binding a key: %+v", d) // the source's first claim
	}
	for i := 0; i < 2; i++ {
		d, _ := a.internal(t, http.DefaultClient, "decide", hashKey("limitNew"+strconv.Itoa(i)+"0123456789"), "sk-…", "127.0.0.2", "")
		if !d.Allow || !d.Provisional {
			t.Fatalf("claim %d: %+v", i+2, d)
		}
		// The claimant again on the same key: no new claim.
		if d, _ := a.internal(t, http.DefaultClient, "decide", hashKey("limitNew"+strconv.Itoa(i)+"0123456789"), "sk-…", "127.0.0.2", ""); !d.Allow {
			t.Fatalf("claimant's repeat %d: %+v", i, d)
		}
	}
	over := hashKey("limitOver0123456789")
	d, st := a.internal(t, http.DefaultClient, "decide", over, "sk-…", "127.0.0.2", "")
	if st != 200 || d.Allow || d.Reason != "claim_rate_limited" || d.RetryAfterS < 1 || d.RetryAfterS > 60 || d.Claim != "" {
		t.Fatalf("over the limit: %d %+v", st, d)
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, over) + count(t, conn, `SELECT count(*) FROM intercept_logs`); n != 0 {
		t.Fatalf("over the limit: %d rows written", n)
	}
	// Nor anything in Redis: no claim, and the source's count stays at the limit however many
	// more keys it sends.
	rc := a.redis.Client(t)
	for i := 0; i < 5; i++ {
		a.internal(t, http.DefaultClient, "decide", hashKey("limitMore"+strconv.Itoa(i)+"0123456789"), "sk-…", "127.0.0.2", "")
	}
	if n := rc.Exists(context.Background(), "sentinel:claim:"+over).Val(); n != 0 {
		t.Fatal("over the limit: a claim was written")
	}
	if n := rc.Get(context.Background(), "sentinel:claimsrc:127.0.0.2/32").Val(); n != "3" {
		t.Fatalf("the source's count after 6 refused claims: %q, want the limit, 3", n)
	}
	if d, _ := a.decide(t, http.DefaultClient, bound, "127.0.0.2"); !d.Allow {
		t.Fatalf("a bound key over the limit: %+v", d)
	}
	if d, _ := a.internal(t, http.DefaultClient, "decide", over, "sk-…", "127.0.0.3", ""); !d.Allow || !d.Provisional {
		t.Fatalf("another source: %+v", d)
	}
	for i := 0; i < 3; i++ {
		ip := "2001:db8:7:7::" + strconv.Itoa(i+1)
		if d, _ := a.internal(t, http.DefaultClient, "decide", hashKey("limitV6"+strconv.Itoa(i)+"0123456789"), "sk-…", ip, ""); !d.Allow {
			t.Fatalf("IPv6 claim %d: %+v", i+1, d)
		}
	}
	if d, _ := a.internal(t, http.DefaultClient, "decide", hashKey("limitV6x0123456789"), "sk-…", "2001:db8:7:7:ffff::9", ""); d.Reason != "claim_rate_limited" {
		t.Fatalf("a fourth address in the same /64: %+v", d)
	}
	st, body := a.call(t, "", http.MethodGet, "/metrics", nil)
	if st != 200 || !strings.Contains(string(body), `sentinel_claims_total{outcome="limited"} 7`) {
		t.Fatalf("metrics:\n%s", grepLines(string(body), "claims"))
	}
}
