package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/cache"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

type settingsJSON struct {
	AlertWebhookURL       string `json:"alert_webhook_url"`
	AlertWebhookFormat    string `json:"alert_webhook_format"`
	AlertThresholdCount   int    `json:"alert_threshold_count"`
	AlertThresholdSeconds int    `json:"alert_threshold_seconds"`
	AutoBanOnAlert        bool   `json:"auto_ban_on_alert"`
	AlertEmailTo          string `json:"alert_email_to"`
	SMTPAddr              string `json:"smtp_addr"`
	SMTPFrom              string `json:"smtp_from"`
	ArchiveDays           int    `json:"archive_days"`
	LogRetentionDays      int    `json:"log_retention_days"`
	FailsafeMode          string `json:"failsafe_mode"`
	BindPrefixV4          int    `json:"bind_prefix_v4"`
	BindPrefixV6          int    `json:"bind_prefix_v6"`
	ClaimLimit            int    `json:"claim_limit"`
	ClaimWindowSeconds    int    `json:"claim_window_seconds"`
	ClaimPrefixV4         int    `json:"claim_prefix_v4"`
	ClaimPrefixV6         int    `json:"claim_prefix_v6"`
	ScanThreshold         int    `json:"scan_threshold"`
	ScanWindowSeconds     int    `json:"scan_window_seconds"`
	ScanBlockSeconds      int    `json:"scan_block_seconds"`
	FirstUseRule          string `json:"first_use_rule"`
	LearningSlots         int    `json:"learning_slots"`
	LearningWindowSeconds int    `json:"learning_window_seconds"`
}

func TestAdminSettings(t *testing.T) {
	a := startAdmind(t, map[string]string{"ALERT_THRESHOLD_COUNT": "7", "SENTINEL_FAILSAFE_MODE": "closed"})
	tok := a.login(t)
	rc := a.redis.Client(t)
	conn := a.db(t)
	ctx := context.Background()

	st, body := a.call(t, tok, http.MethodGet, "/admin/api/settings", nil)
	var cur settingsJSON
	if st != 200 || json.Unmarshal(body, &cur) != nil {
		t.Fatalf("get: %d %s", st, body)
	}
	want := settingsJSON{AlertWebhookFormat: "json", AlertThresholdCount: 7, AlertThresholdSeconds: 300, ArchiveDays: 30, LogRetentionDays: 90, FailsafeMode: "closed", BindPrefixV4: 32, BindPrefixV6: 64,
		ClaimLimit: 30, ClaimWindowSeconds: 60, ClaimPrefixV4: 32, ClaimPrefixV6: 64, ScanThreshold: 50, ScanWindowSeconds: 600,
		FirstUseRule: "single", LearningSlots: 3, LearningWindowSeconds: 86_400}
	if cur != want {
		t.Fatalf("defaults from the environment: %+v, want %+v", cur, want)
	}
	// The plugin's part, and only that, published at start.
	var pub settingsJSON
	if rc.Get(ctx, contract.SettingsKey).Val() != `{"failsafe_mode":"closed"}` || rc.TTL(ctx, contract.SettingsKey).Val() <= 0 {
		t.Fatalf("published settings: %q", rc.Get(ctx, contract.SettingsKey).Val())
	}

	// Invalid: 400 naming every bad field; nothing saved.
	bad := want
	bad.AlertWebhookURL, bad.FailsafeMode, bad.BindPrefixV4, bad.AlertThresholdCount = "javascript:alert(1)", "sometimes", 33, 0
	bad.ClaimLimit, bad.ClaimWindowSeconds, bad.ClaimPrefixV6 = -1, 0, 129
	bad.ScanThreshold, bad.ScanWindowSeconds, bad.ScanBlockSeconds = -1, 0, 86_401
	bad.FirstUseRule, bad.LearningSlots, bad.LearningWindowSeconds = "sometimes", 65, 0
	bad.AlertEmailTo, bad.SMTPAddr, bad.SMTPFrom = "ops@example.com,\r\nBcc: x@evil", "smtp.example.com", "not an address"
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", bad)
	for _, field := range []string{"alert_webhook_url", "failsafe_mode", "bind_prefix_v4", "alert_threshold_count", "claim_limit", "claim_window_seconds", "claim_prefix_v6", "scan_threshold", "scan_window_seconds", "scan_block_seconds", "alert_email_to", "smtp_addr", "smtp_from", "first_use_rule", "learning_slots", "learning_window_seconds"} {
		if st != http.StatusBadRequest || !strings.Contains(string(body), field) {
			t.Fatalf("invalid settings: %d %s (want %s named)", st, body, field)
		}
	}
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", `{"failsafe_mode":"open"}`+"x")
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "invalid JSON")
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", `{"failsafe_mode":"open"}`)
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "missing: alert_webhook_url, alert_webhook_format, alert_threshold_count, alert_threshold_seconds, auto_ban_on_alert, alert_email_to, smtp_addr, smtp_from, archive_days, log_retention_days, bind_prefix_v4, bind_prefix_v6, claim_limit, claim_window_seconds, claim_prefix_v4, claim_prefix_v6, scan_threshold, scan_window_seconds, scan_block_seconds, first_use_rule, learning_slots, learning_window_seconds")
	withUnknown := `{"alert_webhook_url":"","alert_webhook_format":"json","alert_threshold_count":5,"alert_threshold_seconds":300,"auto_ban_on_alert":false,"alert_email_to":"","smtp_addr":"","smtp_from":"","archive_days":30,"log_retention_days":90,"failsafe_mode":"open","bind_prefix_v4":32,"bind_prefix_v6":64,"claim_limit":30,"claim_window_seconds":60,"claim_prefix_v4":32,"claim_prefix_v6":64,"scan_threshold":20,"scan_window_seconds":600,"scan_block_seconds":0,"first_use_rule":"single","learning_slots":3,"learning_window_seconds":86400,"unknown":1}`
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", withUnknown)
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "unknown field")
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", strings.Replace(withUnknown, `"archive_days":30`, `"archive_days":"30"`, 1))
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "wrong type")

	next := want
	next.AlertWebhookURL = "https://hooks.example.com/services/T000/B000/secret-webhook-token"
	next.FailsafeMode, next.BindPrefixV4, next.ArchiveDays = "open", 24, 0
	next.FirstUseRule, next.LearningSlots = "learning", 2
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", next)
	if st != 200 {
		t.Fatalf("put: %d %s", st, body)
	}
	st, body = a.call(t, tok, http.MethodGet, "/admin/api/settings", nil)
	if json.Unmarshal(body, &cur) != nil || cur != next {
		t.Fatalf("after put: %d %s", st, body)
	}
	if js := rc.Get(ctx, contract.SettingsKey).Val(); json.Unmarshal([]byte(js), &pub) != nil || pub.FailsafeMode != "open" || strings.Contains(js, "hooks.example.com") {
		t.Fatalf("the plugin does not see the new failsafe mode, or sees the webhook: %q", js)
	}
	// The new IPv4 bind prefix and first-use rule apply to the next first use.
	if d := a.decideKey(t, "prefixKey0123456789", "127.0.5.77"); d.Binding.CIDRs[0] != "127.0.5.0/24" || d.Binding.Mode != "learning" {
		t.Fatalf("bind prefix or first-use rule not applied: %+v", d)
	}
	// Audited, with the webhook's token hidden.
	var before, after string
	if err := conn.QueryRow(ctx, `SELECT before::text, after::text FROM admin_audit WHERE action = 'settings.update'`).Scan(&before, &after); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(after, `"failsafe_mode": "open"`) || !strings.Contains(before, `"failsafe_mode": "closed"`) || strings.Contains(after, "secret-webhook-token") {
		t.Fatalf("audit: before %s after %s", before, after)
	}
	if strings.Contains(a.stderr.String(), "secret-webhook-token") {
		t.Fatal("the webhook token reached the log")
	}

	// Redis restarted empty: the settings come back from PostgreSQL within a refresh.
	a.redis.Kill()
	if err := a.redis.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "settings republished", func() bool {
		return rc.Get(ctx, contract.SettingsKey).Val() == `{"failsafe_mode":"open"}`
	})
}

func TestAdminDashboard(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	rc := a.redis.Client(t)
	ctx := context.Background()
	a.decideKey(t, "dashKeyA0123456789", "127.0.0.2")
	a.decideKey(t, "dashKeyB0123456789", "127.0.0.3")
	a.decideKey(t, "dashKeyA0123456789", "127.0.0.8") // intercepted today
	a.decideKey(t, "dashKeyA0123456789", "127.0.0.8") // and again
	a.decideKey(t, "dashKeyB0123456789", "127.0.0.9") // B once
	// and A from a monitor-mode plugin, which forwards it
	a.post(t, http.DefaultClient, "decide", fmt.Sprintf(`{"key_hash":%q,"key_hint":"sk-dash…6789","ip":"127.0.0.10","method":"GET","path":"/v1/models","user_agent":"t","forwarded":true}`,
		hashKey("dashKeyA0123456789")))
	if _, err := conn.Exec(ctx, `UPDATE token_bindings SET status = 'banned' WHERE key_hash = $1`, hashKey("dashKeyB0123456789")); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, `
		INSERT INTO archived_bindings (binding_id, key_hash, key_hint, rule_mode, cidrs, status, first_ip, last_ip, created_at, last_used_at, updated_at, note)
		VALUES (99, $1, 'sk-old…', 'single', '{127.0.0.5/32}', 'active', '127.0.0.5', '127.0.0.5', now(), now(), now(), '')`, hashKey("old"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `
		INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, created_at) VALUES
			($1, 'sk-old…', '127.0.0.6', 'ip_not_allowed', now() - interval '3 days'),
			($1, 'sk-old…', '127.0.0.6', 'ip_not_allowed', now() - interval '30 days')`, hashKey("old"))
	if err != nil {
		t.Fatal(err)
	}
	today := cache.DayKey(time.Now())
	rc.Set(ctx, contract.AllowedCounterKey(today), 123, time.Hour)

	st, body := a.call(t, tok, http.MethodGet, "/admin/api/dashboard", nil)
	var d struct {
		Totals struct{ Active, Banned, Archived int64 } `json:"totals"`
		Today  struct {
			Day                             string
			Allowed, Intercepted, Forwarded int64
		} `json:"today"`
		Days []struct {
			Day                             string
			Allowed, Intercepted, Forwarded int64
		} `json:"days"`
		AllowedCounted bool `json:"allowed_counted"`
		TopKeys        []struct {
			KeyHint   string `json:"key_hint"`
			Count     int64  `json:"count"`
			Forwarded int64  `json:"forwarded"`
		} `json:"top_keys"`
		TopIPs []struct {
			IP        string `json:"ip"`
			Count     int64  `json:"count"`
			Forwarded int64  `json:"forwarded"`
		} `json:"top_ips"`
	}
	if st != 200 || json.Unmarshal(body, &d) != nil {
		t.Fatalf("dashboard: %d %s", st, body)
	}
	if d.Totals.Active != 1 || d.Totals.Banned != 1 || d.Totals.Archived != 1 {
		t.Errorf("totals: %+v", d.Totals)
	}
	if d.Today.Day != today || d.Today.Intercepted != 4 || d.Today.Forwarded != 1 || d.Today.Allowed != 123 || !d.AllowedCounted {
		t.Errorf("today: %+v counted=%v", d.Today, d.AllowedCounted)
	}
	var week int64
	for _, day := range d.Days {
		week += day.Intercepted
	}
	if len(d.Days) != 7 || d.Days[6].Day != today || week != 5 {
		t.Errorf("7-day series: %+v", d.Days)
	}
	// A: refused twice from 127.0.0.8 and forwarded once from 127.0.0.10.
	if len(d.TopKeys) != 3 || d.TopKeys[0].KeyHint != "sk-dash…6789" || d.TopKeys[0].Count != 3 || d.TopKeys[0].Forwarded != 1 ||
		d.TopKeys[1].Forwarded != 0 || d.TopKeys[2].Forwarded != 0 {
		t.Errorf("top keys: %+v", d.TopKeys)
	}
	forwardedFrom := map[string]int64{}
	for _, ip := range d.TopIPs {
		forwardedFrom[ip.IP] = ip.Forwarded
	}
	if len(d.TopIPs) != 4 || d.TopIPs[0].IP != "127.0.0.8" || d.TopIPs[0].Count != 2 ||
		!maps.Equal(forwardedFrom, map[string]int64{"127.0.0.8": 0, "127.0.0.9": 0, "127.0.0.10": 1, "127.0.0.6": 0}) {
		t.Errorf("top IPs: %+v", d.TopIPs)
	}
}

func TestMetrics(t *testing.T) {
	a := startAdmind(t, nil)
	a.decideKey(t, "metricKey012345678", "127.0.0.2")
	a.decideKey(t, "metricKey012345678", "127.0.0.2")
	a.decideKey(t, "metricKey012345678", "127.0.0.3")
	a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "admin", "password": "wrong"})
	a.redis.Kill()
	a.decide(t, http.DefaultClient, hashKey("metricKey012345678"), "127.0.0.2") // Redis fill fails
	st, body := a.call(t, "", http.MethodGet, "/metrics", nil)
	text := string(body)
	for _, want := range []string{
		`sentinel_decisions_total{outcome="allowed"} 3`,
		`sentinel_decisions_total{outcome="ip_not_allowed"} 1`,
		`sentinel_bindings_created_total 1`,
		`sentinel_intercepts_total{outcome="refused"} 1`,
		`sentinel_admin_login_failures_total{reason="bad_credentials"} 1`,
		`sentinel_http_request_duration_seconds_bucket{code="200",method="POST",route="/internal/v1/decide"`,
		`sentinel_http_request_duration_seconds_count{code="401",method="POST",route="/admin/api/login"} 1`,
		`go_goroutines`,
	} {
		if st != 200 || !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(text, `sentinel_dependency_errors_total{dependency="redis"}`) || strings.Contains(text, `sentinel_dependency_errors_total{dependency="redis"} 0`) {
		t.Errorf("redis errors not counted:\n%s", grepLines(text, "dependency"))
	}
	if strings.Contains(text, "metricKey") || strings.Contains(text, "sk-metr") || strings.Contains(text, "127.0.0.") {
		t.Error("metrics carry a key, a hint or an address")
	}
}
