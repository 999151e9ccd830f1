package yaegihost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// A source admind refused new claims (429) gets the same 429 from the plugin itself for a key
// that Redis shows bound nowhere (plugin/limits.go), inside the interpreter and against a real
// Redis running the probe script. Every other key from it still goes to admind, or is decided
// from its entry: one in the bound set, under its spelled form's hash too, one a claim holds,
// any key once the set is not marked complete; and so does every other address.
func TestLimitedSourceUnderYaegi(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	hash := func(key string) string { return identity.Hash([]byte(yaegiHMACSecret), key) }
	rdb.SAdd(ctx, "sentinel:bound", "-")
	rdb.Set(ctx, "sentinel:bound:complete", "1", time.Hour)

	var mu sync.Mutex
	var decided []string // key hashes admind was asked about
	admind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			KeyHash string `json:"key_hash"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		decided = append(decided, ev.KeyHash)
		mu.Unlock()
		_, _ = w.Write([]byte(`{"allow":false,"provisional":true,"reason":"claim_rate_limited","retry_after_s":42}`))
	}))
	defer admind.Close()
	p := loadPlugin(t, secretsEnv())
	h, err := p.build(t, map[string]any{
		"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET",
		"redisAddr": srv.Addr, "redisDB": strconv.Itoa(srv.DB),
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
		req.RemoteAddr = from + ":4711"
		req.Header.Set("Authorization", "Bearer "+key)
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		return rw
	}
	asked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(decided)
	}
	step := func(desc, from, key string, wantCode int, wantAsked bool) {
		t.Helper()
		before := asked()
		rw := send(from, key)
		if rw.Code != wantCode || (asked() > before) != wantAsked {
			t.Fatalf("%s: %d, admind asked %v; want %d, asked %v", desc, rw.Code, asked() > before, wantCode, wantAsked)
		}
		if rw.Code == http.StatusTooManyRequests {
			ra, err := strconv.Atoi(rw.Header().Get("Retry-After"))
			if err != nil || ra < 1 || ra > 42 {
				t.Fatalf("%s: Retry-After %q", desc, rw.Header().Get("Retry-After"))
			}
		}
	}

	step("the first unknown key: admind limits the source", "127.0.1.1", "sk-floodkey00000001", 429, true)
	step("the next one: refused here", "127.0.1.1", "sk-floodkey00000002", 429, false)
	step("another address: admind", "127.0.1.2", "sk-floodkey00000003", 429, true)

	rdb.SAdd(ctx, "sentinel:bound", hash("boundelsewhere0123")[:16])
	step("a key in the bound set: admind", "127.0.1.1", "sk-boundelsewhere0123", 429, true)
	rdb.SAdd(ctx, "sentinel:bound", hash("LegacyBound0123")[:16]) // as spelled, without sk-
	step("a key bound under its spelled form: admind", "127.0.1.1", "sk-LegacyBound0123", 429, true)
	rdb.Set(ctx, "sentinel:claim:"+hash("pendingclaim0123"), "0123456789abcdef0123456789abcdef 127.0.1.1/32", time.Minute)
	step("a key a claim holds: admind", "127.0.1.1", "sk-pendingclaim0123", 429, true)
	bindInRedis(t, rdb, "entrykey0123456789", "v1|active|single|127.0.1.1/32")
	step("a key with an entry allowing the source: forwarded", "127.0.1.1", "sk-entrykey0123456789", http.StatusTeapot, false)

	rdb.Del(ctx, "sentinel:bound:complete")
	step("no marker: admind", "127.0.1.1", "sk-floodkey00000004", 429, true)
	rdb.Set(ctx, "sentinel:bound:complete", "1", time.Hour)
	step("marker back: refused here", "127.0.1.1", "sk-floodkey00000005", 429, false)

	// The refusals made here reach the counter event (admind adds them to /metrics).
	testenv.WaitFor(t, 10*time.Second, "the plugin's counter event", func() bool {
		msgs, _ := rdb.XRange(ctx, "sentinel:events", "-", "+").Result()
		n := 0
		for _, m := range msgs {
			if m.Values["type"] == "failsafe" {
				v, _ := strconv.Atoi(m.Values["limited"].(string))
				n += v
			}
		}
		return n == 2
	})
}
