package e2e

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// keyHash is the plugin's hash of a normalised key: of its canonical, lower-case form.
func keyHash(normalised string) string {
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write([]byte(strings.ToLower(normalised)))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *stack) call(t *testing.T, from, path string, headers map[string]string) (int, string) {
	t.Helper()
	return callVia(t, s.webURL, from, path, headers)
}

// callVia is call through the Traefik at base.
func callVia(t *testing.T, base, from, path string, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{"model":"gpt-4o-mini"}`))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := clientFrom(from).Do(req)
	if err != nil {
		t.Fatalf("request from %s: %v", from, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFirstUseBindingThroughTraefik is the foundation's end-to-end story (issue 2).
func TestFirstUseBindingThroughTraefik(t *testing.T) {
	s := startStack(t, stackOptions{})
	pg := s.pg(t)
	rc := s.redisClient(t)
	ctx := context.Background()
	const key = "e2eFirstUseKey0123456789abcdef"
	bearer := map[string]string{"Authorization": "Bearer sk-" + key}
	hash := keyHash(key)

	t.Run("first request binds", func(t *testing.T) {
		if st, body := s.call(t, "127.0.0.2", "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("status %d: %s", st, body)
		}
		var firstIP, cidrs string
		err := pg.QueryRow(ctx, `SELECT host(first_ip), array_to_string(cidrs, ',') FROM token_bindings WHERE key_hash = $1`, hash).Scan(&firstIP, &cidrs)
		if err != nil || firstIP != "127.0.0.2" || cidrs != "127.0.0.2/32" {
			t.Fatalf("row: %q %q %v", firstIP, cidrs, err)
		}
		if v, err := rc.Get(ctx, "sentinel:b:"+hash).Result(); err != nil || v != "v1|active|single|127.0.0.2/32" {
			t.Fatalf("redis: %q %v", v, err)
		}
	})
	t.Run("same address passes", func(t *testing.T) {
		if st, _ := s.call(t, "127.0.0.2", "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("status %d", st)
		}
	})
	t.Run("other address refused and recorded", func(t *testing.T) {
		before := s.upstream.Hits()
		st, body := s.call(t, "127.0.0.3", "/v1/chat/completions", bearer)
		if st != 403 || !strings.Contains(body, `"code":"ip_not_allowed"`) || !strings.Contains(body, `"type":"sentinel_error"`) {
			t.Fatalf("status %d: %s", st, body)
		}
		if s.upstream.Hits() != before {
			t.Fatal("refused request reached the upstream")
		}
		testenv.WaitFor(t, 10*time.Second, "intercept row", func() bool {
			var n int
			_ = pg.QueryRow(ctx, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND host(ip) = '127.0.0.3'`, hash).Scan(&n)
			return n == 1
		})
	})
	t.Run("spoofed forwarding headers from an untrusted peer change nothing", func(t *testing.T) {
		h := map[string]string{"Authorization": "Bearer sk-" + key, "X-Forwarded-For": "127.0.0.2", "X-Real-Ip": "127.0.0.2", "Forwarded": "for=127.0.0.2"}
		if st, _ := s.call(t, "127.0.0.3", "/v1/chat/completions", h); st != 403 {
			t.Fatalf("spoofed XFF: status %d", st)
		}
	})
	t.Run("SSE streams chunk by chunk", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.webURL+"/v1/chat/completions?stream=true", strings.NewReader(`{"stream":true}`))
		req.Header.Set("Authorization", "Bearer sk-"+key)
		resp, err := clientFrom("127.0.0.2").Do(req) //nolint:bodyclose // closed below; a goroutine reads it
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if l := sc.Text(); l != "" {
					lines <- l
				}
			}
			if err := sc.Err(); err != nil {
				lines <- "read error: " + err.Error()
			}
			close(lines)
		}()
		// The upstream holds the rest of the stream until released: the first chunk can only
		// arrive now if nothing between client and upstream buffers the response.
		select {
		case l := <-lines:
			if !strings.Contains(l, "first") {
				t.Fatalf("first chunk %q", l)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("first SSE chunk did not arrive before the upstream finished")
		}
		close(s.upstream.release)
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		if len(rest) != 2 || !strings.Contains(rest[0], "second") || rest[1] != "data: [DONE]" {
			t.Fatalf("rest of stream %q", rest)
		}
	})
	t.Run("sk-K, K and sk-K-2 are one binding", func(t *testing.T) {
		const k = "e2eNormalisedKey42"
		for _, h := range []map[string]string{
			{"Authorization": "Bearer sk-" + k},
			{"X-Api-Key": k},
			{"Authorization": "Bearer sk-" + k + "-2"},
			{"X-Goog-Api-Key": k},
		} {
			if st, body := s.call(t, "127.0.0.4", "/v1/chat/completions", h); st != 200 {
				t.Fatalf("%v: status %d %s", h, st, body)
			}
		}
		if st, _ := s.call(t, "127.0.0.5", "/v1/chat/completions", map[string]string{"Authorization": k}); st != 403 {
			t.Fatalf("bare key from another address: status %d", st)
		}
		var n int
		if err := pg.QueryRow(ctx, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, keyHash(k)).Scan(&n); err != nil || n != 1 {
			t.Fatalf("bindings for %s: %d %v", k, n, err)
		}
	})
	t.Run("query key binds too", func(t *testing.T) {
		const k = "e2eQueryKey77"
		if st, _ := s.call(t, "127.0.0.6", "/v1beta/models/gemini:generateContent?key="+k, nil); st != 200 {
			t.Fatalf("status %d", st)
		}
		if st, _ := s.call(t, "127.0.0.7", "/v1beta/models/gemini:generateContent?key="+k, nil); st != 403 {
			t.Fatalf("query key from another address: status %d", st)
		}
	})
	t.Run("two different keys are refused with 400", func(t *testing.T) {
		before := s.upstream.Hits()
		st, body := s.call(t, "127.0.0.2", "/v1/messages", map[string]string{"Authorization": "Bearer sk-" + key, "X-Api-Key": "sk-someOtherKey"})
		if st != 400 || !strings.Contains(body, "ambiguous_api_key") {
			t.Fatalf("status %d: %s", st, body)
		}
		if s.upstream.Hits() != before {
			t.Fatal("ambiguous request reached the upstream")
		}
	})
	t.Run("no key passes to New API untouched", func(t *testing.T) {
		if st, _ := s.call(t, "127.0.0.8", "/v1/models", nil); st != 200 {
			t.Fatalf("status %d", st)
		}
	})
	t.Run("dashboard login is not bound", func(t *testing.T) {
		if st, _ := s.call(t, "127.0.0.8", "/api/user/self", map[string]string{"Authorization": "Bearer dashboardSessionToken"}); st != 200 {
			t.Fatalf("status %d", st)
		}
		var n int
		_ = pg.QueryRow(ctx, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, keyHash("dashboardSessionToken")).Scan(&n)
		if n != 0 {
			t.Fatal("dashboard token was bound")
		}
	})
	t.Run("raw keys appear in no log, table or Redis value", func(t *testing.T) {
		raw := []string{key, "e2eNormalisedKey42", "e2eQueryKey77", "someOtherKey"}
		for _, path := range s.logs {
			b, _ := os.ReadFile(path)
			for _, k := range raw {
				if strings.Contains(string(b), k) {
					t.Errorf("%s contains raw key %s", path, k)
				}
			}
		}
		var dump string
		err := pg.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, ' '), '') FROM (
			SELECT row_to_json(b)::text AS t FROM token_bindings b
			UNION ALL SELECT row_to_json(i)::text FROM intercept_logs i) x`).Scan(&dump)
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := rc.Keys(ctx, "*").Result()
		for _, k := range keys {
			typ, _ := rc.Type(ctx, k).Result()
			if typ == "string" {
				v, _ := rc.Get(ctx, k).Result()
				dump += " " + k + "=" + v
			} else {
				dump += " " + k
			}
		}
		for _, k := range raw {
			if strings.Contains(dump, k) {
				t.Errorf("stored data contains raw key %s", k)
			}
		}
	})
	t.Run("plugin options are visible in Traefik's API but hold no secret", func(t *testing.T) {
		var mw map[string]any
		if err := getJSON(s.apiURL+"/api/http/middlewares/sentinel@file", &mw); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(mw)
		if strings.Contains(string(b), hmacSecret) || strings.Contains(string(b), internalToken) {
			t.Fatalf("secret visible in Traefik's API: %s", b)
		}
	})
}
