//go:build !race

// Yaegi v0.16.1 itself has data races the race detector reports when interpreted code runs
// on many goroutines (lazy type resolution in interp/type.go, function wrappers), so this
// test is built only without -race: `make yaegi` runs it in a go test of its own.

package yaegihost

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestConcurrentRedisUnderYaegi hammers the Redis path from many goroutines inside the
// interpreter (the local cache is off, so every request is a Redis GET on a pooled
// connection). make bench found a panic here that go test never shows: a connection read
// by two goroutines at once.
func TestConcurrentRedisUnderYaegi(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	const keys = 50
	for i := 0; i < keys; i++ {
		bindInRedis(t, rdb, fmt.Sprintf("concurrentkey%04d", i), "v1|active|single|127.0.0.2/32")
	}
	var admindCalls atomic.Int64
	admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admindCalls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer admind.Close()
	p := loadPlugin(t, secretsEnv())
	h, err := p.build(t, map[string]any{
		"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET",
		"redisAddr": srv.Addr, "redisDB": strconv.Itoa(srv.DB), "cacheTTL": "1ns", "redisPoolSize": "8", "redisTimeout": "2s",
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var panics, wrong atomic.Int64
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					panics.Add(1)
					t.Errorf("panic under Yaegi: %v", r)
				}
			}()
			for i := 0; i < 300; i++ {
				req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
				req.RemoteAddr = "127.0.0.2:1"
				req.Header.Set("Authorization", fmt.Sprintf("Bearer sk-concurrentKey%04d", (g*300+i)%keys))
				rw := httptest.NewRecorder()
				h.ServeHTTP(rw, req)
				if rw.Code != http.StatusTeapot {
					wrong.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	if panics.Load() > 0 || wrong.Load() > 0 || admindCalls.Load() > 0 {
		t.Fatalf("%d panics, %d wrong answers, %d admind calls out of 9600 requests", panics.Load(), wrong.Load(), admindCalls.Load())
	}
}
