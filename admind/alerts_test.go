package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// The whole alert path in admind: intercepts written by decide reach the threshold, one
// signed webhook goes out, a first 500 is retried, and the body carries the hint, never the key.
func TestInterceptAlertWebhook(t *testing.T) {
	const secret = "alert-webhook-secret-0123"
	var mu sync.Mutex
	var bodies []string
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
		m.Write(body)
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
			t.Errorf("bad signature on %s", body)
		}
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, string(body))
		ids = append(ids, r.Header.Get("webhook-id"))
		if len(bodies) == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	a := startAdmind(t, map[string]string{
		"ALERT_WEBHOOK_URL": srv.URL, "ALERT_WEBHOOK_SECRET": secret, "ALERT_THRESHOLD_COUNT": "3", "ALERT_THRESHOLD_SECONDS": "60",
		"ALERT_WEBHOOK_ALLOW_PRIVATE": "true", // the receiver is on loopback
	})
	const key = "alertKey0123456789"
	a.decideKey(t, key, "127.0.0.2")
	for _, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"} {
		a.decideKey(t, key, ip)
	}
	testenv.WaitFor(t, 15*time.Second, "the alert delivered after a retry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) == 2
	})
	time.Sleep(2 * time.Second) // would a second alert for the same window show up? (none may)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 || ids[0] != ids[1] {
		t.Fatalf("deliveries %d, ids %v", len(bodies), ids)
	}
	b := bodies[1]
	for _, want := range []string{`"type":"sentinel.alert.intercepts"`, `"key_hint":"sk-aler…6789"`, `"count":3`, `"window_seconds":60`,
		`"ips":["127.0.0.3","127.0.0.4","127.0.0.5"]`, `"cidrs":["127.0.0.2/32"]`} {
		if !strings.Contains(b, want) {
			t.Errorf("webhook body lacks %s: %s", want, b)
		}
	}
	if strings.Contains(b, key) {
		t.Fatal("the raw key reached the webhook")
	}
	if strings.Contains(b, "auto_banned") || a.decideKey(t, key, "127.0.0.2").Allow == false {
		t.Fatalf("without auto_ban_on_alert the key was banned: %s", b)
	}
	if strings.Contains(b, "forwarded") {
		t.Errorf("an alert raised by refusals says they were forwarded: %s", b)
	}
	if n := count(t, a.db(t), `SELECT count(*) FROM intercept_logs WHERE outcome = 'refused'`); n != 5 {
		t.Errorf("%d intercepts recorded as refused, want 5", n)
	}
	_, metrics := a.call(t, "", http.MethodGet, "/metrics", nil)
	for _, want := range []string{`sentinel_webhook_deliveries_total{outcome="delivered"} 1`, `sentinel_webhook_deliveries_total{outcome="retried"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// auto_ban_on_alert: the alert that a key was refused too often bans it at once, as admind's
// own change (actor "system" in admin_audit), and says so; its owner is refused from then on
// and the plugin's Redis entry says banned. A key banned already is not banned again.
func TestAutoBanOnAlert(t *testing.T) {
	url, bodies := webhookReceiver(t)
	a := startAdmind(t, map[string]string{
		"ALERT_WEBHOOK_URL": url, "ALERT_WEBHOOK_FORMAT": "slack", "ALERT_THRESHOLD_COUNT": "3", "ALERT_THRESHOLD_SECONDS": "60",
		"ALERT_WEBHOOK_ALLOW_PRIVATE": "true", "AUTO_BAN_ON_ALERT": "true",
	})
	conn := a.db(t)
	const key = "autoBanKey0123456789"
	hash := hashKey(strings.ToLower(key))
	if d := a.decideKey(t, key, "127.0.0.2"); !d.Allow {
		t.Fatalf("first use: %+v", d)
	}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		a.decideKey(t, key, ip)
	}
	time.Sleep(500 * time.Millisecond) // two refusals: below the threshold, nothing happens
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND status = 'active'`, hash); n != 1 {
		t.Fatalf("banned below the threshold")
	}
	a.decideKey(t, key, "127.0.0.5")
	testenv.WaitFor(t, 15*time.Second, "the key banned by the alert", func() bool {
		return count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND status = 'banned'`, hash) == 1
	})
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.ban' AND actor = 'system' AND ip IS NULL`); n != 1 {
		t.Fatalf("admin_audit has %d system bans, want 1", n)
	}
	if d := a.decideKey(t, key, "127.0.0.2"); d.Allow || d.Reason != "key_banned" {
		t.Fatalf("the owner after the ban: %+v", d)
	}
	if entry := a.redisEntry(t, hash); !strings.HasPrefix(entry, "v1|banned|") {
		t.Fatalf("the plugin's entry: %q", entry)
	}
	testenv.WaitFor(t, 15*time.Second, "the alert delivered", func() bool { return len(bodies()) == 1 })
	body := bodies()[0]
	if !strings.Contains(body, "banned automatically") || !strings.Contains(body, "(banned)") || strings.Contains(body, key) {
		t.Fatalf("the alert: %s", body)
	}
	// More refusals in a new window: the key is banned already, so no second ban.
	for _, ip := range []string{"127.0.0.6", "127.0.0.7", "127.0.0.8"} {
		a.decideKey(t, key, ip)
	}
	time.Sleep(time.Second)
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.ban'`); n != 1 {
		t.Fatalf("admin_audit has %d bans, want 1", n)
	}
}

// Monitor mode (the plugin sends "forwarded": true): the intercepts are recorded as forwarded,
// the alert says the requests were forwarded, and auto_ban_on_alert leaves the key alone,
// since monitor mode is for finding who enforce mode would refuse before anyone is.
func TestMonitorModeAlertNeverBans(t *testing.T) {
	a, bodies := autoBanningAdmind(t)
	conn := a.db(t)
	const key = "monitorKey0123456789"
	hash := hashKey(strings.ToLower(key))
	if d := a.decideKey(t, key, "127.0.0.2"); !d.Allow {
		t.Fatalf("first use: %+v", d)
	}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		d, st := a.post(t, http.DefaultClient, "decide", fmt.Sprintf(`{"key_hash":%q,"key_hint":"sk-moni…6789","ip":%q,"method":"GET","path":"/v1/models","user_agent":"test","forwarded":true}`, hash, ip))
		if st != http.StatusOK || d.Allow || d.Reason != "ip_not_allowed" {
			t.Fatalf("decide from %s in monitor mode: %d %+v (admind decides as ever; the plugin forwards)", ip, st, d)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the alert delivered", func() bool { return len(bodies()) == 1 })
	body := bodies()[0]
	if !strings.Contains(body, `"forwarded":true`) || strings.Contains(body, "auto_banned") {
		t.Fatalf("the alert: %s", body)
	}
	if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND outcome = 'forwarded'`, hash); n != 3 {
		t.Errorf("%d intercepts recorded as forwarded, want 3", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND status = 'active'`, hash); n != 1 {
		t.Errorf("the key was banned by an alert of forwarded requests")
	}
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.ban'`); n != 0 {
		t.Errorf("admin_audit has %d bans, want 0", n)
	}
	_, metrics := a.call(t, "", http.MethodGet, "/metrics", nil)
	for _, want := range []string{`sentinel_intercepts_total{outcome="forwarded"} 3`, `sentinel_intercepts_total{outcome="refused"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// autoBanningAdmind is admind alerting at 3 intercepts within 60 s, to a webhook whose bodies
// it returns, with auto_ban_on_alert on.
func autoBanningAdmind(t *testing.T) (*admindUnderTest, func() []string) {
	url, bodies := webhookReceiver(t)
	a := startAdmind(t, map[string]string{
		"ALERT_WEBHOOK_URL": url, "ALERT_THRESHOLD_COUNT": "3", "ALERT_THRESHOLD_SECONDS": "60",
		"ALERT_WEBHOOK_ALLOW_PRIVATE": "true", "AUTO_BAN_ON_ALERT": "true",
	})
	return a, bodies
}

// Right after a switch from monitor to enforce mode, a key's forwarded intercepts do not
// count toward a refusal alert: two forwarded and then one refused intercept (3, the
// threshold) raise nothing and ban nothing; two more refusals raise the refusal alert, which
// bans the key.
func TestAutoBanCountsRefusalsAlone(t *testing.T) {
	a, bodies := autoBanningAdmind(t)
	conn := a.db(t)
	rdb := a.redis.Client(t)
	const key = "cutoverKey0123456789"
	hash := hashKey(strings.ToLower(key))
	if d := a.decideKey(t, key, "127.0.0.2"); !d.Allow {
		t.Fatalf("first use: %+v", d)
	}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		d, st := a.post(t, http.DefaultClient, "decide", fmt.Sprintf(`{"key_hash":%q,"key_hint":"sk-cuto…6789","ip":%q,"method":"GET","path":"/v1/models","user_agent":"test","forwarded":true}`, hash, ip))
		if st != http.StatusOK || d.Allow {
			t.Fatalf("decide from %s in monitor mode: %d %+v", ip, st, d)
		}
	}
	if d := a.decideKey(t, key, "127.0.0.5"); d.Allow || d.Reason != "ip_not_allowed" {
		t.Fatalf("the first refusal: %+v", d)
	}
	counted := func() int64 { // the intercepts the alert counters hold, in whichever windows
		var n int64
		for _, k := range []string{"sentinel:alert:" + hash, "sentinel:alert:forwarded:" + hash} {
			c, _ := rdb.HGet(context.Background(), k, "count").Int64()
			n += c
		}
		return n
	}
	testenv.WaitFor(t, 15*time.Second, "the three intercepts counted", func() bool { return counted() == 3 })
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND status = 'active'`, hash); n != 1 {
		t.Fatalf("banned after one refusal: forwarded intercepts counted toward the ban")
	}
	if b := bodies(); len(b) != 0 {
		t.Fatalf("alerts after 2 forwarded and 1 refused intercept (threshold 3 each): %q", b)
	}
	for _, ip := range []string{"127.0.0.6", "127.0.0.7"} {
		if d := a.decideKey(t, key, ip); d.Allow || d.Reason != "ip_not_allowed" {
			t.Fatalf("refusal from %s: %+v", ip, d)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the refusal alert delivered", func() bool { return len(bodies()) == 1 })
	body := bodies()[0]
	for _, want := range []string{`"count":3`, `"auto_banned":true`, `"ips":["127.0.0.5","127.0.0.6","127.0.0.7"]`} {
		if !strings.Contains(body, want) {
			t.Errorf("the alert lacks %s: %s", want, body)
		}
	}
	if strings.Contains(body, `"forwarded"`) || strings.Contains(body, "127.0.0.3") {
		t.Errorf("the refusal alert counts forwarded intercepts: %s", body)
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND status = 'banned'`, hash); n != 1 {
		t.Errorf("three refusals did not ban the key")
	}
}

// The key-scan detector: one address presenting scan_threshold distinct keys within the
// window (here new keys New API then refused, and keys bound to others) raises one key_scan
// alert naming the source, and with scan_block_seconds its new claims are refused (429) for
// that long, while its own bound key keeps working and other addresses claim as before.
func TestKeyScanDetector(t *testing.T) {
	url, bodiesNow := webhookReceiver(t)
	a := startAdmind(t, map[string]string{
		"ALERT_WEBHOOK_URL": url, "ALERT_WEBHOOK_ALLOW_PRIVATE": "true", "CLAIM_LIMIT": "0",
		"SCAN_THRESHOLD": "4", "SCAN_WINDOW_SECONDS": "60", "SCAN_BLOCK_SECONDS": "30",
	})
	scanner := "127.0.0.9"
	if d := a.decideKey(t, "scannersOwnKey0123", scanner); !d.Allow { // its own key: bound, never counted again
		t.Fatalf("own key: %+v", d)
	}
	if d := a.decideKey(t, "othersKey0123456789", "127.0.0.2"); !d.Allow {
		t.Fatalf("another's key: %+v", d)
	}
	// Its own key's first use (a claim), another's key refused twice (one distinct key), two new
	// keys New API refused (claimed, then released): four distinct keys.
	a.decideKey(t, "othersKey0123456789", scanner)
	a.decideKey(t, "othersKey0123456789", scanner)
	for _, k := range []string{"randomKeyA01234567", "randomKeyB01234567"} {
		d, st := a.internal(t, http.DefaultClient, "decide", hashKey(strings.ToLower(k)), "sk-…", scanner, "")
		if st != 200 || !d.Allow || !d.Provisional {
			t.Fatalf("claim %s: %d %+v", k, st, d)
		}
		if _, st := a.internal(t, http.DefaultClient, "release", hashKey(strings.ToLower(k)), "sk-…", scanner, d.Claim); st != 200 {
			t.Fatalf("release %s: %d", k, st)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the key-scan alert", func() bool { return len(bodiesNow()) == 1 })
	b := bodiesNow()[0]
	for _, want := range []string{`"type":"sentinel.alert.key_scan"`, `"source":"127.0.0.9/32"`, `"count":4`, `"window_seconds":60`, `"claims_refused_seconds":30`} {
		if !strings.Contains(b, want) {
			t.Errorf("alert lacks %s: %s", want, b)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the source's new claims refused", func() bool {
		d, st := a.internal(t, http.DefaultClient, "decide", hashKey("randomkeyc01234567"), "sk-…", scanner, "")
		return st == 200 && !d.Allow && d.Reason == "claim_rate_limited" && d.RetryAfterS > 0 && d.RetryAfterS <= 30
	})
	if d := a.decideKey(t, "scannersOwnKey0123", scanner); !d.Allow {
		t.Fatalf("the scanner's own bound key was refused: %+v", d)
	}
	if d := a.decideKey(t, "newKeyElsewhere0123", "127.0.0.10"); !d.Allow {
		t.Fatalf("another address's first use was refused: %+v", d)
	}
	// One alert per window, however many more keys the source presents.
	a.decideKey(t, "newKeyD0123456789", scanner)
	time.Sleep(time.Second)
	if n := len(bodiesNow()); n != 1 {
		t.Fatalf("%d alerts, want 1", n)
	}
	if conn := a.db(t); count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, hashKey("newkeyd0123456789")) != 0 {
		t.Fatal("a blocked source bound a key")
	}
	_, metrics := a.call(t, "", http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(metrics), `sentinel_claims_total{outcome="blocked"}`) {
		t.Error("metrics lack the blocked claims")
	}
}

// "Send test alert" in the console: 409 without a channel; a Telegram URL without its chat is
// refused when saved; a receiver that refuses the alert shows why (502, its answer quoted,
// never the URL's token); one that takes it, 200.
func TestSendTestAlertEndpoint(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`))
		}
	}))
	defer srv.Close()
	a := startAdmind(t, map[string]string{"ALERT_WEBHOOK_ALLOW_PRIVATE": "true"})
	tok := a.login(t)
	st, body := a.call(t, tok, http.MethodPost, "/admin/api/alerts/test", nil)
	wantError(t, st, body, http.StatusConflict, "no_alert_channel", "no alert channel")

	st, body = a.call(t, tok, http.MethodGet, "/admin/api/settings", nil)
	var set map[string]any
	if st != 200 || json.Unmarshal(body, &set) != nil {
		t.Fatalf("settings: %d %s", st, body)
	}
	set["alert_webhook_format"] = "telegram"
	set["alert_webhook_url"] = srv.URL + "/botSECRETTOKEN/sendMessage"
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/settings", set)
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "chat_id")
	set["alert_webhook_url"] = srv.URL + "/botSECRETTOKEN/sendMessage?chat_id=42"
	if st, body := a.call(t, tok, http.MethodPut, "/admin/api/settings", set); st != 200 {
		t.Fatalf("save: %d %s", st, body)
	}
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/alerts/test", nil)
	wantError(t, st, body, http.StatusBadGateway, "alert_not_delivered", "chat not found")
	if strings.Contains(string(body), "SECRETTOKEN") {
		t.Fatalf("the answer quotes the URL's token: %s", body)
	}
	refuse.Store(false)
	if st, body := a.call(t, tok, http.MethodPost, "/admin/api/alerts/test", nil); st != 200 || !strings.Contains(string(body), `"delivered":true`) {
		t.Fatalf("delivered: %d %s", st, body)
	}
}

// webhookReceiver takes every webhook and answers 200; bodies returns what arrived so far.
func webhookReceiver(t *testing.T) (url string, bodies func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}
