package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/key-ip-sentinel/sentinel/plugin"
)

// FuzzBoundKeyNeverPasses runs the whole path — request → plugin → real admind (PostgreSQL,
// Redis) → answer — for requests whose method, path, user agent and query are the fuzzer's,
// all carrying one key bound to 127.0.0.2. From 127.0.0.3 no input may make the plugin forward
// the request, in either failsafe mode, nor answer 503 (admind is up: a 503 would be a false
// failsafe); from 127.0.0.2 the key keeps working. The local cache is off (cacheTTL 1ns), so
// every request is decided by admind.
func FuzzBoundKeyNeverPasses(f *testing.F) {
	a := startAdmind(f, nil)
	dir := f.TempDir()
	tokenFile, secretFile := filepath.Join(dir, "token"), filepath.Join(dir, "secret")
	if err := os.WriteFile(tokenFile, []byte(testInternalToken), 0o600); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(testHMACSecret), 0o600); err != nil {
		f.Fatal(err)
	}
	var forwarded bool
	// New API serving the request: a first use is confirmed by this answer.
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { forwarded = true; w.WriteHeader(http.StatusOK) })
	gate := map[string]http.Handler{}
	for _, mode := range []string{"open", "closed"} {
		cfg := plugin.CreateConfig()
		cfg.AdmindURL, cfg.InternalTokenFile, cfg.HMACSecretFile = a.internalURL, tokenFile, secretFile
		cfg.FailsafeMode, cfg.CacheTTL = mode, "1ns"
		h, err := plugin.New(context.Background(), next, cfg, "fuzz-"+mode)
		if err != nil {
			f.Fatal(err)
		}
		gate[mode] = h
	}
	const key = "sk-FuzzBoundKey0123456789abcdefghijklmnopqrstuv"
	send := func(h http.Handler, from, method, path, ua, query string) (int, bool) {
		req := httptest.NewRequest(http.MethodPost, "http://gw.test/v1/chat/completions", nil)
		req.Method = method
		req.URL = &url.URL{Path: path, RawQuery: query}
		req.RequestURI = ""
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header["User-Agent"] = []string{ua}
		req.RemoteAddr = from + ":4711"
		forwarded = false
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		return rw.Code, forwarded
	}
	if _, ok := send(gate["closed"], "127.0.0.2", http.MethodPost, "/v1/chat/completions", "bind", ""); !ok {
		f.Fatal("first use from 127.0.0.2 was not forwarded")
	}

	f.Add("POST", "/v1/chat/completions", "openai-python/1.0", "")
	f.Add("POST", "/v1/chat/completions", strings.Repeat("\xff", 512), "")
	f.Add("POST", "/v1/\x00", "curl", "")
	f.Add(strings.Repeat("M", 600), "/v1/models", "curl", "")
	f.Add("GET", "/v1/models/"+strings.Repeat("\xc3", 511), "\x01\x7f\u0085", "key=x\x00")
	f.Fuzz(func(t *testing.T, method, path, ua, query string) {
		path = "/v1/" + strings.TrimPrefix(path, "/v1/") // a route New API reads keys on
		for mode, h := range gate {
			if code, ok := send(h, "127.0.0.3", method, path, ua, query); ok || code == http.StatusServiceUnavailable {
				t.Fatalf("%s mode, from another address: forwarded %v, status %d", mode, ok, code)
			}
		}
		if query == "" {
			if code, ok := send(gate["closed"], "127.0.0.2", method, path, ua, ""); !ok {
				t.Fatalf("from the bound address: status %d, not forwarded", code)
			}
		}
	})
}
