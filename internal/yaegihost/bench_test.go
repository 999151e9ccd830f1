package yaegihost

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// BenchmarkCacheHitUnderYaegi is the plugin's cache-hit path as Traefik runs it (interpreted),
// beside bench/noop (make bench's no-op plugin) under the same interpreter on the same request:
// `go test -run '^$' -bench CacheHit ./internal/yaegihost`. The sentinel sub-benchmark reports
// its time as a ratio of the no-op one's (x-noop), and the difference (added-ns/op).
// Interpreted code costs per statement and per frame slot, so this is where the hot path is
// tuned. general-local is the general path deciding from the local cache (a request the hot
// path does not take: what a hot entry's absence costs, without I/O). general-redis is make
// bench's route d in process: the local cache off (cacheTTL 1ns), so every request takes the
// general path and reads its binding from a real Redis.
func BenchmarkCacheHitUnderYaegi(b *testing.B) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
	req.RemoteAddr = "127.0.0.2:4711"
	req.Header.Set("Authorization", "Bearer sk-benchmarkKey0123456789")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "openai-python/1.0")

	var noopNs float64
	b.Run("noop", func(b *testing.B) {
		h := loadNoop(b, next)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(nil, req)
		}
		noopNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	// sentinel is the hot path; general-local the same request with a query, which keeps it off
	// the hot path, so the general path decides it from the local cache.
	for _, c := range []struct{ name, query string }{{"sentinel", ""}, {"general-local", "x=1"}} {
		b.Run(c.name, func(b *testing.B) {
			t := &testing.T{}
			p := loadPlugin(t, secretsEnv())
			admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"allow":true,"cache_ttl_s":3600,"binding":{"status":"active","mode":"single","cidrs":["127.0.0.2/32"]}}`))
			}))
			defer admind.Close()
			h, err := p.build(t, map[string]any{"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN",
				"hmacSecretEnv": "SENTINEL_HMAC_SECRET", "cacheTTL": "1h"}, next)
			if err != nil {
				b.Fatal(err)
			}
			req := req.Clone(req.Context())
			req.URL.RawQuery = c.query
			timeAllowed(b, h, req, noopNs)
		})
	}
	b.Run("general-redis", func(b *testing.B) {
		t := &testing.T{}
		srv := testenv.Redis(b)
		bindInRedis(b, srv.Client(b), "benchmarkkey0123456789", "v1|active|single|127.0.0.2/32")
		admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable) // never asked: Redis has the binding
		}))
		defer admind.Close()
		p := loadPlugin(t, secretsEnv())
		h, err := p.build(t, map[string]any{"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN",
			"hmacSecretEnv": "SENTINEL_HMAC_SECRET", "redisAddr": srv.Addr, "redisDB": strconv.Itoa(srv.DB), "cacheTTL": "1ns"}, next)
		if err != nil {
			b.Fatal(err)
		}
		timeAllowed(b, h, req, noopNs)
	})
}

// timeAllowed sends req once (it binds, or fills the caches), then times h answering it, which
// must allow it every time.
func timeAllowed(b *testing.B, h http.Handler, req *http.Request, noopNs float64) {
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)
	if rw.Code != http.StatusOK {
		b.Fatalf("warm-up: %d %s", rw.Code, rw.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(rw, req)
	}
	if rw.Code != http.StatusOK {
		b.Fatalf("answered %d", rw.Code)
	}
	reportVsNoop(b, noopNs)
}

// BenchmarkFloodRequestUnderYaegi is one request of make bench's random-key flood as the
// plugin handles it: a key never seen from a source admind has refused new claims (429).
// "admind": the bound set is not known complete (no marker), so each is a Redis round trip
// and admind's answer, as before plugin/limits.go; "local": the set is complete, so one Redis
// round trip shows the key bound nowhere and the plugin answers itself.
func BenchmarkFloodRequestUnderYaegi(b *testing.B) {
	for _, complete := range []bool{false, true} {
		name := "admind"
		if complete {
			name = "local"
		}
		b.Run(name, func(b *testing.B) {
			t := &testing.T{}
			srv := testenv.Redis(b)
			if complete {
				rdb := srv.Client(b)
				rdb.SAdd(context.Background(), "sentinel:bound", "-")
				rdb.Set(context.Background(), "sentinel:bound:complete", "1", time.Hour)
			}
			var decides atomic.Int64
			admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				decides.Add(1)
				_, _ = w.Write([]byte(`{"allow":false,"provisional":true,"reason":"claim_rate_limited","retry_after_s":42}`))
			}))
			defer admind.Close()
			p := loadPlugin(t, secretsEnv())
			h, err := p.build(t, map[string]any{"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN",
				"hmacSecretEnv": "SENTINEL_HMAC_SECRET", "redisAddr": srv.Addr, "redisDB": strconv.Itoa(srv.DB)},
				http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Fatal("a flood request was forwarded") }))
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
			req.RemoteAddr = "127.0.1.1:4711"
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "flood/1.0")
			n := 0
			flood := func() {
				n++
				req.Header.Set("Authorization", "Bearer flood"+strconv.Itoa(1000000+n)+"0123456789abcdef")
				rw := httptest.NewRecorder()
				h.ServeHTTP(rw, req)
				if rw.Code != http.StatusTooManyRequests {
					b.Fatalf("answered %d %s", rw.Code, rw.Body)
				}
			}
			flood() // admind's first 429 limits the source
			decides.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				flood()
			}
			b.ReportMetric(float64(decides.Load())/float64(b.N), "decides/op")
		})
	}
}

// reportVsNoop adds the time per op as a ratio of the no-op plugin's and the difference.
func reportVsNoop(b *testing.B, noopNs float64) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	if noopNs > 0 {
		b.ReportMetric(ns/noopNs, "x-noop")
		b.ReportMetric(ns-noopNs, "added-ns/op")
	}
}

// loadNoop interprets bench/noop as Traefik would load it.
func loadNoop(b *testing.B, next http.Handler) http.Handler {
	gopath := b.TempDir()
	if err := testenv.InstallBenchPlugin(gopath); err != nil {
		b.Fatal(err)
	}
	i := interp.New(interp.Options{GoPath: filepath.Join(gopath, "plugins-local")})
	if err := i.Use(stdlib.Symbols); err != nil {
		b.Fatal(err)
	}
	if _, err := i.Eval(`import "github.com/key-ip-sentinel/noop"`); err != nil {
		b.Fatal(err)
	}
	fnNew, err := i.Eval("noop.New")
	if err != nil {
		b.Fatal(err)
	}
	fnCreate, err := i.Eval("noop.CreateConfig")
	if err != nil {
		b.Fatal(err)
	}
	h, err := plugin{fnNew: fnNew, fnCreateConfig: fnCreate}.build(&testing.T{}, map[string]any{}, next)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkCallShapesUnderYaegi is why the plugin's request code calls plain functions, not
// methods (docs/architecture.md, "Living inside Yaegi"): under Yaegi v0.16.1 a call of a
// method declared in interpreted code goes through reflect.Value.Call, about three times the
// allocations and time of the same call written as a function or a method expression.
func BenchmarkCallShapesUnderYaegi(b *testing.B) {
	const src = `package shapes
type counter struct{ n int }
var c = &counter{}
func (c *counter) next() int { return c.n + 1 }
func next(c *counter) int    { return c.n + 1 }
func Method() int            { return c.next() }
func Function() int          { return next(c) }
func MethodExpression() int  { return (*counter).next(c) }
`
	i := interp.New(interp.Options{})
	if err := i.Use(stdlib.Symbols); err != nil {
		b.Fatal(err)
	}
	if _, err := i.Eval(src); err != nil {
		b.Fatal(err)
	}
	for _, shape := range []string{"Method", "Function", "MethodExpression"} {
		v, err := i.Eval("shapes." + shape)
		if err != nil {
			b.Fatal(err)
		}
		call := v.Interface().(func() int)
		b.Run(shape, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if call() != 1 {
					b.Fatal("wrong result")
				}
			}
		})
	}
}
