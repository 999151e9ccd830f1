package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	_, metrics := a.call(t, "", http.MethodGet, "/metrics", nil)
	for _, want := range []string{`sentinel_webhook_deliveries_total{outcome="delivered"} 1`, `sentinel_webhook_deliveries_total{outcome="retried"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
