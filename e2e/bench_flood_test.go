package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The random-key flood (make bench): strings that are no key of New API's, sent as keys from
// many addresses, while a client uses its bound keys and new real keys bind. Each flood
// request is a Redis miss and an admind decision; the per-source claim limit answers most with
// 429, the rest are claimed, refused by New API (the upstream answers its invalid-token 401
// to every key it did not issue) and released. None may leave a row.

// floodPhase is what one phase measured: the bound client, the real first uses and, with the
// flood, the flood's answers.
type floodPhase struct {
	dur            time.Duration
	boundRPS       float64
	boundNon2xx    int64
	realLat        []time.Duration
	realErrors     int
	floodSent      int
	floodAnswers   map[int]int   // status → count; 0 for transport errors
	pgWrites       int64         // tuples written in PostgreSQL during the phase, last-use touches excepted
	touches        int64         // token_bindings updates (last use moved in from Redis)
	traefikCPU     time.Duration // Traefik's and admind's user+system time during the phase
	admindCPU      time.Duration
	decisions      int64 // admind's decisions (the plugin's cache misses it was asked about)
	floodKeyHashes []string
}

type floodResult struct {
	settle           time.Duration // wait for PostgreSQL's statistics before and after each phase
	keys, addrs      int
	rate             float64
	base, flood      floodPhase
	floor            floodPhase // the same flood sent past the gate (bare route)
	rowsForFlood     int        // token_bindings rows for flood keys (want 0)
	interceptsFlood  int        // intercept_logs rows for flood keys
	upstreamRefusals int
}

// keepAliveClientFrom is an HTTP client whose connections leave from ip and are reused.
func keepAliveClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
	}}
}

// postKey sends a chat request with "Authorization: Bearer sk-<key>" and reads the answer.
func postKey(c *http.Client, url, key string) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer sk-"+key)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// pgTupleWrites sums every table's inserted, updated and deleted tuples but the updates of
// token_bindings (the bound client's last-use touches, every 5 s), and those touches, on a
// connection of its own (statistics are a snapshot per transaction).
func pgTupleWrites(t *testing.T, s *stack) (writes, touches int64) {
	writes = int64(countRows(t, s, `SELECT coalesce(sum(n_tup_ins + n_tup_del + CASE WHEN relname = 'token_bindings' THEN 0 ELSE n_tup_upd END), 0)::bigint FROM pg_stat_user_tables`))
	touches = int64(countRows(t, s, `SELECT coalesce(sum(n_tup_upd), 0)::bigint FROM pg_stat_user_tables WHERE relname = 'token_bindings'`))
	return writes, touches
}

// setClaimLimit changes the runtime setting through the admin API.
func (s *stack) setClaimLimit(t *testing.T, limit int) {
	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	st, body = s.admin(t, login.Token, "GET", "/settings", nil)
	var settings map[string]any
	if st != 200 || json.Unmarshal(body, &settings) != nil {
		t.Fatalf("settings: %d %s", st, body)
	}
	settings["claim_limit"] = limit
	if st, body := s.admin(t, login.Token, "PUT", "/settings", settings); st != 200 {
		t.Fatalf("settings: %d %s", st, body)
	}
}

// randomFloodKey is a string of the form New API issues but never did.
func randomFloodKey() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "flood" + hex.EncodeToString(b)
}

// floodBench runs the bound client (wrk over its 1 000 bound keys, as route c) and new real
// keys (realPerSec, spread over 50 addresses so no source reaches the claim limit) for base,
// then again beside a flood of keys random keys from addrs addresses at rate per second.
//
// PostgreSQL publishes a backend's table statistics at most every second, and an idle one's
// up to 10 s late, so the writes are read after settle; less than 11 s makes them rough.
func (s *stack) floodBench(t *testing.T, wrk, script string, keys, addrs int, rate float64, base, settle time.Duration) floodResult {
	s.upstream.AcceptOnly("benchKey", "realKey")
	defer s.upstream.AcceptOnly()
	s.setClaimLimit(t, 30) // the default: what a deployment has
	defer s.setClaimLimit(t, 0)
	r := floodResult{keys: keys, addrs: addrs, rate: rate, settle: settle}
	refused0 := s.upstream.Refused()
	floodDur := time.Duration(float64(keys) / rate * float64(time.Second))
	r.base = s.floodPhase(t, wrk, script, base, 0, 0, 0, "b", settle, "sentinel")
	r.flood = s.floodPhase(t, wrk, script, floodDur, keys, addrs, rate, "f", settle, "sentinel")
	r.upstreamRefusals = s.upstream.Refused() - refused0
	r.rowsForFlood = countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = ANY($1)`, r.flood.floodKeyHashes)
	r.interceptsFlood = countRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = ANY($1)`, r.flood.floodKeyHashes)
	// The floor: the same flood on the bare route, where only Traefik and the upstream handle
	// it. On a machine whose cores every process shares, what the bound client keeps there is
	// the most a gate inside this Traefik could leave it.
	r.floor = s.floodPhase(t, wrk, script, floodDur, keys, addrs, rate, "w", settle, "bare")
	return r
}

// floodPhase runs the bound client and the new real keys through the sentinel route, and
// the flood (if keys > 0) through floodRoute.
func (s *stack) floodPhase(t *testing.T, wrk, script string, dur time.Duration, keys, addrs int, rate float64, tag string, settle time.Duration, floodRoute string) floodPhase {
	p := floodPhase{dur: dur, floodAnswers: map[int]int{}}
	time.Sleep(settle)
	writes0, touches0 := pgTupleWrites(t, s)
	decisions0 := s.admindDecisions(t)
	traefik0, admind0 := procCPU(t, s.procs["traefik"].Process.Pid), procCPU(t, s.procs["admind"].Process.Pid)
	url := s.webURL + "/bench/sentinel/v1/chat/completions"
	floodURL := s.webURL + "/bench/" + floodRoute + "/v1/chat/completions"
	post := func(c *http.Client, key string) (int, error) { return postKey(c, url, key) }
	var wg sync.WaitGroup
	var mu sync.Mutex
	stop := make(chan struct{})

	// The bound client.
	var bound wrkResult
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, err := exec.Command(wrk, "-t1", "-c16", wrkDuration(dur), "--latency", "-s", script, url).CombinedOutput()
		if err == nil {
			bound, err = parseWrk(string(out))
		}
		if err != nil {
			t.Errorf("wrk: %v\n%s", err, out)
		}
	}()
	// New real keys, 10 per second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		clients := make([]*http.Client, 50)
		for i := range clients {
			clients[i] = keepAliveClientFrom(fmt.Sprintf("127.0.2.%d", i+1))
			defer clients[i].CloseIdleConnections()
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			st, err := post(clients[n%len(clients)], fmt.Sprintf("realKey%s%06d0123456789", tag, n))
			mu.Lock()
			p.realLat = append(p.realLat, time.Since(t0))
			if err != nil || st != 200 {
				p.realErrors++
			}
			mu.Unlock()
		}
	}()
	// SENTINEL_BENCH_PROFILE=<prefix>: a 30 s CPU profile of Traefik during each flood, in
	// <prefix>.flood-<route> (as for the routes).
	if prefix := os.Getenv("SENTINEL_BENCH_PROFILE"); prefix != "" && keys > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(10 * time.Second)
			s.traefikProfile(t, prefix+".flood-"+floodRoute, 30*time.Second)
		}()
	}
	// The flood: addrs senders, each at rate/addrs per second, keys/addrs keys each.
	var floodWG sync.WaitGroup
	for a := 0; a < addrs && keys > 0; a++ {
		floodWG.Add(1)
		go func(a int) {
			defer floodWG.Done()
			c := keepAliveClientFrom(fmt.Sprintf("127.0.1.%d", a+1))
			defer c.CloseIdleConnections()
			interval := time.Duration(float64(addrs) / rate * float64(time.Second))
			next := time.Now()
			for i := a; i < keys; i += addrs {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				key := randomFloodKey()
				st, err := postKey(c, floodURL, key)
				if err != nil {
					st = 0
				}
				mu.Lock()
				p.floodSent++
				p.floodAnswers[st]++
				p.floodKeyHashes = append(p.floodKeyHashes, keyHash(key))
				mu.Unlock()
			}
		}(a)
	}
	floodWG.Wait()
	if keys == 0 {
		time.Sleep(dur)
	}
	close(stop)
	wg.Wait()
	p.boundRPS, p.boundNon2xx = bound.rps, bound.non2xx
	p.traefikCPU = procCPU(t, s.procs["traefik"].Process.Pid) - traefik0
	p.admindCPU = procCPU(t, s.procs["admind"].Process.Pid) - admind0
	p.decisions = s.admindDecisions(t) - decisions0
	time.Sleep(settle)
	writes, touches := pgTupleWrites(t, s)
	p.pgWrites, p.touches = writes-writes0, touches-touches0
	sort.Slice(p.realLat, func(a, b int) bool { return p.realLat[a] < p.realLat[b] })
	return p
}

func pctile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*q)]
}

func (r floodResult) String() string {
	var b strings.Builder
	ratio := 0.0
	if r.base.boundRPS > 0 {
		ratio = r.flood.boundRPS / r.base.boundRPS
	}
	fmt.Fprintf(&b, "\nRandom-key flood: %d random keys from %d addresses at %.0f/s (%v), beside the bound client (wrk -t1 -c16 over its 1 000 bound keys, route c) and 10 new real keys/s from 50 other addresses; the same run without the flood for %v first. The upstream answers New API's invalid-token 401 to every key it did not issue; the claim limit is the default 30 per source per minute.\n\n",
		r.keys, r.addrs, r.rate, r.flood.dur.Round(time.Second), r.base.dur.Round(time.Second))
	b.WriteString("| | without the flood | with the flood | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| bound client, requests/s | %.0f | %.0f (%.3f of without) | ≥ 0.9 |\n", r.base.boundRPS, r.flood.boundRPS, ratio)
	if r.base.boundRPS > 0 && r.floor.boundRPS > 0 {
		fmt.Fprintf(&b, "| floor: the same flood sent past the gate (bare route: Traefik and the upstream's 401 only); bound client, requests/s | | %.0f (%.3f of without; sentinel keeps %.3f of this) | what any gate in this Traefik could at best keep here |\n",
			r.floor.boundRPS, r.floor.boundRPS/r.base.boundRPS, r.flood.boundRPS/r.floor.boundRPS)
		fmt.Fprintf(&b, "| floor: new real keys bound meanwhile, p50 / p99 (count, errors) | | %v / %v (%d, %d) | |\n",
			pctile(r.floor.realLat, 0.5).Round(10*time.Microsecond), pctile(r.floor.realLat, 0.99).Round(10*time.Microsecond), len(r.floor.realLat), r.floor.realErrors)
	}
	fmt.Fprintf(&b, "| new real keys bound: p50 / p99 (count, errors) | %v / %v (%d, %d) | %v / %v (%d, %d) | p99 < 50 ms |\n",
		pctile(r.base.realLat, 0.5).Round(10*time.Microsecond), pctile(r.base.realLat, 0.99).Round(10*time.Microsecond), len(r.base.realLat), r.base.realErrors,
		pctile(r.flood.realLat, 0.5).Round(10*time.Microsecond), pctile(r.flood.realLat, 0.99).Round(10*time.Microsecond), len(r.flood.realLat), r.flood.realErrors)
	// What the flood added: the phase's figure less the same time's worth of the run without it.
	scale := r.flood.dur.Seconds() / r.base.dur.Seconds()
	added := func(with, without float64) float64 {
		if r.flood.floodSent == 0 {
			return 0
		}
		return (with - without*scale) / float64(r.flood.floodSent)
	}
	fmt.Fprintf(&b, "| PostgreSQL tuple writes, last-use touches excepted (the real first uses' rows are in both) | %d | %d | |\n", r.base.pgWrites, r.flood.pgWrites)
	fmt.Fprintf(&b, "| last-use touches (token_bindings updates) | %d | %d | |\n", r.base.touches, r.flood.touches)
	rough := ""
	if r.settle < 11*time.Second {
		rough = fmt.Sprintf(" (statistics read %v after each phase: rough)", r.settle)
	}
	fmt.Fprintf(&b, "| PostgreSQL writes per random-key request (with less without, per second of run)%s | | %.4f | 0 |\n", rough, added(float64(r.flood.pgWrites), float64(r.base.pgWrites)))
	perSec := func(d time.Duration, p floodPhase) string {
		return fmt.Sprintf("%.2f", d.Seconds()/p.dur.Seconds())
	}
	fmt.Fprintf(&b, "| admind decisions (cache misses the plugin asked about) | %d | %d (%.3f per random-key request, the real first uses' less) | |\n",
		r.base.decisions, r.flood.decisions, added(float64(r.flood.decisions), float64(r.base.decisions)))
	fmt.Fprintf(&b, "| CPU seconds per second, Traefik / admind (2 cores shared by every process) | %s / %s | %s / %s | |\n",
		perSec(r.base.traefikCPU, r.base), perSec(r.base.admindCPU, r.base), perSec(r.flood.traefikCPU, r.flood), perSec(r.flood.admindCPU, r.flood))
	var answers []string
	for _, st := range []int{429, 403, 401, 200, 0} {
		if n := r.flood.floodAnswers[st]; n > 0 {
			name := fmt.Sprint(st)
			if st == 0 {
				name = "no answer"
			}
			answers = append(answers, fmt.Sprintf("%s: %d", name, n))
		}
	}
	for st, n := range r.flood.floodAnswers {
		if st != 429 && st != 403 && st != 401 && st != 200 && st != 0 {
			answers = append(answers, fmt.Sprintf("%d: %d", st, n))
		}
	}
	fmt.Fprintf(&b, "\nFlood answers (%d sent): %s; New API refused %d claimed first uses (401), each released. token_bindings rows for random keys: %d (target 0); intercept rows for them: %d.\n",
		r.flood.floodSent, strings.Join(answers, ", "), r.upstreamRefusals, r.rowsForFlood, r.interceptsFlood)
	return b.String()
}
