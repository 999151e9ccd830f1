package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// Deadlines the stack runs with (plugin defaults): a request may wait for one Redis
// round trip and one admind call; the margin absorbs a loaded CI machine.
const (
	redisTimeout  = 100 * time.Millisecond
	admindTimeout = time.Second
	waitMargin    = 1500 * time.Millisecond
	maxWait       = redisTimeout + admindTimeout + waitMargin
)

// faultStack is a stack whose local cache is short, so decisions reach Redis and admind
// during a fault instead of being answered from the plugin's memory.
func faultStack(t *testing.T, mode string, o stackOptions) *stack {
	o.FailsafeMode, o.CacheTTL = mode, "250ms"
	return startStack(t, o)
}

// timedCall is s.call that fails the test when the answer took longer than maxWait.
func (s *stack) timedCall(t *testing.T, from, key string) int {
	t.Helper()
	start := time.Now()
	st, body := s.call(t, from, "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-" + key})
	if took := time.Since(start); took > maxWait {
		t.Errorf("request from %s waited %v (deadlines allow %v)", from, took, maxWait)
	}
	if st == http.StatusBadGateway || st == http.StatusInternalServerError {
		t.Errorf("request from %s: %d %s (a plugin panic or a broken upstream?)", from, st, body)
	}
	return st
}

func (s *stack) expect(t *testing.T, from, key string, want int) {
	t.Helper()
	if st := s.timedCall(t, from, key); st != want {
		t.Errorf("%s from %s: %d, want %d", key, from, st, want)
	}
}

func (s *stack) bindings(t *testing.T, key string) int {
	return countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, keyHash(key))
}

// traefikGoroutines reads Traefik's goroutines from pprof: the total, and those serving idle
// pooled HTTP client connections (net/http persistConn loops: the plugin's pool to admind,
// Traefik's to the upstream), which are bounded by the transports and close when idle.
func (s *stack) traefikGoroutines(t *testing.T) (total, pooled int) {
	t.Helper()
	resp, err := http.Get(s.apiURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dump, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(dump), "\n")
	total, err = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(lines[0], "goroutine profile: total")))
	if err != nil {
		t.Fatalf("pprof: %q", lines[0])
	}
	// Stacks are "<count> @ <pcs>" followed by "#\t<pc> <function> ..." frames.
	count, counted := 0, false
	for _, l := range lines[1:] {
		if n, _, ok := strings.Cut(l, " @ "); ok {
			count, _ = strconv.Atoi(n)
			counted = false
		} else if !counted && strings.Contains(l, "net/http.(*persistConn)") {
			pooled += count
			counted = true
		}
	}
	return total, pooled
}

// backToBaseline waits until Traefik's goroutines, leaving out idle pooled connections, are
// near what they were before the fault, and checks the pools stay bounded. Leaked requests or
// per-request goroutines would exceed it.
func (s *stack) backToBaseline(t *testing.T, baseline int) {
	t.Helper()
	var total, pooled int
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		total, pooled = s.traefikGoroutines(t)
		if total-pooled <= baseline+10 && pooled <= 2*maxPooledConns {
			t.Logf("Traefik goroutines besides idle pooled connections: %d before the fault, %d after recovery (plus %d for %d pooled connections)",
				baseline, total-pooled, pooled, pooled/2)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	resp, err := http.Get(s.apiURL + "/debug/pprof/goroutine?debug=1")
	if err == nil {
		dump, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("goroutines:\n%s", tail(string(dump), 150))
	}
	t.Errorf("Traefik goroutines besides pooled connections stayed at %d (baseline %d); pooled-connection goroutines %d (bound %d)",
		total-pooled, baseline, pooled, 2*maxPooledConns)
}

// maxPooledConns bounds idle client connections in Traefik after the faults: the plugin's pool
// to admind (16) plus one upstream connection per concurrent client in these tests (≤ 40).
const maxPooledConns = 16 + 40

// settle lets the plugin's local cache (250 ms here) forget earlier decisions.
func settle() { time.Sleep(300 * time.Millisecond) }

// TestFaults is class E (docs/testing.md) with real processes, in both failsafe modes.
func TestFaults(t *testing.T) {
	if os.Getenv("SENTINEL_TEST_REDIS") != "" {
		t.Skip("the fault tests stop and restart Redis: they need their own redis-server (unset SENTINEL_TEST_REDIS)")
	}
	for _, mode := range []string{"closed", "open"} {
		failsafe := http.StatusServiceUnavailable
		if mode == "open" {
			failsafe = http.StatusOK
		}
		t.Run(mode, func(t *testing.T) {
			t.Run("redis down", func(t *testing.T) {
				s := faultStack(t, mode, stackOptions{})
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				// Redis stops while traffic flows: the bound key keeps working from its
				// address and keeps being refused elsewhere, every answer in time.
				stop := s.traffic(t, map[string]int{"127.0.0.2": 200, "127.0.0.3": 403}, "faultBound0123456789")
				time.Sleep(500 * time.Millisecond)
				s.redis.Terminate()
				time.Sleep(time.Second)
				stop()
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				s.expect(t, "127.0.0.3", "faultBound0123456789", 403)
				// A first use needs a claim, and claims live in Redis: it follows the failsafe
				// mode (503, or forwarded unbound) and binds nothing.
				s.expect(t, "127.0.0.4", "faultNew0123456789ab", failsafe)
				s.expect(t, "127.0.0.5", "faultNew0123456789ab", failsafe)
				if n := s.bindings(t, "faultNew0123456789ab"); n != 0 {
					t.Errorf("%d bindings for the key first used while Redis was down", n)
				}
				// The intercept reached PostgreSQL through admind.
				waitRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND ip = '127.0.0.3'`, keyHash("faultBound0123456789"))
				if err := s.redis.Start(); err != nil {
					t.Fatal(err)
				}
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				// The first use binds once Redis is back for the plugin (past its retry
				// interval) and for admind. Until then it still follows the failsafe mode,
				// which in open mode is a 200 too: so wait for the binding, not the status.
				testenv.WaitFor(t, 10*time.Second, "the first use to bind once Redis is back", func() bool {
					return s.timedCall(t, "127.0.0.4", "faultNew0123456789ab") == 200 && s.bindings(t, "faultNew0123456789ab") == 1
				})
				s.expect(t, "127.0.0.5", "faultNew0123456789ab", 403)
				if n := s.bindings(t, "faultNew0123456789ab"); n != 1 {
					t.Errorf("%d bindings for the key first used after Redis came back", n)
				}
			})

			t.Run("redis hung", func(t *testing.T) {
				s := faultStack(t, mode, stackOptions{})
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				total, pooled := s.traefikGoroutines(t)
				baseline := total - pooled
				if err := s.redis.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				settle()
				var wg sync.WaitGroup
				for i := 0; i < 20; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
						s.expect(t, fmt.Sprintf("127.0.2.%d", i+1), "faultBound0123456789", 403)
					}(i)
				}
				wg.Wait()
				s.expect(t, "127.0.0.4", "faultNew0123456789ab", failsafe) // no claim without Redis
				if err := s.redis.Signal(syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				settle()
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				s.expect(t, "127.0.0.4", "faultNew0123456789ab", 200)
				s.expect(t, "127.0.0.5", "faultNew0123456789ab", 403)
				if n := s.bindings(t, "faultNew0123456789ab"); n != 1 {
					t.Errorf("%d bindings for the key first used after Redis resumed", n)
				}
				s.backToBaseline(t, baseline)
			})

			t.Run("admind down", func(t *testing.T) {
				s := faultStack(t, mode, stackOptions{})
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200) // now in Redis
				s.stopProc(t, "admind")
				settle()
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200) // from Redis
				s.expect(t, "127.0.0.3", "faultBound0123456789", 403)
				s.expect(t, "127.0.0.4", "faultNew0123456789ab", failsafe)
				s.startAdmind(t)
				if n := s.bindings(t, "faultNew0123456789ab"); n != 0 {
					t.Errorf("a binding was created while admind was down: %d", n)
				}
				settle()
				s.expect(t, "127.0.0.5", "faultNew0123456789ab", 200) // its real first use
				if n := s.bindings(t, "faultNew0123456789ab"); n != 1 {
					t.Errorf("%d bindings after recovery", n)
				}
				// The intercept queued in the Redis stream while admind was down arrives.
				waitRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND ip = '127.0.0.3'`, keyHash("faultBound0123456789"))
			})

			t.Run("admind down while a key learns", func(t *testing.T) {
				s := faultStack(t, mode, stackOptions{AdmindEnv: []string{"FIRST_USE_RULE=learning", "LEARNING_SLOTS=2"}})
				s.expect(t, "127.0.0.2", "faultLearning0123456", 200) // bound, learning, in Redis
				s.stopProc(t, "admind")
				settle()
				// Its address is decided from Redis; a new address needs admind to be learned:
				// it follows the failsafe mode, and nothing is learned meanwhile.
				s.expect(t, "127.0.0.2", "faultLearning0123456", 200)
				s.expect(t, "127.0.0.3", "faultLearning0123456", failsafe)
				s.startAdmind(t)
				if got := countRows(t, s, `SELECT cardinality(cidrs) FROM token_bindings WHERE key_hash = $1`, keyHash("faultLearning0123456")); got != 1 {
					t.Errorf("the rule holds %d addresses after admind was down, want 1", got)
				}
				settle()
				s.expect(t, "127.0.0.3", "faultLearning0123456", 200) // learned now
				s.expect(t, "127.0.0.4", "faultLearning0123456", 403) // past its two slots
			})

			t.Run("postgres down", func(t *testing.T) {
				s := faultStack(t, mode, stackOptions{OwnPostgres: true})
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				if err := s.ownPG.Stop(); err != nil {
					t.Fatal(err)
				}
				settle()
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200) // from Redis
				s.expect(t, "127.0.0.3", "faultBound0123456789", 403)
				s.expect(t, "127.0.0.4", "faultNew0123456789ab", failsafe)
				if err := s.ownPG.Start(); err != nil {
					t.Fatal(err)
				}
				if n := s.bindings(t, "faultNew0123456789ab"); n != 0 {
					t.Errorf("a binding was created while PostgreSQL was down: %d", n)
				}
				// The first request after the restart binds: no decision fails on a connection
				// admind opened before it (store.poolResetter).
				s.expect(t, "127.0.0.5", "faultNew0123456789ab", 200)
				if n := s.bindings(t, "faultNew0123456789ab"); n != 1 {
					t.Errorf("%d bindings after the first use once PostgreSQL was back, want 1", n)
				}
				s.expect(t, "127.0.0.4", "faultNew0123456789ab", 403)
			})

			t.Run("redis and admind down", func(t *testing.T) {
				hook := newAlertReceiver(t)
				s := faultStack(t, mode, stackOptions{AdmindEnv: []string{"ALERT_WEBHOOK_URL=" + hook.URL}})
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				total, pooled := s.traefikGoroutines(t)
				baseline := total - pooled
				s.redis.Kill()
				s.stopProc(t, "admind")
				settle()
				for i := 0; i < 5; i++ {
					s.expect(t, "127.0.0.2", "faultBound0123456789", failsafe)
					s.expect(t, "127.0.0.4", "faultNew0123456789ab", failsafe)
				}
				if err := s.redis.Start(); err != nil {
					t.Fatal(err)
				}
				s.startAdmind(t)
				if n := s.bindings(t, "faultNew0123456789ab"); n != 0 {
					t.Errorf("a binding was created with Redis and admind down: %d", n)
				}
				// The plugin kept its failsafe tally through the outage and reports it; admind
				// raises one alert.
				hook.waitFor(t, 1, `"kind":"failsafe"`)
				time.Sleep(6 * time.Second) // another flush: a second alert in the same window may not come
				if n := hook.count(); n != 1 {
					t.Errorf("%d failsafe alerts, want 1", n)
				}
				settle()
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				s.backToBaseline(t, baseline)
			})

			t.Run("redis restarted empty", func(t *testing.T) {
				s := faultStack(t, mode, stackOptions{})
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200)
				s.redis.Kill()
				if err := s.redis.Start(); err != nil {
					t.Fatal(err)
				}
				settle()
				s.expect(t, "127.0.0.2", "faultBound0123456789", 200) // decided from PostgreSQL
				s.expect(t, "127.0.0.3", "faultBound0123456789", 403)
				rc := s.redisClient(t)
				if v := rc.Get(context.Background(), "sentinel:b:"+keyHash("faultBound0123456789")).Val(); v != "v1|active|single|127.0.0.2/32" {
					t.Errorf("cache not refilled: %q", v)
				}
				if n := s.bindings(t, "faultBound0123456789"); n != 1 {
					t.Errorf("%d bindings: the key was bound again", n)
				}
			})
		})
	}
}

// traffic sends requests with key from each address in a loop until the returned stop is
// called, and checks every answer: the expected status, within maxWait.
func (s *stack) traffic(t *testing.T, want map[string]int, key string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for ip, status := range want {
		wg.Add(1)
		go func(ip string, status int) {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				st := s.timedCall(t, ip, key)
				mu.Lock()
				counts[ip+" "+strconv.Itoa(st)]++
				mu.Unlock()
				if st != status {
					t.Errorf("during the fault: %s from %s answered %d, want %d", key, ip, st, status)
					return
				}
			}
		}(ip, status)
	}
	return func() {
		close(done)
		wg.Wait()
		t.Logf("answers during the fault: %v", counts)
	}
}

func waitRows(t *testing.T, s *stack, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for countRows(t, s, sql, args...) == 0 {
		if time.Now().After(deadline) {
			t.Errorf("no rows for %s", sql)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alertReceiver collects webhook bodies.
type alertReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newAlertReceiver(t *testing.T) *alertReceiver {
	r := &alertReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *alertReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// countKind counts the alerts of one kind (json format: "type":"sentinel.alert.<kind>").
func (r *alertReceiver) countKind(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.bodies {
		if strings.Contains(b, `"type":"sentinel.alert.`+kind+`"`) {
			n++
		}
	}
	return n
}

func (r *alertReceiver) waitFor(t *testing.T, n int, contains string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		ok := len(r.bodies) >= n && strings.Contains(r.bodies[n-1], contains)
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert containing %s within 30 s (got %d)", contains, r.count())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
