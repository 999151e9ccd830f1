package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// Bad input never takes a part of admind down: what an attacker (or anyone with Redis
// access) can send is refused or skipped, and what comes after it is handled as usual.

// One malformed stream entry must not stop intercept logging: it is counted, acknowledged and
// skipped, and the good entries around it are written.
func TestStreamSurvivesBadEntries(t *testing.T) {
	a := startAdmind(t, nil)
	conn := a.db(t)
	rc := a.redis.Client(t)
	ctx := context.Background()
	good := hashKey("after-the-bad-ones")
	bad := []map[string]string{
		{"at": strconv.FormatInt(1<<63-1, 10)},   // beyond int64 microseconds
		{"at": "9405000000000000"},               // year 300000: beyond what PostgreSQL stores
		{"at": "-62135596800001"},                // before year 1
		{"at": "soon"},                           // not a number
		{"path": "/v1/\x00"},                     // NUL: PostgreSQL text cannot hold it
		{"user_agent": "\xff\xfe"},               // not UTF-8
		{"ip": "127.0.0.1%lo"},                   // not a canonical address
		{"key_hash": strings.Repeat("z", 64)},    // not a hash
		{"reason": "because"},                    // not a refusal reason
		{"user_agent": strings.Repeat("u", 513)}, // over the field bound
	}
	for _, b := range bad {
		args := redisXAdd{hash: hashKey("bad"), ip: "127.0.0.9", ua: "bad"}.args()
		vals := args.Values.([]string)
		for i := 0; i < len(vals); i += 2 {
			if v, ok := b[vals[i]]; ok {
				vals[i+1] = v
			}
		}
		if err := rc.XAdd(ctx, args).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 40; i++ {
		if err := rc.XAdd(ctx, redisXAdd{hash: good, ip: "127.0.0.9", ua: "good " + strconv.Itoa(i)}.args()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "40 good intercept rows", func() bool {
		return count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, good) == 40
	})
	if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash <> $1`, good); n != 0 {
		t.Errorf("%d rows written from bad entries", n)
	}
	testenv.WaitFor(t, 5*time.Second, "stream emptied", func() bool {
		n, _ := rc.XLen(ctx, "sentinel:events").Result()
		p, err := rc.XPending(ctx, "sentinel:events", "admind").Result()
		return n == 0 && (err == redis.Nil || (err == nil && p.Count == 0))
	})
	_, metrics := a.call(t, "", http.MethodGet, "/metrics", nil)
	if want := "sentinel_events_dropped_total " + strconv.Itoa(len(bad)); !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q:\n%s", want, grepLines(string(metrics), "dropped"))
	}
}

// What an admin sends is searched and stored in PostgreSQL: text it cannot hold is a 400,
// never a failed query's 500.
func TestAdminInputMustBeText(t *testing.T) {
	a := startAdmind(t, nil)
	token := a.login(t)
	for _, path := range []string{
		"/admin/api/bindings?q=ab%00", "/admin/api/bindings?q=%FF%FE", "/admin/api/bindings?status=%00",
		"/admin/api/logs?reason=%00", "/admin/api/logs?key=%FFab", "/admin/api/logs/export?reason=%C0",
	} {
		st, body := a.call(t, token, http.MethodGet, path, nil)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", "UTF-8")
	}
	for _, body := range []string{`{"id":1,"note":"a\u0000b"}`, "{\"id\":1,\"note\":\"\xff\"}"} {
		req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/admin/api/bindings/ban", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("ban with %q: %d, want 400", body, resp.StatusCode)
		}
	}
}

// Every metric label comes from a fixed set: requests with long, random methods and paths, on
// either listener, do not grow /metrics.
func TestMetricLabelsAreBounded(t *testing.T) {
	a := startAdmind(t, nil)
	size := func() int {
		_, body := a.call(t, "", http.MethodGet, "/metrics", nil)
		return len(body)
	}
	// Every fixed label value once (the 404 and 405 routes, "other" methods), then measure.
	send := func(base, method, path string) {
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	warm := func(i int) {
		for _, base := range []string{a.publicURL, a.internalURL} {
			method := strings.Repeat(string(rune('A'+i%26)), 1+i*37%2000)
			for _, path := range []string{"/admin/ui", "/admin/api/login", "/health", "/" + method, "/admin/api/" + method, "/internal/v1/" + method} {
				send(base, method, path)
				send(base, http.MethodGet, path+"?"+method)
			}
		}
	}
	for i := 0; i < 3; i++ {
		warm(i)
	}
	before := size()
	for i := 3; i < 200; i++ {
		warm(i)
	}
	after := size()
	if after-before > 8<<10 || after > 256<<10 {
		t.Fatalf("/metrics grew from %d to %d bytes over 197 rounds of random methods and paths", before, after)
	}
	t.Logf("/metrics: %d bytes before, %d after", before, after)
}

// Nobody can keep the admin locked out: failures from some addresses lock those addresses and
// the user for them, while the right password from a clean address logs in. Login takes JSON
// only, so a page on another site cannot make its visitors' browsers send attempts.
func TestLoginLockoutCannotBeTurnedAgainstTheAdmin(t *testing.T) {
	a := startAdmind(t, map[string]string{"ADMIN_TRUSTED_PROXIES": "127.0.0.1/32"})
	login := func(from, contentType, password string) int {
		body := `{"username":"admin","password":` + strconv.Quote(password) + `}`
		req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/admin/api/login", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; i < 30; i++ { // two addresses taking turns, past the user's and their own limits
		login([]string{"198.51.100.7", "198.51.100.8"}[i%2], "application/json", "guess")
	}
	if st := login("198.51.100.7", "application/json", testAdminPassword); st != http.StatusUnauthorized {
		t.Fatalf("the right password from an address that failed: %d, want 401 (locked)", st)
	}
	if st := login("203.0.113.5", "application/json", testAdminPassword); st != http.StatusOK {
		t.Fatalf("the right password from a clean address while others keep failing: %d", st)
	}
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", ""} {
		if st := login("203.0.113.6", ct, testAdminPassword); st != http.StatusUnsupportedMediaType {
			t.Errorf("login with Content-Type %q: %d, want 415", ct, st)
		}
	}
	if st := login("203.0.113.6", "application/json; charset=utf-8", testAdminPassword); st != http.StatusOK {
		t.Errorf("login with a charset parameter: %d", st)
	}
}

// Intercept logs are kept for log_retention_days (LOG_RETENTION_DAYS, 90 by default), then
// deleted in batches by the maintenance job.
func TestInterceptLogRetention(t *testing.T) {
	a := startAdmind(t, map[string]string{"LOG_RETENTION_DAYS": "30", "ARCHIVE_INTERVAL": "200ms"})
	conn := a.db(t)
	ctx := context.Background()
	_, err := conn.Exec(ctx, `
		INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, created_at)
		SELECT $1, 'sk-old…', '127.0.0.6', 'ip_not_allowed', now() - make_interval(days => d, hours => 12)
		FROM generate_series(1, 60) AS d`, hashKey("retained"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "logs older than 30 days deleted", func() bool {
		return count(t, conn, `SELECT count(*) FROM intercept_logs WHERE created_at < now() - interval '30 days'`) == 0
	})
	if n := count(t, conn, `SELECT count(*) FROM intercept_logs`); n != 29 {
		t.Fatalf("%d rows kept, want the 29 younger than 30 days", n)
	}
	_, metrics := a.call(t, "", http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(metrics), "sentinel_intercepts_deleted_total 31\n") {
		t.Errorf("deletions not counted:\n%s", grepLines(string(metrics), "deleted"))
	}
}

// The webhook URL is a secret and may point anywhere the admin types: it is refused on an
// internal address unless the operator allows that (ALERT_WEBHOOK_ALLOW_PRIVATE), and it
// never reaches Redis.
func TestWebhookURLGuarded(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	_, body := a.call(t, tok, http.MethodGet, "/admin/api/settings", nil)
	var cur map[string]any
	if err := json.Unmarshal(body, &cur); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", "http://localhost/x", "http://[fd00::1]/"} {
		cur["alert_webhook_url"] = u
		st, body := a.call(t, tok, http.MethodPut, "/admin/api/settings", cur)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", "ALERT_WEBHOOK_ALLOW_PRIVATE")
	}
	cur["alert_webhook_url"] = "https://hooks.example.com/services/T0/B0/webhook-secret-token"
	if st, body := a.call(t, tok, http.MethodPut, "/admin/api/settings", cur); st != http.StatusOK {
		t.Fatalf("public webhook: %d %s", st, body)
	}
	rc := a.redis.Client(t)
	keys, err := rc.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if typ := rc.Type(context.Background(), k).Val(); typ == "string" && strings.Contains(rc.Get(context.Background(), k).Val(), "webhook-secret-token") {
			t.Errorf("Redis key %s holds the webhook URL", k)
		}
	}

	allowed := startAdmind(t, map[string]string{"ALERT_WEBHOOK_ALLOW_PRIVATE": "true"})
	tok = allowed.login(t)
	cur["alert_webhook_url"] = "http://127.0.0.1:9/hook"
	if st, body := allowed.call(t, tok, http.MethodPut, "/admin/api/settings", cur); st != http.StatusOK {
		t.Fatalf("allowed internal webhook: %d %s", st, body)
	}
}

// Admin sessions end on the server: after logout, after the token's lifetime, and after the
// password changed (admind restarted with a new ADMIN_PASSWORD), the old token is refused.
func TestAdminSessionsEndOnTheServer(t *testing.T) {
	a := startAdmind(t, map[string]string{"ADMIN_TOKEN_TTL": "2s"})
	tok := a.login(t)
	keep := a.login(t)
	if st, _ := a.call(t, tok, http.MethodGet, "/admin/api/dashboard", nil); st != http.StatusOK {
		t.Fatalf("fresh token: %d", st)
	}
	if st, body := a.call(t, tok, http.MethodPost, "/admin/api/logout", nil); st != http.StatusOK {
		t.Fatalf("logout: %d %s", st, body)
	}
	st, body := a.call(t, tok, http.MethodGet, "/admin/api/dashboard", nil)
	wantError(t, st, body, http.StatusUnauthorized, "unauthorized", "token")
	if st, _ := a.call(t, keep, http.MethodGet, "/admin/api/dashboard", nil); st != http.StatusOK {
		t.Fatalf("another session ended with the first: %d", st)
	}
	time.Sleep(2*time.Second + 6*time.Second) // the lifetime, and the verifier's 5 s leeway
	st, body = a.call(t, keep, http.MethodGet, "/admin/api/dashboard", nil)
	wantError(t, st, body, http.StatusUnauthorized, "unauthorized", "token")

	b := startAdmind(t, nil)
	old := b.login(t)
	// The same signing secret and Redis, a new password: the operator changed it and restarted.
	changed := startAdmind(t, map[string]string{"ADMIN_PASSWORD": "a-changed-password-42",
		"REDIS_ADDR": b.redis.Addr, "REDIS_DB": strconv.Itoa(b.redis.DB), "DATABASE_URL": b.dsn})
	st, body = changed.call(t, old, http.MethodGet, "/admin/api/dashboard", nil)
	wantError(t, st, body, http.StatusUnauthorized, "unauthorized", "token")
}

// The console and the admin API answer only on the console's own Hosts (CONSOLE_HOSTS,
// loopback by default): on New API's host name they would share its origin, where New API's
// scripts could read the admin token.
func TestConsoleOnlyOnItsOwnHost(t *testing.T) {
	get := func(a *admindUnderTest, host, path string) int {
		req, _ := http.NewRequest(http.MethodGet, a.publicURL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	def := startAdmind(t, nil)
	for host, want := range map[string]int{"127.0.0.1:8016": 200, "localhost": 200, "[::1]:8080": 200, "api.example.com": 421, "api.example.com:8016": 421} {
		if st := get(def, host, "/admin/ui/"); st != want {
			t.Errorf("default hosts, Host %s: %d, want %d", host, st, want)
		}
	}
	a := startAdmind(t, map[string]string{"CONSOLE_HOSTS": "sentinel-admin.example.com, console.example.com:8443"})
	for _, c := range []struct {
		host, path string
		want       int
	}{
		{"sentinel-admin.example.com", "/admin/ui/", 200},
		{"Sentinel-Admin.example.com:8016", "/admin/ui/", 200},
		{"console.example.com:8443", "/admin/ui/", 200},
		{"console.example.com:8016", "/admin/ui/", 421},
		{"api.example.com", "/admin/ui/", 421},
		{"api.example.com", "/admin/api/dashboard", 421},
		{"api.example.com", "/admin/ui", 421},
		{"127.0.0.1", "/admin/ui/", 421},
		{"api.example.com", "/health", 200},
	} {
		if st := get(a, c.host, c.path); st != c.want {
			t.Errorf("Host %s %s: %d, want %d", c.host, c.path, st, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/admin/api/login", strings.NewReader(`{"username":"admin","password":"x"}`))
	req.Host, req.Header["Content-Type"] = "api.example.com", []string{"application/json"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("login on New API's host: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("login on New API's host: %d", resp.StatusCode)
	}
}
