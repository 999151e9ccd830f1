package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/key-ip-sentinel/sentinel/internal/newapi"
)

// TestFirstUseBindsOnlyKeysNewAPIAccepts runs through Traefik, the plugin and admind in front
// of the real New API: strings New API refuses (401) bind nothing and log nothing, however
// many addresses send them; a key New API serves binds to the first address it served, and 50
// addresses racing on a new key leave one binding and one served address.
func TestFirstUseBindsOnlyKeysNewAPIAccepts(t *testing.T) {
	up := newUpstream(t)
	na := newapi.Start(t, newapi.Options{UpstreamURL: up.url, Keys: 6})
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

	if st, err := chatFrom(s.webURL, "127.0.3.20", "Bearer sk-"+na.Keys[0]); err != nil || st != 200 {
		t.Fatalf("a real key's first use: %d %v", st, err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND host(first_ip) = '127.0.3.20'`, keyHash(na.Keys[0])); n != 1 {
		t.Fatalf("the real key is not bound to its first address (%d rows)", n)
	}
	if st, _ := chatFrom(s.webURL, "127.0.3.21", "Bearer sk-"+na.Keys[0]); st != http.StatusForbidden {
		t.Fatalf("the bound key from another address: %d", st)
	}

	for _, key := range na.Keys[1:] {
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
	t.Logf("10 refused strings: 0 rows; %d real keys: %d bindings; %d races of 50 addresses: one served each", len(na.Keys), len(na.Keys), len(na.Keys)-1)
}

// chatFrom sends a chat completion New API can serve (its channel's model) from the address.
func chatFrom(base, from, auth string) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := clientFrom(from).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
