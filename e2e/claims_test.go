package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/newapi"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestFirstUseBindsOnlyKeysNewAPIAccepts runs through Traefik, the plugin and admind in front
// of the real New API: strings New API refuses (401) bind nothing and log nothing, however
// many addresses send them; a key New API serves binds to the first address it served, and 50
// addresses racing on a new key leave one binding and one served address.
func TestFirstUseBindsOnlyKeysNewAPIAccepts(t *testing.T) {
	up := newUpstream(t)
	na := newapi.Start(t, newapi.Options{UpstreamURL: up.url, Keys: 7})
	racing, preBound := na.Keys[1:6], na.Keys[6]
	s := startStack(t, stackOptions{UpstreamURL: na.URL})
	ctx := context.Background()
	rdb := s.redisClient(t)

	garbage := randomKey(t)
	for i := 2; i < 12; i++ {
		if st, err := chatFrom(s.webURL, "127.0.3."+strconv.Itoa(i), "Bearer sk-"+garbage); err != nil || st != http.StatusUnauthorized {
			t.Fatalf("a string New API refuses, from address %d: %d %v (want New API's 401)", i, st, err)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings`) + countRows(t, s, `SELECT count(*) FROM intercept_logs`); n != 0 {
		t.Fatalf("refused strings left %d rows", n)
	}
	if keys := rdb.Keys(ctx, "sentinel:claim:*").Val(); len(keys) != 0 {
		t.Fatalf("claims left in Redis: %v", keys)
	}

	// One address sending strings that are no keys: 30 claims a minute (the default limit),
	// then 429 with Retry-After, and still nothing written.
	limited := 0
	for i := 0; i < 35; i++ {
		req, _ := http.NewRequest(http.MethodPost, s.webURL+"/v1/chat/completions", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer sk-"+randomKey(t))
		resp, err := clientFrom("127.0.3.99").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case i < 30 && resp.StatusCode != http.StatusUnauthorized:
			t.Fatalf("string %d: %d, want New API's 401", i, resp.StatusCode)
		case i >= 30 && (resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == ""):
			t.Fatalf("string %d over the limit: %d Retry-After %q", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		case i >= 30:
			limited++
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings`) + countRows(t, s, `SELECT count(*) FROM intercept_logs`); n != 0 {
		t.Fatalf("a flood of strings left %d rows", n)
	}

	if st, err := chatFrom(s.webURL, "127.0.3.20", "Bearer sk-"+na.Keys[0]); err != nil || st != 200 {
		t.Fatalf("a real key's first use: %d %v", st, err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND host(first_ip) = '127.0.3.20'`, keyHash(na.Keys[0])); n != 1 {
		t.Fatalf("the real key is not bound to its first address (%d rows)", n)
	}
	if st, _ := chatFrom(s.webURL, "127.0.3.21", "Bearer sk-"+na.Keys[0]); st != http.StatusForbidden {
		t.Fatalf("the bound key from another address: %d", st)
	}

	limitedSourceAnsweredByPlugin(t, s, limited, na.Keys[0], preBound)

	for _, key := range racing {
		var mu sync.Mutex
		served := []string{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 1; i <= 50; i++ {
			ip := "127.0.4." + strconv.Itoa(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				st, err := chatFrom(s.webURL, ip, "Bearer sk-"+key)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && st == 200:
					served = append(served, ip)
				case err == nil && st == http.StatusForbidden:
				default:
					t.Errorf("%s: %d %v", ip, st, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(served) != 1 {
			t.Fatalf("50 addresses racing on a new key: served %v", served)
		}
		if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND host(first_ip) = $2`, keyHash(key), served[0]); n != 1 {
			t.Fatalf("the race's binding is not to the one served address %s", served[0])
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings`); n != len(na.Keys) {
		t.Fatalf("%d bindings for %d real keys", n, len(na.Keys))
	}
	t.Logf("10 refused strings from 10 addresses and 35 from one (%d of them 429): 0 rows; %d real keys: %d bindings; %d races of 50 addresses: one served each", limited, len(na.Keys), len(na.Keys), len(racing))
}

// limitedSourceAnsweredByPlugin: 127.0.3.99 is over its claim limit (it got limitedBefore
// 429s). Its further strings get 429 from the plugin without an admind decision
// (plugin/limits.go), and every 429 it got is counted on /metrics; its
// keys bound elsewhere or to it are decided as before, even with no Redis entry to decide
// from (so the bound set answers): bound is 403 with an intercept row from here, preBound
// (pre-bound to 127.0.3.99) is served.
func limitedSourceAnsweredByPlugin(t *testing.T, s *stack, limitedBefore int, bound, preBound string) {
	t.Helper()
	ctx := context.Background()
	rdb := s.redisClient(t)
	if st, body := s.admin(t, s.adminToken(t), "POST", "/bindings", map[string]any{"key": "sk-" + preBound, "mode": "single", "cidrs": []string{"127.0.3.99"}}); st != 201 {
		t.Fatalf("pre-bind: %d %s", st, body)
	}
	decisions0 := s.admindDecisions(t)
	for i := 0; i < 10; i++ {
		if st, err := chatFrom(s.webURL, "127.0.3.99", "Bearer sk-"+randomKey(t)); err != nil || st != http.StatusTooManyRequests {
			t.Fatalf("string %d from the limited source: %d %v", i, st, err)
		}
	}
	if d := s.admindDecisions(t) - decisions0; d != 0 {
		t.Fatalf("admind decided %d strings from a source the plugin knew to be limited", d)
	}
	// Every 429 the source got is counted once: admind's own and the plugin's.
	testenv.WaitFor(t, 15*time.Second, "every 429 on /metrics", func() bool {
		return s.admindMetric(t, `sentinel_claims_total{outcome="limited"}`) == float64(limitedBefore+10)
	})

	rdb.Del(ctx, "sentinel:b:"+keyHash(bound))
	intercepts0 := countRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, keyHash(bound))
	if st, err := chatFrom(s.webURL, "127.0.3.99", "Bearer sk-"+bound); err != nil || st != http.StatusForbidden {
		t.Fatalf("a key bound elsewhere, from the limited source: %d %v (want 403, not 429)", st, err)
	}
	testenv.WaitFor(t, 10*time.Second, "its intercept row", func() bool {
		return countRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, keyHash(bound)) == intercepts0+1
	})
	if st, err := chatFrom(s.webURL, "127.0.3.99", "Bearer sk-"+preBound); err != nil || st != 200 {
		t.Fatalf("a key pre-bound to the limited source: %d %v", st, err)
	}
}

// chatFrom sends a chat completion New API can serve (its channel's model) from the address.
func chatFrom(base, from, auth string) (int, error) {
	return postBodyFrom(base, from, auth, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
}

// TestClaimFaults: New API down, New API hanging until the client gives up, and admind
// restarted between a claim and its confirmation. No fault leaves a binding the answer did
// not earn, or a claim stuck on the key.
func TestClaimFaults(t *testing.T) {
	hold := make(chan struct{})
	var mu sync.Mutex
	mode := "down"
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode
		mu.Unlock()
		switch m {
		case "hang":
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		case "held":
			<-hold
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstreamURL := "http://" + ln.Addr().String()
	ln.Close() // "down": nothing listens there yet
	s := startStack(t, stackOptions{UpstreamURL: upstreamURL})
	rdb := s.redisClient(t)
	ctx := context.Background()
	noClaims := func(what string) {
		t.Helper()
		testenv.WaitFor(t, 5*time.Second, what+": no claim left", func() bool { return len(rdb.Keys(ctx, "sentinel:claim:*").Val()) == 0 })
		if n := countRows(t, s, `SELECT count(*) FROM token_bindings`); n != 0 {
			t.Fatalf("%s: %d bindings", what, n)
		}
	}

	// New API down: Traefik's 502 reaches the client, the claim is released.
	if st, body := s.call(t, "127.0.5.2", "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-faultClaimKey0123456789"}); st != http.StatusBadGateway {
		t.Fatalf("New API down: %d %s", st, body)
	}
	noClaims("New API down")

	ln, err = net.Listen("tcp", strings.TrimPrefix(upstreamURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: upstream}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// New API hanging: the client gives up, and its claim goes with it.
	mu.Lock()
	mode = "hang"
	mu.Unlock()
	client := clientFrom("127.0.5.3")
	client.Timeout = 2 * time.Second
	req, _ := http.NewRequest(http.MethodPost, s.webURL+"/v1/chat/completions", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer sk-faultClaimKey0123456789")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("New API hanging: answered %d", resp.StatusCode)
	}
	noClaims("New API hanging")

	// admind restarted while New API works on the claimed request: the confirmation reaches
	// the new admind, and the key binds to its claimant.
	mu.Lock()
	mode = "held"
	mu.Unlock()
	done := make(chan int, 1)
	go func() {
		st, _ := postFrom(s.webURL, "127.0.5.4", "Bearer sk-faultClaimKey0123456789")
		done <- st
	}()
	testenv.WaitFor(t, 5*time.Second, "the claim", func() bool { return len(rdb.Keys(ctx, "sentinel:claim:*").Val()) == 1 })
	s.stopProc(t, "admind")
	s.startAdmind(t)
	close(hold)
	if st := <-done; st != 200 {
		t.Fatalf("the claimed request across the restart: %d", st)
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE host(first_ip) = '127.0.5.4'`); n != 1 {
		t.Fatalf("%d bindings to the claimant after the restart", n)
	}
	if st, _ := postFrom(s.webURL, "127.0.5.5", "Bearer sk-faultClaimKey0123456789"); st != http.StatusForbidden {
		t.Fatalf("another address after the binding: %d", st)
	}
}
