package e2e

import (
	"context"
	"strconv"
	"sync"
	"testing"
)

// TestLearningThroughTraefik: with first_use_rule "learning" (3 slots), a key binds to its
// first address and the plugin hands every address it lacks to admind while the rule learns,
// even with the binding in its local cache; the fourth address is refused without reaching
// New API, and the full rule is decided by the plugin alone. A second key with two slots left
// is raced for by 20 addresses at once: exactly two get through.
func TestLearningThroughTraefik(t *testing.T) {
	s := startStack(t, stackOptions{AdmindEnv: []string{"FIRST_USE_RULE=learning", "LEARNING_SLOTS=3"}})
	rc := s.redisClient(t)
	ctx := context.Background()
	const key = "e2eLearningKey0123456789abcdef"
	bearer := map[string]string{"Authorization": "Bearer sk-" + key}
	rule := func(key string) string {
		var mode, cidrs string
		if err := s.pg(t).QueryRow(ctx, `SELECT rule_mode, array_to_string(cidrs, ' ') FROM token_bindings WHERE key_hash = $1`,
			keyHash(key)).Scan(&mode, &cidrs); err != nil {
			t.Fatal(err)
		}
		return mode + " " + cidrs
	}

	for _, from := range []string{"127.0.0.2", "127.0.0.2"} { // the second from the local cache
		if st, body := s.call(t, from, "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("first use from %s: %d %s", from, st, body)
		}
	}
	if got := rule(key); got != "learning 127.0.0.2/32" {
		t.Fatalf("after the first use: %q", got)
	}
	if v := rc.Get(ctx, "sentinel:b:"+keyHash(key)).Val(); v != "v1|active|learning|127.0.0.2/32" {
		t.Fatalf("Redis entry while learning: %q", v)
	}
	for _, from := range []string{"127.0.0.3", "127.0.0.4"} {
		if st, body := s.call(t, from, "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("learning from %s: %d %s", from, st, body)
		}
	}
	if got := rule(key); got != "learning 127.0.0.2/32 127.0.0.3/32 127.0.0.4/32" {
		t.Fatalf("after learning: %q", got)
	}
	before := s.upstream.Hits()
	if st, body := s.call(t, "127.0.0.5", "/v1/chat/completions", bearer); st != 403 {
		t.Fatalf("past the slots: %d %s", st, body)
	}
	if s.upstream.Hits() != before {
		t.Fatal("the refused request reached the upstream")
	}
	if v := rc.Get(ctx, "sentinel:b:"+keyHash(key)).Val(); v != "v1|active|multiple|127.0.0.2/32,127.0.0.3/32,127.0.0.4/32" {
		t.Fatalf("Redis entry once full: %q", v)
	}
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if st, _ := s.call(t, from, "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("learned %s: %d", from, st)
		}
	}
	waitRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND ip = '127.0.0.5'`, keyHash(key))

	// The race, through Traefik and the plugin.
	const raced = "e2eLearningRace0123456789abcd"
	if st, _ := s.call(t, "127.0.0.2", "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-" + raced}); st != 200 {
		t.Fatalf("first use of the raced key: %d", st)
	}
	warmUp(t, []string{s.webURL}, 20)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, _ := s.call(t, "127.0.7."+strconv.Itoa(i+1), "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-" + raced})
			mu.Lock()
			codes[st]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if codes[200] != 2 || codes[403] != 18 {
		t.Fatalf("20 addresses racing for 2 slots: %v", codes)
	}
	if n := countRows(t, s, `SELECT cardinality(cidrs) FROM token_bindings WHERE key_hash = $1`, keyHash(raced)); n != 3 {
		t.Fatalf("the raced rule holds %d addresses, want 3", n)
	}
}
