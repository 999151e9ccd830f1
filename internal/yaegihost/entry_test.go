package yaegihost

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// Refusals decided from a Redis binding entry, inside the interpreter: the first through the
// Redis lookup (decideByEntry), the next ones from the local cache it filled. Every one
// reaches the events stream with the key's hash. Under Yaegi v0.16.1 a parallel assignment
// mixing a variable and a call dropped the hash from the cached binding, and admind dropped
// those events as malformed (make test's fault tests caught it; go test could not).
func TestRedisEntryRefusalsUnderYaegi(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	hash := bindInRedis(t, rdb, "entrykey0123456789", "v1|active|single|127.0.0.2/32")
	admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("admind asked %s: Redis has the binding", r.URL.Path)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer admind.Close()
	p := loadPlugin(t, secretsEnv())
	h, err := p.build(t, map[string]any{
		"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET",
		"redisAddr": srv.Addr, "redisDB": strconv.Itoa(srv.DB), "cacheTTL": "1m",
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if err != nil {
		t.Fatal(err)
	}
	for i, from := range []string{"127.0.0.3:1", "127.0.0.3:2", "127.0.0.4:1", "127.0.0.2:1"} {
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
		req.RemoteAddr = from
		req.Header.Set("Authorization", "Bearer sk-EntryKey0123456789")
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		want := http.StatusForbidden
		if i == 3 {
			want = http.StatusTeapot // the owner
		}
		if rw.Code != want {
			t.Fatalf("request %d from %s: %d, want %d", i, from, rw.Code, want)
		}
	}
	var entries []map[string]any
	testenv.WaitFor(t, 5*time.Second, "three intercept events", func() bool {
		msgs, err := rdb.XRange(ctx, "sentinel:events", "-", "+").Result()
		entries = entries[:0]
		for _, msg := range msgs {
			entries = append(entries, msg.Values)
		}
		return err == nil && len(entries) >= 3
	})
	for i, e := range entries {
		if e["key_hash"] != hash || e["reason"] != "ip_not_allowed" || e["key_hint"] != "sk-Entr…6789" {
			t.Errorf("event %d: %v", i, e)
		}
	}
}
