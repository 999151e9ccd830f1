package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// adminToken logs in as the admin.
func (s *stack) adminToken(t *testing.T) string {
	t.Helper()
	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	return login.Token
}

// admin calls admind's admin API.
func (s *stack) admin(t *testing.T, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var js []byte
	if body != nil {
		js, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, s.publicURL+"/admin/api"+path, bytes.NewReader(js))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// untilObeyed polls until the request from ip gets want through Traefik, and returns how long
// that took: the plugin drops its cached decision when it sees the binding generation move
// (polled every 500 ms), and holds it at most cacheTTL (2s here) when it cannot read it.
func (s *stack) untilObeyed(t *testing.T, ip string, headers map[string]string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.WaitFor(t, 10*time.Second, ip+" answered "+http.StatusText(want), func() bool {
		st, _ := s.call(t, ip, "/v1/chat/completions", headers)
		return st == want
	})
	return time.Since(start)
}

// TestAdminChangesReachTraefik: rule changes, bans and unbinds made through the admin API
// decide the next requests through the real Traefik and plugin.
func TestAdminChangesReachTraefik(t *testing.T) {
	s := startStack(t, stackOptions{})
	const key = "e2eAdminKey0123456789abcdef"
	bearer := map[string]string{"Authorization": "Bearer sk-" + key}
	if st, body := s.call(t, "127.0.0.2", "/v1/chat/completions", bearer); st != 200 {
		t.Fatalf("bind: %d %s", st, body)
	}
	if st, _ := s.call(t, "127.0.0.3", "/v1/chat/completions", bearer); st != 403 {
		t.Fatalf("other address before the change: %d", st)
	}

	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	tok := login.Token
	st, body = s.admin(t, tok, "GET", "/bindings?q="+url.QueryEscape("sk-"+key), nil)
	var list struct {
		Items []struct{ ID int64 }
		Total int
	}
	if st != 200 || json.Unmarshal(body, &list) != nil || list.Total != 1 {
		t.Fatalf("find by raw key: %d %s", st, body)
	}
	id := list.Items[0].ID

	// Rule change: 127.0.0.3 only.
	if st, body := s.admin(t, tok, "PUT", "/bindings/ip", map[string]any{"id": id, "mode": "single", "cidrs": []string{"127.0.0.3"}}); st != 200 {
		t.Fatalf("set rule: %d %s", st, body)
	}
	took := s.untilObeyed(t, "127.0.0.3", bearer, 200)
	if st, body := s.call(t, "127.0.0.2", "/v1/chat/completions", bearer); st != 403 || !strings.Contains(body, "ip_not_allowed") {
		t.Fatalf("old address after the rule change: %d %s", st, body)
	}
	t.Logf("rule change obeyed through Traefik after %v", took.Round(time.Millisecond))

	// Ban, then unban.
	if st, body := s.admin(t, tok, "POST", "/bindings/ban", map[string]any{"id": id}); st != 200 {
		t.Fatalf("ban: %d %s", st, body)
	}
	took = s.untilObeyed(t, "127.0.0.3", bearer, 403)
	if _, body := s.call(t, "127.0.0.3", "/v1/chat/completions", bearer); !strings.Contains(body, "key_banned") {
		t.Fatalf("banned answer: %s", body)
	}
	t.Logf("ban obeyed after %v", took.Round(time.Millisecond))
	if st, body := s.admin(t, tok, "POST", "/bindings/unban", map[string]any{"id": id}); st != 200 {
		t.Fatalf("unban: %d %s", st, body)
	}
	s.untilObeyed(t, "127.0.0.3", bearer, 200)

	// Unbind: the next address to use the key owns it.
	if st, body := s.admin(t, tok, "POST", "/bindings/unbind", map[string]any{"id": id}); st != 200 {
		t.Fatalf("unbind: %d %s", st, body)
	}
	took = s.untilObeyed(t, "127.0.0.4", bearer, 200)
	if st, _ := s.call(t, "127.0.0.3", "/v1/chat/completions", bearer); st != 403 {
		t.Fatalf("previous address after unbind and rebind: %d", st)
	}
	t.Logf("unbind obeyed (rebound to 127.0.0.4) after %v", took.Round(time.Millisecond))

	// Failsafe mode set in the console reaches the plugin: with admind stopped, a new key
	// is forwarded unbound ("open") instead of 503 ("closed", the plugin's option here).
	settings := map[string]any{"alert_webhook_url": "", "alert_webhook_format": "json", "alert_threshold_count": 5, "alert_threshold_seconds": 300,
		"auto_ban_on_alert": false, "alert_email_to": "", "smtp_addr": "", "smtp_from": "", "archive_days": 30, "log_retention_days": 90, "failsafe_mode": "open", "bind_prefix_v4": 32, "bind_prefix_v6": 64,
		// The probes below are new keys from one address, many per second: no claim limit.
		"claim_limit": 0, "claim_window_seconds": 60, "claim_prefix_v4": 32, "claim_prefix_v6": 64,
		"scan_threshold": 0, "scan_window_seconds": 600, "scan_block_seconds": 0,
		"first_use_rule": "single", "learning_slots": 3, "learning_window_seconds": 86400}
	if st, body := s.admin(t, tok, "PUT", "/settings", settings); st != 200 {
		t.Fatalf("settings: %d %s", st, body)
	}
	changed := time.Now()
	// Misses carry the settings read: keep asking about fresh keys until the plugin has
	// refreshed (at most every 5 s), then stop admind.
	testenv.WaitFor(t, 15*time.Second, "the plugin to read the settings", func() bool {
		st, _ := s.call(t, "127.0.0.5", "/v1/chat/completions", map[string]string{"Authorization": "Bearer probe" + time.Now().Format("150405.000000")})
		return st == 200 && time.Since(changed) > 6*time.Second
	})
	if err := s.procs["admind"].Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.procs["admind"].Process.Signal(syscall.SIGCONT) }()
	newKey := map[string]string{"Authorization": "Bearer sk-e2eNeverSeenKey0123456789"}
	if st, body := s.call(t, "127.0.0.6", "/v1/chat/completions", newKey); st != 200 {
		t.Fatalf("new key with admind hung and failsafe open: %d %s", st, body)
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, keyHash("e2eNeverSeenKey0123456789")); n != 0 {
		t.Fatalf("failsafe open created a binding: %d", n)
	}
}

// countRows runs a count on a connection of its own, closed at once: callers poll it, and a
// connection held until the test ends per poll exhausts PostgreSQL's max_connections.
func countRows(t *testing.T, s *stack, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Allowed requests are counted by the plugin and reach admind: last use in PostgreSQL and
// today's allowed count on the dashboard, without a Redis write per request.
func TestUsageReachesAdmind(t *testing.T) {
	s := startStack(t, stackOptions{})
	const key = "e2eUsageKey0123456789abcdef"
	bearer := map[string]string{"Authorization": "Bearer sk-" + key}
	for i := 0; i < 20; i++ {
		if st, body := s.call(t, "127.0.0.2", "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("request %d: %d %s", i, st, body)
		}
	}
	testenv.WaitFor(t, 20*time.Second, "last use synced into PostgreSQL", func() bool {
		return countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND last_used_at > created_at`, keyHash(key)) == 1
	})
	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	var dash struct {
		Today struct{ Allowed int64 } `json:"today"`
	}
	testenv.WaitFor(t, 20*time.Second, "20 allowed requests on the dashboard", func() bool {
		_, body := s.admin(t, login.Token, "GET", "/dashboard", nil)
		return json.Unmarshal(body, &dash) == nil && dash.Today.Allowed == 20
	})
}
