package yaegihost

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkCacheHitUnderYaegi is the plugin's cache-hit path as Traefik runs it (interpreted),
// against the same path with a no-op handler: `go test -bench . ./internal/yaegihost`.
// Interpreted code costs per statement, so this is where the hot path is tuned.
func BenchmarkCacheHitUnderYaegi(b *testing.B) {
	t := &testing.T{}
	p := loadPlugin(t, secretsEnv())
	admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"allow":true,"cache_ttl_s":3600,"binding":{"status":"active","mode":"single","cidrs":["127.0.0.2/32"]}}`))
	}))
	defer admind.Close()
	h, err := p.build(t, map[string]any{"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN",
		"hmacSecretEnv": "SENTINEL_HMAC_SECRET", "cacheTTL": "1h"}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
	req.RemoteAddr = "127.0.0.2:4711"
	req.Header.Set("Authorization", "Bearer sk-benchmarkKey0123456789")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "openai-python/1.0")
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req) // binds and fills the local cache
	if rw.Code != http.StatusOK {
		b.Fatalf("warm-up: %d %s", rw.Code, rw.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(rw, req)
	}
}
