package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestBench is `make bench` (SENTINEL_BENCH=full: 5 interleaved rounds of 6 s per route, the
// first-use storm of 10 000 keys, BENCHMARKS.md rewritten) and, in make test, a smoke run of
// the same harness (1 round of 1 s, 500 keys, nothing written). Load comes from wrk (-t1 -c16),
// so the generator costs every route alike; the routes run interleaved through one Traefik so
// machine noise hits them alike too.
func TestBench(t *testing.T) {
	full := os.Getenv("SENTINEL_BENCH") == "full"
	// SENTINEL_BENCH=routes: the full route comparison alone, for tuning the hot path;
	// SENTINEL_BENCH=flood: the random-key flood alone, at full size.
	routesOnly := os.Getenv("SENTINEL_BENCH") == "routes"
	floodOnly := os.Getenv("SENTINEL_BENCH") == "flood"
	rounds, dur, stormKeys, hotDur, soak, bulk, logRows := 1, time.Second, 500, time.Second, time.Duration(0), 10000, 100000
	floodKeys, floodRate, floodBase, floodSettle := 400, 200.0, 2*time.Second, 1500*time.Millisecond
	if full || routesOnly {
		rounds, dur = 5, 6*time.Second
	}
	if full || floodOnly {
		floodKeys, floodRate, floodBase, floodSettle = 100000, 1000, 30*time.Second, 11*time.Second
	}
	if full {
		stormKeys, hotDur, soak, bulk, logRows = 10000, 10*time.Second, 10*time.Minute, 1000000, 10000000
	}
	if v := os.Getenv("SENTINEL_BENCH_LOG_ROWS"); v != "" { // the retention measurement alone at scale
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			logRows = n
		}
	}
	if v := os.Getenv("SENTINEL_BENCH_SOAK"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			soak = d
		}
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk not found: apt-get install -y wrk (.ci/run does)")
	}
	// The first-use storm binds 10 000 keys from 16 addresses: no per-source claim limit.
	s := startStack(t, stackOptions{Bench: true, AdmindEnv: []string{"CLAIM_LIMIT=0"}})
	dir := t.TempDir()

	// 1 000 keys, bound to 127.0.0.1 (wrk's address) before measuring.
	const keys = 1000
	script := filepath.Join(dir, "keys.lua")
	mustWrite(t, script, fmt.Sprintf(`local keys = {}
for i = 1, %d do keys[i] = string.format("Bearer sk-benchKey%%06d0123456789", i) end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Authorization"] = keys[(n %% %d) + 1], ["Content-Type"] = "application/json"}, "{}")
end
`, keys, keys))
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 1; i <= keys; i++ {
		req, _ := http.NewRequest(http.MethodPost, s.webURL+"/bench/sentinel/v1/chat/completions", strings.NewReader("{}"))
		req.Header.Set("Authorization", fmt.Sprintf("Bearer sk-benchKey%06d0123456789", i))
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("binding key %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}

	routes := []string{"bare", "noop", "sentinel", "nocache"}
	results := map[string]*routeResult{}
	for _, r := range routes {
		results[r] = &routeResult{}
	}
	run := func(route string, d time.Duration) wrkResult {
		out, err := exec.Command(wrk, "-t1", "-c16", wrkDuration(d), "--latency", "-s", script,
			s.webURL+"/bench/"+route+"/v1/chat/completions").CombinedOutput()
		if err != nil {
			t.Fatalf("wrk %s: %v\n%s", route, err, out)
		}
		res, err := parseWrk(string(out))
		if err != nil {
			t.Fatalf("wrk %s: %v\n%s", route, err, out)
		}
		return res
	}
	for _, r := range routes {
		run(r, time.Second) // warm-up: connections, local caches, Yaegi
	}
	if floodOnly {
		t.Log("\n" + s.floodBench(t, wrk, script, floodKeys, 50, floodRate, floodBase, floodSettle).String())
		return
	}
	rc := s.redisClient(t)
	before := s.resources(t)
	// SENTINEL_BENCH_PROFILE=<prefix>: CPU profiles of Traefik during each route's first run,
	// in <prefix>.<route>, for `go tool pprof <traefik binary> <prefix>.sentinel`.
	profile := os.Getenv("SENTINEL_BENCH_PROFILE")
	for round := 0; round < rounds; round++ {
		for _, r := range routes {
			decisions0, gets0, cpu0 := s.admindDecisions(t), redisGets(t, rc), procCPU(t, s.procs["traefik"].Process.Pid)
			var profiled chan struct{}
			if profile != "" && round == 0 {
				profiled = make(chan struct{})
				go func() {
					defer close(profiled)
					s.traefikProfile(t, profile+"."+r, dur-time.Second)
				}()
			}
			res := run(r, dur)
			if profiled != nil {
				<-profiled
			}
			acc := results[r]
			acc.rps = append(acc.rps, res.rps)
			acc.p50 = append(acc.p50, res.p50)
			acc.p99 = append(acc.p99, res.p99)
			acc.errors += res.non2xx
			acc.requests += res.requests
			acc.decisions += s.admindDecisions(t) - decisions0
			acc.redisGets += redisGets(t, rc) - gets0
			acc.traefikCPU += procCPU(t, s.procs["traefik"].Process.Pid) - cpu0
		}
	}

	if routesOnly {
		t.Log("\n" + benchReport(results, routes, stormResult{}, rounds, dur))
		return
	}
	storm := s.firstUseStorm(t, stormKeys)
	flood := s.floodBench(t, wrk, script, floodKeys, 50, floodRate, floodBase, floodSettle)
	hot := s.hotKey(t, hotDur)
	mem := s.memory(t, bulk, soak, wrk, script)
	time.Sleep(2 * time.Second) // let the last connections close
	after := s.resources(t)
	retention := s.logRetention(t, logRows)
	report := benchReport(results, routes, storm, rounds, dur) + flood.String() + hot.String() + mem.String() + retention.String() + resourcesReport(before, after)
	if full {
		report += yaegiHotPath(t)
	}
	t.Log("\n" + report)

	// What must hold in every run, smoke included: no errors, and the cache-hit route never
	// asks admind (hence PostgreSQL).
	for _, r := range routes {
		if results[r].errors > 0 {
			t.Errorf("%s: %d non-2xx answers", r, results[r].errors)
		}
	}
	if results["sentinel"].decisions != 0 {
		t.Errorf("cache-hit route made %d admind decisions (PostgreSQL queries)", results["sentinel"].decisions)
	}
	if hot.errors > 0 || hot.allowed == 0 || hot.refused == 0 {
		t.Errorf("hot key: %d errors, %d allowed, %d refused", hot.errors, hot.allowed, hot.refused)
	}
	if len(after.keysWithoutTTL) > 0 || after.duplicateBindings > 0 {
		t.Errorf("after the run: Redis keys without a TTL %v, %d duplicate bindings", after.keysWithoutTTL, after.duplicateBindings)
	}
	if retention.kept != retention.young {
		t.Errorf("log retention: %d rows kept, want the %d younger than LOG_RETENTION_DAYS", retention.kept, retention.young)
	}
	if flood.rowsForFlood != 0 || flood.interceptsFlood != 0 || flood.base.realErrors+flood.flood.realErrors > 0 || flood.flood.floodSent != floodKeys {
		t.Errorf("random-key flood: %d binding rows and %d intercept rows for random keys, %d+%d real first uses failed, %d of %d sent",
			flood.rowsForFlood, flood.interceptsFlood, flood.base.realErrors, flood.flood.realErrors, flood.flood.floodSent, floodKeys)
	}
	if storm.errors > 0 || storm.rows != stormKeys {
		t.Errorf("first-use storm: %d errors (%v), %d binding rows for %d keys", storm.errors, storm.failures, storm.rows, stormKeys)
	}
	if full {
		if err := os.WriteFile(filepath.Join(testenv.RepoRoot(), "BENCHMARKS.md"), []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// wrkDuration is wrk's -d flag; wrk reads "600s" but not Go's "10m0s".
func wrkDuration(d time.Duration) string { return fmt.Sprintf("-d%ds", int(d.Seconds())) }

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	non2xx   int64 // non-2xx answers and socket errors
}

type routeResult struct {
	rps                  []float64
	p50, p99             []time.Duration
	requests, errors     int64
	decisions, redisGets int64
	traefikCPU           time.Duration // user+system time Traefik spent during the runs
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p[3]]
		d := time.Duration(v * float64(unit))
		if p[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.non2xx += n
		}
	}
	return r, nil
}

// traefikProfile saves a CPU profile of Traefik taken over d.
func (s *stack) traefikProfile(t *testing.T, path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.apiURL, int(d.Seconds())))
	if err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Errorf("profile: %v", err)
	}
}

// procCPU is the user+system CPU time a process has used so far (/proc/<pid>/stat).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// admindDecisions sums sentinel_decisions_total: every decision is a PostgreSQL lookup.
func (s *stack) admindDecisions(t *testing.T) int64 {
	return int64(s.admindMetric(t, "sentinel_decisions_total"))
}

// admindMetric sums a metric's samples on admind's /metrics.
func (s *stack) admindMetric(t *testing.T, name string) float64 {
	return metricAt(t, s.publicURL, name)
}

// metricAt sums a metric's samples on the /metrics of the admind at publicURL.
func metricAt(t *testing.T, publicURL, name string) float64 {
	resp, err := http.Get(publicURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

var cmdstatGet = regexp.MustCompile(`cmdstat_get:calls=(\d+)`)

// redisGets is how many GETs Redis has served (binding lookups by the plugin).
func redisGets(t *testing.T, rc *redis.Client) int64 {
	m := cmdstatGet.FindStringSubmatch(rc.Info(context.Background(), "commandstats").Val())
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

type stormResult struct {
	keys, errors, rows            int
	poolSize, poolPeak, poolWaits int
	took                          time.Duration
	p50, p99                      time.Duration
	failures                      map[string]int // status and body of failed requests
}

// firstUseStorm sends n never-seen keys as fast as 16 clients can: each one is a Redis miss
// and an admind first-use bind.
func (s *stack) firstUseStorm(t *testing.T, n int) stormResult {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	lat := make([]time.Duration, n)
	var errs int64
	failures := map[string]int{}
	var mu sync.Mutex
	next := 0
	// The PostgreSQL pool: its size, the most connections seen in use (sampled every 50 ms)
	// and the acquisitions that had to wait for a free one.
	waits0 := s.admindMetric(t, "sentinel_pg_pool_empty_acquires_total")
	var peak float64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
				peak = max(peak, s.admindMetric(t, "sentinel_pg_pool_acquired_conns"))
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, s.webURL+"/bench/sentinel/v1/chat/completions", strings.NewReader("{}"))
				req.Header.Set("Authorization", fmt.Sprintf("Bearer sk-stormKey%08d0123456789", i))
				t0 := time.Now()
				resp, err := client.Do(req)
				lat[i] = time.Since(t0)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					what := fmt.Sprint(err)
					if err == nil {
						what = fmt.Sprintf("%d %.120s", resp.StatusCode, body)
					}
					mu.Lock()
					errs++
					failures[what]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	r := stormResult{keys: n, errors: int(errs), took: time.Since(start), failures: failures,
		poolSize: int(s.admindMetric(t, "sentinel_pg_pool_max_conns")), poolPeak: int(peak),
		poolWaits: int(s.admindMetric(t, "sentinel_pg_pool_empty_acquires_total") - waits0)}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	r.p50, r.p99 = lat[n/2], lat[n*99/100]
	r.rows = countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hint LIKE 'sk-stor%'`)
	return r
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func median(v []time.Duration) time.Duration {
	c := append([]time.Duration(nil), v...)
	sort.Slice(c, func(a, b int) bool { return c[a] < c[b] })
	return c[len(c)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// benchReport renders BENCHMARKS.md.
func benchReport(res map[string]*routeResult, routes []string, storm stormResult, rounds int, dur time.Duration) string {
	names := map[string]string{
		"bare": "(a) bare Traefik route", "noop": "(b) no-op Yaegi plugin", "sentinel": "(c) sentinel, local cache hits",
		"nocache": "(d) sentinel, local cache off (Redis GET each request)",
	}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s*:\s*(.*)`).FindStringSubmatch(string(b)); m != nil {
			cpu = m[1]
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` on %s. Machine: %d CPUs (%s), %s, Traefik v3.6.12 built from its module,\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), cpu, runtime.Version())
	fmt.Fprintf(&b, "the plugin in Traefik's Yaegi v0.16.1. Load: `wrk -t1 -c16`, %d interleaved rounds of %s per route over 1 000 keys\n", rounds, dur)
	b.WriteString("bound to the client; upstream: the repository's fake New API; everything on loopback on this machine.\n\n")
	b.WriteString("| route | requests/s | p50 | p99 | Traefik CPU per request | admind decisions (PostgreSQL) | Redis GETs per request |\n|---|---|---|---|---|---|---|\n")
	for _, r := range routes {
		x := res[r]
		gets, cpu := 0.0, 0.0
		if x.requests > 0 {
			gets = float64(x.redisGets) / float64(x.requests)
			cpu = float64(x.traefikCPU.Microseconds()) / float64(x.requests)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.1f µs | %d | %.3f |\n", names[r], mean(x.rps), ms(median(x.p50)), ms(median(x.p99)), cpu, x.decisions, gets)
	}
	// Ratios are taken round by round (the routes of one round ran back to back, so a slow
	// spell of the shared machine hits them alike), then summarised: median, and range.
	ratio := func(num, den string) string {
		var v []float64
		for i := range res[num].rps {
			v = append(v, res[num].rps[i]/res[den].rps[i])
		}
		sort.Float64s(v)
		return fmt.Sprintf("%.3f (%.3f–%.3f)", v[len(v)/2], v[0], v[len(v)-1])
	}
	var added []time.Duration
	for i := range res["sentinel"].p99 {
		added = append(added, res["sentinel"].p99[i]-res["bare"].p99[i])
	}
	addedP99 := median(added)
	b.WriteString("\n| ratio, per round: median (range) | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| c/a (sentinel vs bare Traefik) | %s | ≥ 0.90 (issue), ≥ 0.85 (design floor, docs/architecture.md) |\n", ratio("sentinel", "bare"))
	fmt.Fprintf(&b, "| c/b (sentinel vs no-op plugin) | %s | ≥ 0.95 (design), ≥ 0.93 (issue 13) |\n", ratio("sentinel", "noop"))
	fmt.Fprintf(&b, "| d/a (no local cache vs bare) | %s | (informative) |\n", ratio("nocache", "bare"))
	fmt.Fprintf(&b, "| b/a (interpreter floor) | %s | (informative) |\n", ratio("noop", "bare"))
	fmt.Fprintf(&b, "| added p99, c − a | %s | ≤ 1 ms |\n", ms(addedP99))
	fmt.Fprintf(&b, "\nFirst-use storm: %d new keys from 16 clients in %s (%.0f binds/s), p50 %s, p99 %s, %d errors, %d binding rows;\n",
		storm.keys, storm.took.Round(time.Millisecond), float64(storm.keys)/storm.took.Seconds(), ms(storm.p50), ms(storm.p99), storm.errors, storm.rows)
	fmt.Fprintf(&b, "admind's PostgreSQL pool: %d connections, at most %d seen in use (sampled every 50 ms), %d acquisitions found no idle connection (and waited for one to open or free up).\n",
		storm.poolSize, storm.poolPeak, storm.poolWaits)
	b.WriteString("\nReproduce: `make bench` (needs wrk; `.ci/run` installs it). The cache-hit route must show 0 admind decisions;\n")
	b.WriteString("its Redis GETs are the local cache's refills (one per key per minute while the binding generation holds)\n")
	b.WriteString("and the generation polls (2 GETs per 500 ms), not one per request. Traefik CPU per request is its user+system\n")
	b.WriteString("time over the route's runs divided by their requests.\n")
	return b.String()
}

type hotResult struct {
	addresses                int
	allowed, refused, errors int
	rps                      float64
	p50, p99                 time.Duration
	rows                     int
}

func (h hotResult) String() string {
	return fmt.Sprintf("\nOne hot key from %d addresses (1 bound, the rest refused, every refusal logged): %.0f requests/s, "+
		"p50 %s, p99 %s; %d allowed, %d refused (403), %d errors; %d intercept rows written.\n",
		h.addresses, h.rps, ms(h.p50), ms(h.p99), h.allowed, h.refused, h.errors, h.rows)
}

// hotKey hammers one key from 100 loopback addresses (127.0.3.1 is bound, the others are
// refused): mostly intercepts, which the plugin appends to the Redis stream.
func (s *stack) hotKey(t *testing.T, d time.Duration) hotResult {
	const addrs = 100
	url := s.webURL + "/bench/sentinel/v1/chat/completions"
	do := func(c *http.Client) (int, error) { return postKey(c, url, "hotBenchKey0123456789") }
	clients := make([]*http.Client, addrs)
	for i := range clients {
		clients[i] = keepAliveClientFrom(fmt.Sprintf("127.0.3.%d", i+1))
	}
	if st, err := do(clients[0]); err != nil || st != 200 {
		t.Fatalf("binding the hot key: %d %v", st, err)
	}
	r := hotResult{addresses: addrs}
	var mu sync.Mutex
	var lat []time.Duration
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i += 16 {
				t0 := time.Now()
				st, err := do(clients[i%addrs])
				took := time.Since(t0)
				mu.Lock()
				lat = append(lat, took)
				switch {
				case err != nil || (st != 200 && st != 403):
					r.errors++
				case st == 200:
					r.allowed++
				default:
					r.refused++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	r.rps = float64(len(lat)) / d.Seconds()
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	hash := keyHash("hotBenchKey0123456789")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.rows = countRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, hash)
		if r.rows >= r.refused || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return r
}

type retentionResult struct {
	rows, young, kept int
	took              time.Duration
	decideP50, p99    time.Duration // admind decisions (first uses) while the deletion ran
	decides           int
}

func (r retentionResult) String() string {
	return fmt.Sprintf("Log retention: %d intercept rows, %d of them older than LOG_RETENTION_DAYS (90), deleted in %s by admind's retention job (batches of 10 000); %d rows kept; "+
		"%d first-use decisions meanwhile: p50 %s, p99 %s.\n", r.rows, r.rows-r.young, r.took.Round(time.Millisecond), r.kept, r.decides, ms(r.decideP50), ms(r.p99))
}

// logRetention loads rows intercept rows straight into PostgreSQL, half of them older than
// the retention, restarts admind with its maintenance every second, and measures how long
// the old half takes to go while first uses keep being decided.
func (s *stack) logRetention(t *testing.T, rows int) retentionResult {
	r := retentionResult{rows: rows, young: rows / 2}
	conn := s.pg(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `TRUNCATE intercept_logs`); err != nil {
		t.Fatal(err)
	}
	// g ≤ young: within the last 89 days; the rest: 91 to 180 days old.
	_, err := conn.Exec(ctx, `
		INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, method, path, user_agent, created_at)
		SELECT encode(sha256(('log' || (g % 1000))::bytea), 'hex'), 'sk-logs…', '127.0.0.9', 'ip_not_allowed', 'POST', '/v1/chat/completions', 'bench',
			CASE WHEN g <= $2 THEN now() - make_interval(secs => (g % 89) * 86400 + 60)
			     ELSE now() - make_interval(days => 91 + g % 90) END
		FROM generate_series(1, $1) g`, rows, r.young)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE intercept_logs`); err != nil {
		t.Fatal(err)
	}
	s.stopProc(t, "admind")
	env := s.admindEnv
	s.admindEnv = append(append([]string(nil), env...), "ARCHIVE_INTERVAL=1s", "LOG_RETENTION_DAYS=90")
	defer func() { s.admindEnv = env }()
	start := time.Now()
	s.startAdmind(t)
	client := &http.Client{Timeout: 10 * time.Second}
	var took []time.Duration
	for i := 0; ; i++ {
		body := fmt.Sprintf(`{"key_hash":"%x","key_hint":"sk-ret…","ip":"127.0.0.1","method":"POST","path":"/v1","user_agent":"bench"}`,
			sha256.Sum256([]byte("retention"+strconv.Itoa(i))))
		req, _ := http.NewRequest(http.MethodPost, s.admindURL+"/internal/v1/decide", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+internalToken)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("decide during retention: %v %v", resp, err)
		}
		resp.Body.Close()
		took = append(took, time.Since(t0))
		if i%20 == 0 {
			var old int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM intercept_logs WHERE created_at < now() - interval '90 days'`).Scan(&old); err != nil {
				t.Fatal(err)
			}
			if old == 0 {
				break
			}
			if time.Since(start) > 10*time.Minute {
				t.Fatalf("log retention: %d old rows left after 10 minutes", old)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.took = time.Since(start)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM intercept_logs`).Scan(&r.kept); err != nil {
		t.Fatal(err)
	}
	sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
	r.decides, r.decideP50, r.p99 = len(took), took[len(took)/2], took[len(took)*99/100]
	return r
}

type memResult struct {
	bulk                    int
	admindRSS0, admindRSS   int64 // KiB, before and after loading the bindings
	traefikRSS0, traefikRSS int64
	soak                    time.Duration
	soakRequests            int64
	adminLatency            []adminLatency
}

type adminLatency struct {
	what     string
	p50, max time.Duration
}

// adminLatencies times the console's heaviest reads against the bulk-loaded table: the
// first page of bindings, a search for one key hash, a hint search that matches them all, the
// dashboard (7 runs each, after one warm-up).
func (s *stack) adminLatencies(t *testing.T, hash string) []adminLatency {
	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	var out []adminLatency
	for _, q := range []struct{ what, path string }{
		{"GET /bindings (first page)", "/bindings"},
		{"GET /bindings?q=<key hash>", "/bindings?q=" + hash},
		{"GET /bindings?q=bulk (a hint substring every bulk binding matches)", "/bindings?q=bulk"},
		{"GET /dashboard", "/dashboard"},
	} {
		var took []time.Duration
		for i := 0; i < 8; i++ {
			t0 := time.Now()
			if st, body := s.admin(t, login.Token, "GET", q.path, nil); st != 200 {
				t.Fatalf("%s: %d %s", q.path, st, body)
			}
			if i > 0 {
				took = append(took, time.Since(t0))
			}
		}
		sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
		out = append(out, adminLatency{q.what, took[len(took)/2], took[len(took)-1]})
	}
	return out
}

func (m memResult) String() string {
	s := fmt.Sprintf("\nMemory: admind RSS %d MiB with the bench's bindings, %d MiB after %d more bindings were loaded into PostgreSQL and 1 000 of them decided.\n",
		m.admindRSS0>>10, m.admindRSS>>10, m.bulk)
	s += fmt.Sprintf("Admin API with those %d+ bindings:", m.bulk)
	for i, l := range m.adminLatency {
		sep := ";"
		if i == len(m.adminLatency)-1 {
			sep = ".\n"
		}
		s += fmt.Sprintf(" %s p50 %s, max %s%s", l.what, ms(l.p50), ms(l.max), sep)
	}
	if m.soak > 0 {
		s += fmt.Sprintf("Traefik RSS %d MiB at the start of a %s cache-hit run (%d requests), %d MiB at its end.\n",
			m.traefikRSS0>>10, m.soak, m.soakRequests, m.traefikRSS>>10)
	}
	return s
}

func rssKiB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no VmRSS")
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// memory loads bulk bindings straight into PostgreSQL, makes admind decide a sample of them,
// and reads admind's RSS; then runs the cache-hit route for soak and reads Traefik's RSS at
// both ends.
func (s *stack) memory(t *testing.T, bulk int, soak time.Duration, wrk, script string) memResult {
	r := memResult{bulk: bulk, soak: soak}
	admind := s.procs["admind"].Process.Pid
	r.admindRSS0 = rssKiB(t, admind)
	_, err := s.pg(t).Exec(context.Background(), `
		INSERT INTO token_bindings (key_hash, key_hint, rule_mode, cidrs, status, first_ip, last_ip)
		SELECT encode(sha256(('bulk' || g)::bytea), 'hex'), 'sk-bulk…', 'single', '{127.0.0.1/32}', 'active', '127.0.0.1', '127.0.0.1'
		FROM generate_series(1, $1) g`, bulk)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 1; i <= 1000; i++ {
		body := fmt.Sprintf(`{"key_hash":"%x","key_hint":"sk-bulk…","ip":"127.0.0.1","method":"POST","path":"/v1","user_agent":"bench"}`,
			sha256.Sum256([]byte("bulk"+strconv.Itoa(i*(bulk/1000)))))
		req, _ := http.NewRequest(http.MethodPost, s.admindURL+"/internal/v1/decide", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+internalToken)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("decide %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	r.admindRSS = rssKiB(t, admind)
	r.adminLatency = s.adminLatencies(t, fmt.Sprintf("%x", sha256.Sum256([]byte("bulk"+strconv.Itoa(bulk/2)))))
	if soak > 0 {
		traefik := s.procs["traefik"].Process.Pid
		r.traefikRSS0 = rssKiB(t, traefik)
		out, err := exec.Command(wrk, "-t1", "-c16", wrkDuration(soak), "-s", script,
			s.webURL+"/bench/sentinel/v1/chat/completions").CombinedOutput()
		if err != nil {
			t.Fatalf("soak: %v\n%s", err, out)
		}
		res, _ := parseWrk(string(out))
		r.soakRequests = res.requests
		r.traefikRSS = rssKiB(t, traefik)
	}
	return r
}

// yaegiHotPath runs BenchmarkCacheHitUnderYaegi (internal/yaegihost): the cache-hit path and
// the no-op plugin in one process under Yaegi v0.16.1, with nothing else on the request, so
// the plugin's own cost is seen without the proxy around it.
func yaegiHotPath(t *testing.T) string {
	var b strings.Builder
	// The hot path in many iterations; the general path (a Redis round trip each) in fewer,
	// each beside the no-op plugin in the same process; a flood request (a Redis miss and
	// admind's 429); and why the request code calls functions, not methods.
	for _, run := range []struct{ bench, times string }{
		{"CacheHitUnderYaegi/(noop|sentinel)$", "200000x"},
		{"CacheHitUnderYaegi/(noop|general-redis)$", "5000x"},
		{"FloodRequestUnderYaegi", "5000x"},
		{"CallShapesUnderYaegi", "1000000x"},
	} {
		// internal/yaegihost is a module of its own (yaegi stays out of the plugin's go.mod).
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", run.bench, "-benchtime", run.times, "-count", "3", ".")
		cmd.Dir = filepath.Join(testenv.RepoRoot(), "internal", "yaegihost")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("yaegi benchmark: %v\n%s", err, out)
		}
		fmt.Fprintf(&b, "\nIn process, under Yaegi v0.16.1 (`cd internal/yaegihost && go test -run '^$' -bench '%s' -benchtime %s -count 3 .`):\n\n```\n", run.bench, run.times)
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Benchmark") {
				b.WriteString(l + "\n")
			}
		}
		b.WriteString("```\n")
	}
	return b.String()
}

// processStats are Traefik's and admind's counts that must come back near their baseline
// after load (class H, docs/testing.md).
type processStats struct {
	traefikGoroutines int // excluding pooled upstream connections (idle keep-alive)
	admindGoroutines  int
	traefikFDs        int
	admindFDs         int
	traefikRSS        int64 // KiB
	admindRSS         int64 // KiB
}

func (s *stack) processStats(t *testing.T) processStats {
	total, pooled := s.traefikGoroutines(t)
	traefik, admind := s.procs["traefik"].Process.Pid, s.procs["admind"].Process.Pid
	return processStats{traefikGoroutines: total - pooled, admindGoroutines: int(s.admindMetric(t, "go_goroutines")),
		traefikFDs: openFDs(t, traefik), admindFDs: openFDs(t, admind), traefikRSS: rssKiB(t, traefik), admindRSS: rssKiB(t, admind)}
}

// resourceSnapshot is processStats plus what the data stores must not be left with.
type resourceSnapshot struct {
	processStats
	keysWithoutTTL    []string
	duplicateBindings int
}

func (s *stack) resources(t *testing.T) resourceSnapshot {
	r := resourceSnapshot{processStats: s.processStats(t)}
	ctx := context.Background()
	rc := s.redisClient(t)
	iter := rc.Scan(ctx, 0, "sentinel:*", 1000).Iterator()
	for iter.Next(ctx) {
		// The event stream is consumed by admind's group and trimmed by MAXLEN; it must not expire.
		// TTL answers -1 for a key without one and -2 for a key gone since the SCAN (the
		// last-use syncer's work key lives for a moment): only -1 is a leak.
		if k := iter.Val(); k != "sentinel:events" && rc.TTL(ctx, k).Val() == -1 {
			r.keysWithoutTTL = append(r.keysWithoutTTL, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	r.duplicateBindings = countRows(t, s, `SELECT count(*) FROM (SELECT key_hash FROM token_bindings GROUP BY key_hash HAVING count(*) > 1) d`)
	return r
}

func openFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func resourcesReport(a, b resourceSnapshot) string {
	return fmt.Sprintf("\nBefore the first measured run → after the last: Traefik goroutines %d → %d (pooled upstream connections "+
		"excluded), open files %d → %d, RSS %d → %d MiB; admind open files %d → %d, RSS %d → %d MiB. "+
		"Redis keys sentinel:* without a TTL (the event stream excepted): %d. Keys bound twice: %d.\n",
		a.traefikGoroutines, b.traefikGoroutines, a.traefikFDs, b.traefikFDs, a.traefikRSS>>10, b.traefikRSS>>10,
		a.admindFDs, b.admindFDs, a.admindRSS>>10, b.admindRSS>>10, len(b.keysWithoutTTL), b.duplicateBindings)
}
