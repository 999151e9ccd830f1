package yaegihost

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// claimingAdmind claims every key (a provisional answer) and counts confirms and releases.
type claimingAdmind struct {
	mu                 sync.Mutex
	confirms, releases int
}

func (a *claimingAdmind) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch r.URL.Path {
	case "/internal/v1/decide":
		_ = json.NewEncoder(w).Encode(map[string]any{"allow": true, "provisional": true, "claim": "0123456789abcdef0123456789abcdef", "cache_ttl_s": 60})
	case "/internal/v1/confirm":
		a.confirms++
		_ = json.NewEncoder(w).Encode(map[string]any{"allow": true, "cache_ttl_s": 60,
			"binding": map[string]any{"status": "active", "mode": "single", "cidrs": []string{"127.0.0.2/32"}}})
	case "/internal/v1/release":
		a.releases++
	}
}

// hijackable is a compiled ResponseWriter that can be hijacked, as Traefik's is.
type hijackable struct {
	*httptest.ResponseRecorder
	hijacked bool
}

func (h *hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.hijacked = true
	c, _ := net.Pipe()
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// Under Yaegi the ResponseWriter the plugin hands on to compiled code for a claimed first use
// hides http.Flusher (traefik/yaegi#1600): each write must still reach the client at once, a
// success confirm the claim, an upgrade (Hijack) confirm it, and a 401 release it.
func TestClaimedFirstUseUnderYaegi(t *testing.T) {
	a := &claimingAdmind{}
	srv := httptest.NewServer(a)
	defer srv.Close()
	var flushedAfterFirstWrite, sawHijacker bool
	var inner http.ResponseWriter
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/realtime":
			hj, ok := w.(http.Hijacker)
			sawHijacker = ok
			if ok {
				_, _, _ = hj.Hijack()
			}
		case "/v1/refused":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: first\n\n"))
			flushedAfterFirstWrite = inner.(*httptest.ResponseRecorder).Flushed
			_, _ = w.Write([]byte("data: [DONE]\n\n"))
		}
	})
	p := loadPlugin(t, secretsEnv())
	h, err := p.build(t, map[string]any{"admindURL": srv.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET"}, next)
	if err != nil {
		t.Fatal(err)
	}
	send := func(path string, rw http.ResponseWriter) {
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test"+path, nil)
		req.RemoteAddr = "127.0.0.2:1"
		// A key per request: a confirmed key is cached, and its next request is no claim.
		req.Header.Set("Authorization", "Bearer sk-claimedUnderYaegi"+strings.NewReplacer("/", "", "v1", "").Replace(path))
		h.ServeHTTP(rw, req)
	}

	rec := httptest.NewRecorder()
	inner = rec
	send("/v1/chat/completions", rec)
	if !flushedAfterFirstWrite || rec.Body.String() != "data: first\n\ndata: [DONE]\n\n" || a.confirms != 1 {
		t.Fatalf("stream: flushed after the first write %v, body %q, confirms %d", flushedAfterFirstWrite, rec.Body, a.confirms)
	}
	hj := &hijackable{ResponseRecorder: httptest.NewRecorder()}
	send("/v1/realtime", hj)
	if !sawHijacker || !hj.hijacked || a.confirms != 2 {
		t.Fatalf("upgrade: next saw a Hijacker %v, hijacked %v, confirms %d", sawHijacker, hj.hijacked, a.confirms)
	}
	send("/v1/refused", httptest.NewRecorder())
	if a.releases != 1 || a.confirms != 2 {
		t.Fatalf("refused: releases %d confirms %d", a.releases, a.confirms)
	}
}
