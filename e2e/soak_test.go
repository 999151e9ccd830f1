package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak is `make soak DURATION=…` (SENTINEL_SOAK=<duration>): the whole stack under mixed
// traffic for that long — cache hits over 1 000 keys (wrk), intercepts of a bound key from
// other addresses, and new keys binding — while Traefik's and admind's goroutines, open files
// and RSS and Redis's memory are sampled. It prints the trend, and fails if goroutines or open
// files keep growing, if any request got a 5xx or an unexpected answer, or if a sentinel:* key
// was left without a TTL.
func TestSoak(t *testing.T) {
	v := os.Getenv("SENTINEL_SOAK")
	if v == "" {
		t.Skip("make soak DURATION=10m runs it")
	}
	duration, err := time.ParseDuration(v)
	if err != nil || duration < 30*time.Second {
		t.Fatalf("SENTINEL_SOAK=%q: a duration of at least 30s", v)
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk not found: apt-get install -y wrk")
	}
	// New keys keep binding from few addresses for the whole run: no per-source claim limit.
	s := startStack(t, stackOptions{AdmindEnv: []string{"CLAIM_LIMIT=0"}})
	script := filepath.Join(t.TempDir(), "keys.lua")
	mustWrite(t, script, `local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Authorization"] = string.format("Bearer sk-soakKey%06d0123456789", n % 1000), ["Content-Type"] = "application/json"}, "{}")
end
`)
	for i := 0; i < 1000; i++ {
		if st, _ := s.call(t, "127.0.0.1", "/v1/chat/completions", map[string]string{"Authorization": fmt.Sprintf("Bearer sk-soakKey%06d0123456789", i)}); st != 200 {
			t.Fatalf("binding soak key %d: %d", i, st)
		}
	}

	interval := max(duration/20, 5*time.Second)
	var samples []soakSample
	samples = append(samples, s.soakSample(t, 0))
	start := time.Now()
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()

	// Intercepts and first uses beside the cache hits, a few per second each.
	var intercepted, bound, unexpected atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			from := fmt.Sprintf("127.0.4.%d", 1+i%200)
			if st := s.soakCall(from, "Bearer sk-soakKey0000000123456789"); st == 403 {
				intercepted.Add(1)
			} else if st != 0 {
				unexpected.Add(1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if st := s.soakCall("127.0.0.2", fmt.Sprintf("Bearer sk-soakNewKey%09d", i)); st == 200 {
				bound.Add(1)
			} else if st != 0 {
				unexpected.Add(1)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	wrkDone := make(chan string, 1)
	go func() {
		out, err := exec.Command(wrk, "-t1", "-c8", wrkDuration(duration), "-s", script,
			s.webURL+"/v1/chat/completions").CombinedOutput()
		if err != nil {
			t.Errorf("wrk: %v\n%s", err, out)
		}
		wrkDone <- string(out)
	}()
	for tick := time.NewTicker(interval); ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-tick.C:
			samples = append(samples, s.soakSample(t, time.Since(start)))
		}
	}
	wg.Wait()
	load, _ := parseWrk(<-wrkDone)
	time.Sleep(3 * time.Second) // connections close, the last flush runs
	end := s.soakSample(t, time.Since(start))
	samples = append(samples, end)
	after := s.resources(t)

	var b strings.Builder
	fmt.Fprintf(&b, "soak of %s: %d cache-hit requests (%d non-2xx), %d intercepts, %d new keys bound, %d unexpected answers\n\n",
		duration, load.requests, load.non2xx, intercepted.Load(), bound.Load(), unexpected.Load())
	b.WriteString("| at | Traefik goroutines | Traefik open files | Traefik RSS MiB | admind goroutines | admind open files | admind RSS MiB | Redis memory MiB |\n|---|---|---|---|---|---|---|---|\n")
	for _, x := range samples {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %.1f |\n", x.at.Round(time.Second), x.traefikGoroutines, x.traefikFDs,
			x.traefikRSS>>10, x.admindGoroutines, x.admindFDs, x.admindRSS>>10, x.redisMiB)
	}
	fmt.Fprintf(&b, "\nRedis keys sentinel:* without a TTL (the event stream excepted): %v. Keys bound twice: %d.\n", after.keysWithoutTTL, after.duplicateBindings)
	t.Log("\n" + b.String())

	// Pools are bounded, so after the load the counts must be back near where the first sample
	// (taken with the stack warm) had them; a leak grows with the traffic.
	first := samples[0]
	if end.traefikGoroutines > first.traefikGoroutines+20 || end.admindGoroutines > first.admindGoroutines+40 {
		t.Errorf("goroutines grew: Traefik %d → %d, admind %d → %d", first.traefikGoroutines, end.traefikGoroutines, first.admindGoroutines, end.admindGoroutines)
	}
	if end.traefikFDs > first.traefikFDs+40 || end.admindFDs > first.admindFDs+60 {
		t.Errorf("open files grew: Traefik %d → %d, admind %d → %d", first.traefikFDs, end.traefikFDs, first.admindFDs, end.admindFDs)
	}
	if load.non2xx > 0 || unexpected.Load() > 0 || intercepted.Load() == 0 || bound.Load() == 0 {
		t.Errorf("answers: %d non-2xx cache hits, %d unexpected, %d intercepts, %d bound", load.non2xx, unexpected.Load(), intercepted.Load(), bound.Load())
	}
	if len(after.keysWithoutTTL) > 0 || after.duplicateBindings > 0 {
		t.Errorf("Redis keys without a TTL %v, %d keys bound twice", after.keysWithoutTTL, after.duplicateBindings)
	}
}

type soakSample struct {
	at time.Duration
	processStats
	redisMiB float64
}

func (s *stack) soakSample(t *testing.T, at time.Duration) soakSample {
	x := soakSample{at: at, processStats: s.processStats(t)}
	info := s.redisClient(t).Info(context.Background(), "memory").Val()
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			var n float64
			fmt.Sscan(v, &n)
			x.redisMiB = n / (1 << 20)
		}
	}
	return x
}

// soakCall sends one request from the address and returns its status, 0 when the test's
// own client failed (the stack is not judged on that).
func (s *stack) soakCall(from, auth string) int {
	st, _ := postFrom(s.webURL, from, auth)
	return st
}
