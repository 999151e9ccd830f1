package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestTwoOfEverything is the scale-out check (issue 8): two Traefik processes, each with the
// plugin asking its own admind, two admind processes, one Redis, one PostgreSQL.
//   - First-use race across them (class D, docs/testing.md): 50 addresses hit a new key at once, half
//     through each Traefik; exactly one binding, one address allowed, every other refused and
//     logged exactly once, and Redis agrees with PostgreSQL.
//   - The intercept stream, read by both admind in one consumer group, is written to
//     PostgreSQL exactly once.
//   - One alert per window although both admind count intercepts; one key-scan alert per
//     racing address (each presents a new key per round), although both admind count keys.
//   - The archive job, run every second by both admind, archives each idle binding once.
func TestTwoOfEverything(t *testing.T) {
	hook := newAlertReceiver(t)
	s := startStack(t, stackOptions{AdmindEnv: []string{"ALERT_WEBHOOK_URL=" + hook.URL, "ALERT_THRESHOLD_COUNT=5", "ALERT_THRESHOLD_SECONDS=300",
		"SCAN_THRESHOLD=20", "ARCHIVE_INTERVAL=1s"}})
	r := s.startReplica(t)
	via := []string{s.webURL, r.webURL}
	ctx := context.Background()
	rc := s.redisClient(t)
	const rounds, addrs = 20, 50
	warmUp(t, via, addrs)
	refused, logged := 0, 0
	for round := 0; round < rounds; round++ {
		key := fmt.Sprintf("scaleKey%02d0123456789abcdef", round)
		codes := make([]int, addrs)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < addrs; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				codes[i], _ = callVia(t, via[i%2], fmt.Sprintf("127.0.6.%d", i+1), "/v1/chat/completions",
					map[string]string{"Authorization": "Bearer sk-" + key})
			}(i)
		}
		close(start)
		wg.Wait()
		allowed, other := 0, 0
		for _, c := range codes {
			switch c {
			case 200:
				allowed++
			case 403:
				refused++
			default:
				other++
			}
		}
		rows := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, keyHash(key))
		if allowed != 1 || other != 0 || rows != 1 {
			t.Fatalf("round %d: %d allowed, %d neither 200 nor 403, %d binding rows (answers %v)", round, allowed, other, rows, codes)
		}
		var cidrs []string
		if err := s.pg(t).QueryRow(ctx, `SELECT cidrs::text[] FROM token_bindings WHERE key_hash = $1`, keyHash(key)).Scan(&cidrs); err != nil {
			t.Fatal(err)
		}
		if entry := rc.Get(ctx, "sentinel:b:"+keyHash(key)).Val(); entry != "v1|active|single|"+cidrs[0] {
			t.Fatalf("round %d: Redis %q, PostgreSQL %v", round, entry, cidrs)
		}
		// Refusals while the first use's claim was pending are not logged (the key was not
		// proven yet); refusals of the bound key are, through either gateway: 6 per key, over
		// the alert threshold (5).
		for i := 0; i < 6; i++ {
			if code, _ := callVia(t, via[i%2], fmt.Sprintf("127.0.7.%d", round*6+i+1), "/v1/chat/completions",
				map[string]string{"Authorization": "Bearer sk-" + key}); code != 403 {
				t.Fatalf("round %d: the bound key from another address: %d", round, code)
			}
			logged++
		}
	}
	// Both halves really worked: each admind decided first uses, and both read the stream.
	for _, u := range []string{s.publicURL, r.publicURL} {
		if n := metricAt(t, u, "sentinel_decisions_total"); n == 0 {
			t.Fatalf("the admind at %s made no decision", u)
		}
	}
	if consumers := rc.XInfoConsumers(ctx, "sentinel:events", "admind").Val(); len(consumers) != 2 {
		t.Fatalf("stream consumers %+v, want both admind", consumers)
	}
	// Every refusal of a bound key is one intercept row: the stream (and admind's own
	// records of the refusals it decided) reach PostgreSQL exactly once across both consumers.
	const afterBinding = `SELECT count(*) FROM intercept_logs WHERE key_hint LIKE 'sk-scal%' AND ip << '127.0.7.0/24'`
	testenv.WaitFor(t, 20*time.Second, "every refusal of a bound key written", func() bool {
		return countRows(t, s, afterBinding) >= logged
	})
	time.Sleep(2 * time.Second) // a duplicate would arrive now
	if rows := countRows(t, s, afterBinding); rows != logged {
		t.Fatalf("%d refusals of bound keys, %d intercept rows", logged, rows)
	}
	if rows := countRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hint LIKE 'sk-scal%' AND ip << '127.0.6.0/24'`); rows > refused {
		t.Fatalf("%d refusals during the races, %d intercept rows", refused, rows)
	}
	if pending := rc.XPending(ctx, "sentinel:events", "admind").Val(); pending != nil && pending.Count != 0 {
		t.Fatalf("%d events left pending", pending.Count)
	}
	// Each round's key crossed the threshold (5) on both admind: still one alert per key.
	testenv.WaitFor(t, 30*time.Second, "an alert per key", func() bool { return hook.countKind("intercepts") >= rounds })
	// Each racing address presented a new key in each of the rounds (= SCAN_THRESHOLD): one
	// key-scan alert each.
	testenv.WaitFor(t, 30*time.Second, "a key-scan alert per address", func() bool { return hook.countKind("key_scan") >= addrs })
	time.Sleep(3 * time.Second)
	if n := hook.countKind("intercepts"); n != rounds {
		t.Fatalf("%d alerts for %d keys over threshold in one window", n, rounds)
	}
	if n := hook.countKind("key_scan"); n != addrs {
		t.Fatalf("%d key-scan alerts for %d addresses that each presented %d keys", n, addrs, rounds)
	}

	// 30 bindings idle for 40 days; both admind run the archive job every second.
	const idle = 30
	if _, err := s.pg(t).Exec(ctx, `
		INSERT INTO token_bindings (key_hash, key_hint, rule_mode, cidrs, status, first_ip, last_ip, last_used_at)
		SELECT encode(sha256(('idle' || g)::bytea), 'hex'), 'sk-idle…', 'single', '{127.0.0.9/32}', 'active', '127.0.0.9', '127.0.0.9',
			now() - interval '40 days'
		FROM generate_series(1, $1) g`, idle); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the idle bindings archived", func() bool {
		return countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hint = 'sk-idle…'`) == 0
	})
	time.Sleep(2 * time.Second) // both have run again since
	archived := countRows(t, s, `SELECT count(*) FROM archived_bindings WHERE key_hint = 'sk-idle…'`)
	counted := metricAt(t, s.publicURL, "sentinel_bindings_archived_total") + metricAt(t, r.publicURL, "sentinel_bindings_archived_total")
	if archived != idle || counted != idle {
		t.Fatalf("%d idle bindings: %d archived rows, %v counted by the two admind", idle, archived, counted)
	}
	if live := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hint LIKE 'sk-scal%'`); live != rounds {
		t.Fatalf("the archive took bindings in use: %d of %d left", live, rounds)
	}
	t.Logf("%d rounds of %d addresses through 2 Traefik and 2 admind: one binding each, %d refusals during the races, "+
		"%d refusals of bound keys and as many intercept rows, %d alerts; %d idle bindings archived once (%v by the first admind)",
		rounds, addrs, refused, logged, hook.count(), idle,
		metricAt(t, s.publicURL, "sentinel_bindings_archived_total"))
}
