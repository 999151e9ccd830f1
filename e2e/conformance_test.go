package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/newapi"
)

// TestConformance puts the real New API in the loop (class I, docs/testing.md): for every request in a
// corpus built from New API's own router and TokenAuth, it asks New API directly whether the
// request authenticates the bound key K, then sends the same request through Traefik and the
// plugin from an address K is not bound to. A request New API authenticates as K that the
// gateway forwards (and that New API, as it receives it through Traefik, authenticates as K)
// is a failure. The owner's address must keep working for every such
// request (a deliberate refusal of a spelling no client sends excepted). It runs on New API
// with SQLite and with MariaDB (case- and accent-insensitive collation).
//
// NEWAPI_BIN and NEWAPI_SRC run it against another New API (make conformance).
func TestConformance(t *testing.T) {
	src := newapi.SourceDir(t)
	routes, err := newapi.RoutesFromSource(src)
	if err != nil {
		t.Fatal(err)
	}
	newapi.Binary(t) // skip (or build) before anything starts
	// On MariaDB K binds with the learning rule (two addresses, both taken before the corpus):
	// the rule the key holds then was learned through the plugin, and must refuse every shape
	// from a third address just as a single-address binding does.
	for _, db := range []string{"sqlite", "mariadb"} {
		t.Run(db, func(t *testing.T) { runConformance(t, db, routes, db == "mariadb") })
	}
}

const (
	ownerAddr    = "127.0.0.2"
	attackerAddr = "127.0.0.3"
	learnedAddr  = "127.0.0.4" // with the learning rule, the owner's second address
	// The placeholders a probe is written with: the key under test, an unknown key in the
	// same form, and another key New API issued.
	phKey, phUnknown, phOther = "{K}", "{U}", "{X}"
)

// A probe is one request of the corpus. Its target and header values hold placeholders; the
// key under test goes through spell first (its spelling variant).
type probe struct {
	class  string
	desc   string
	method string
	target string      // request-target as sent: origin form, or absolute form
	header [][2]string // in order, repeats allowed
	spell  func(string) string
}

type answer struct {
	status  int
	refused string // the sentinel refusal code, "" when the request was forwarded
	err     error
}

func runConformance(t *testing.T, db string, routes []newapi.Route, learning bool) {
	up := newUpstream(t)
	na := newapi.Start(t, newapi.Options{DB: db, UpstreamURL: up.url, Keys: 2})
	// Traefik's own encodedCharacters defence is off here: the plugin must hold alone.
	o := stackOptions{UpstreamURL: na.URL, TraefikAllowsEncoded: true}
	if learning {
		o.AdmindEnv = []string{"FIRST_USE_RULE=learning", "LEARNING_SLOTS=2"}
	}
	s := startStack(t, o)
	key, other := na.Keys[0], na.Keys[1]
	unknown := []string{randomKey(t), randomKey(t)}

	// Bind K to the owner (and, learning, to a second address, which fills the rule).
	own := probe{method: "GET", target: "/v1/models", header: [][2]string{{"Authorization", "Bearer sk-" + phKey}}}
	owners := []string{ownerAddr}
	if learning {
		owners = append(owners, learnedAddr)
	}
	for _, addr := range owners {
		if a := sendProbe(s.webURL, addr, own, key, unknown[0], other); a.err != nil || a.status != 200 || a.refused != "" {
			t.Fatalf("binding K from %s: %+v", addr, a)
		}
	}
	rule := func() string {
		var mode, cidrs string
		if err := s.pg(t).QueryRow(context.Background(), `SELECT rule_mode, array_to_string(cidrs, ' ') FROM token_bindings WHERE key_hash = $1`,
			keyHash(key)).Scan(&mode, &cidrs); err != nil {
			t.Fatal(err)
		}
		return mode + " " + cidrs
	}
	wantRule := "single " + ownerAddr + "/32"
	if learning {
		wantRule = "learning " + ownerAddr + "/32 " + learnedAddr + "/32"
	}
	if got := rule(); got != wantRule {
		t.Fatalf("K's rule %q, want %q", got, wantRule)
	}
	defer func() {
		if got := rule(); got != wantRule {
			t.Errorf("after the corpus K's rule is %q, want %q", got, wantRule)
		}
	}()

	corpus := buildCorpus(routes, na)
	if len(corpus) < 2000 {
		t.Fatalf("corpus has only %d requests", len(corpus))
	}
	start := time.Now()
	type result struct {
		p             probe
		authenticated bool // New API, asked directly, authenticates K
		attacker      answer
		// passed: the gateway forwarded the attacker's request and New API, as it received
		// it through Traefik, authenticated K (its answer is not 401, and the same request
		// with an unknown key in K's place gets 401 there).
		passed bool
		owner  answer
		direct int
	}
	results := make([]result, len(corpus))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := corpus[i]
				withKey := sendProbe(na.URL, "127.0.0.1", p, key, unknown[0], other)
				withUnknown := sendProbe(na.URL, "127.0.0.1", p, unknown[1], unknown[0], other)
				r := result{p: p, direct: withKey.status}
				r.authenticated = withKey.err == nil && withUnknown.err == nil &&
					withKey.status != http.StatusUnauthorized && withUnknown.status == http.StatusUnauthorized
				r.attacker = sendProbe(s.webURL, attackerAddr, p, key, unknown[0], other)
				if r.attacker.err == nil && r.attacker.refused == "" && r.attacker.status != http.StatusUnauthorized {
					// Traefik may hand New API another request than the one New API judged
					// directly (it removes dot segments), so ask New API through the gateway.
					viaGateway := sendProbe(s.webURL, attackerAddr, p, unknown[1], unknown[0], other)
					r.passed = viaGateway.err == nil && viaGateway.status == http.StatusUnauthorized
				}
				if r.authenticated {
					r.owner = sendProbe(s.webURL, ownerAddr, p, key, unknown[0], other)
				}
				results[i] = r
			}
		}()
	}
	for i := range corpus {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)

	type row struct{ requests, authenticated, refused, passed, ownerOK, ownerByDesign, ownerWrong int }
	byClass := map[string]*row{}
	var classes []string
	var failures, ownerFailures []string
	byDesign := map[string]bool{codeMalformed: true, codeEncodedSeparator: true, codeAmbiguous: true}
	for _, r := range results {
		c := byClass[r.p.class]
		if c == nil {
			c = &row{}
			byClass[r.p.class] = c
			classes = append(classes, r.p.class)
		}
		c.requests++
		if r.attacker.err == nil && r.attacker.refused != "" {
			c.refused++
		}
		if r.passed {
			c.passed++
			failures = append(failures, fmt.Sprintf("%s (%s): %s %s %q → New API %d directly, gateway from %s %d",
				r.p.class, r.p.desc, r.p.method, r.p.target, r.p.header, r.direct, attackerAddr, r.attacker.status))
		}
		if !r.authenticated {
			continue
		}
		c.authenticated++
		switch {
		case r.owner.err == nil && r.owner.refused == "":
			c.ownerOK++
		case r.owner.err == nil && byDesign[r.owner.refused]:
			c.ownerByDesign++
		default:
			c.ownerWrong++
			ownerFailures = append(ownerFailures, fmt.Sprintf("%s (%s): %s %s %q → owner %d %s (%v)",
				r.p.class, r.p.desc, r.p.method, r.p.target, r.p.header, r.owner.status, r.owner.refused, r.owner.err))
		}
	}
	sort.Strings(classes)
	var b strings.Builder
	fmt.Fprintf(&b, "conformance against New API on %s, K bound by the rule %q: %d requests in %s\n", db, wantRule, len(corpus), elapsed.Round(time.Second))
	fmt.Fprintf(&b, "%-22s %8s %14s %9s %7s | %9s %10s %6s\n", "class", "requests", "authenticated", "refused", "passed", "owner ok", "by design", "wrong")
	var total row
	for _, name := range classes {
		c := byClass[name]
		fmt.Fprintf(&b, "%-22s %8d %14d %9d %7d | %9d %10d %6d\n", name, c.requests, c.authenticated, c.refused, c.passed, c.ownerOK, c.ownerByDesign, c.ownerWrong)
		total.requests += c.requests
		total.authenticated += c.authenticated
		total.refused += c.refused
		total.passed += c.passed
		total.ownerOK += c.ownerOK
		total.ownerByDesign += c.ownerByDesign
		total.ownerWrong += c.ownerWrong
	}
	fmt.Fprintf(&b, "%-22s %8d %14d %9d %7d | %9d %10d %6d\n", "total", total.requests, total.authenticated, total.refused, total.passed, total.ownerOK, total.ownerByDesign, total.ownerWrong)
	t.Log("\n" + b.String())
	if out := os.Getenv("SENTINEL_CONFORMANCE_REPORT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, b.String())
			f.Close()
		}
	}
	if total.authenticated < 500 {
		t.Errorf("New API authenticated only %d requests of the corpus: the oracle or the corpus is broken", total.authenticated)
	}
	for i, f := range failures {
		if i == 40 {
			t.Errorf("… and %d more", len(failures)-40)
			break
		}
		t.Errorf("passed: %s", f)
	}
	for i, f := range ownerFailures {
		if i == 40 {
			t.Errorf("… and %d more", len(ownerFailures)-40)
			break
		}
		t.Errorf("owner refused: %s", f)
	}
}

// The plugin's refusal codes a test tells apart (plugin/respond.go).
const (
	codeMalformed        = "malformed_api_key"
	codeEncodedSeparator = "encoded_path_separator"
	codeAmbiguous        = "ambiguous_api_key"
)

// sendProbe writes the request byte for byte (so no client library respells the target)
// from the loopback address from, and reads the answer.
func sendProbe(base, from string, p probe, key, unknown, other string) answer {
	spell := p.spell
	if spell == nil {
		spell = func(k string) string { return k }
	}
	fill := func(s string) string {
		return strings.NewReplacer(phKey, spell(key), phUnknown, unknown, phOther, other).Replace(s)
	}
	host := strings.TrimPrefix(base, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", host)
	if err != nil {
		return answer{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	body := ""
	if p.method != "GET" && p.method != "HEAD" && p.method != "DELETE" && p.method != "OPTIONS" {
		body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"prompt":"hi","input":"hi"}`
	}
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", p.method, fill(p.target), host)
	for _, h := range p.header {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], fill(h[1]))
	}
	fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return answer{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	a := answer{status: resp.StatusCode}
	if strings.Contains(string(raw), `"type":"sentinel_error"`) {
		a.refused = "unknown"
		for _, c := range []string{codeMalformed, codeEncodedSeparator, codeAmbiguous, "ip_not_allowed", "key_banned",
			"invalid_client_ip", "missing_api_key", "sentinel_unavailable"} {
			if strings.Contains(string(raw), `"code":"`+c+`"`) {
				a.refused = c
			}
		}
	}
	return a
}

// randomKey is a key in the form New API issues that it never issued.
func randomKey(t *testing.T) string {
	const chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// buildCorpus generates the requests: every route New API registers with every carrier, the
// paths beside them, path spellings, key spellings and carrier combinations.
func buildCorpus(routes []newapi.Route, na *newapi.Instance) []probe {
	var out []probe
	add := func(p probe) { out = append(out, p) }
	bearer := [][2]string{{"Authorization", "Bearer sk-" + phKey}}

	// Every route, every carrier TokenAuth reads.
	type carrier struct {
		name   string
		header [][2]string
		query  string
	}
	carriers := []carrier{
		{"Authorization Bearer", bearer, ""},
		{"Authorization bearer", [][2]string{{"Authorization", "bearer " + phKey}}, ""},
		{"Authorization bare", [][2]string{{"Authorization", "sk-" + phKey}}, ""},
		{"x-api-key", [][2]string{{"x-api-key", "sk-" + phKey}}, ""},
		{"x-goog-api-key", [][2]string{{"x-goog-api-key", phKey}}, ""},
		{"?key=", nil, "key=sk-" + phKey},
		{"websocket entry", [][2]string{{"Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key.sk-" + phKey + ", openai-beta.realtime-v1"}}, ""},
		{"websocket whole value", [][2]string{{"Sec-WebSocket-Protocol", "sk-" + phKey}}, ""},
		{"mj placeholder", [][2]string{{"Authorization", "midjourney-proxy"}, {"mj-api-secret", "sk-" + phKey}}, ""},
		{"mj-api-secret", [][2]string{{"mj-api-secret", "Bearer " + phKey}}, ""},
	}
	seenPath := map[string]bool{}
	var keyPaths, dashPaths []newapi.Route
	for _, r := range routes {
		path := fillRoute(r.Path, na.Model, "api")
		for _, c := range carriers {
			target := path
			if c.query != "" {
				target += "?" + c.query
			}
			add(probe{class: "route×carrier", desc: c.name, method: r.Method, target: target, header: c.header})
		}
		if seenPath[r.Method+r.Path] {
			continue
		}
		seenPath[r.Method+r.Path] = true
		if r.ReadsKey() {
			keyPaths = append(keyPaths, r)
		} else {
			dashPaths = append(dashPaths, r)
		}
	}

	// Paths just beside the routes: the trailing slash toggled, other parameter values
	// (gin's /:mode/ takes any first segment), key routes under the dashboard prefixes.
	for _, r := range routes {
		for _, mode := range []string{"pg", "v1", "dashboard"} {
			if strings.Contains(r.Path, ":mode") {
				add(probe{class: "beside routes", method: r.Method, target: fillRoute(r.Path, na.Model, mode), header: bearer})
			}
		}
		p := fillRoute(r.Path, na.Model, "api")
		if strings.HasSuffix(p, "/") {
			add(probe{class: "beside routes", method: r.Method, target: strings.TrimSuffix(p, "/"), header: bearer})
		} else {
			add(probe{class: "beside routes", method: r.Method, target: p + "/", header: bearer})
		}
		if r.ReadsKey() && !strings.HasPrefix(r.Path, "/api/") {
			for _, pre := range []string{"/api", "/pg"} {
				add(probe{class: "beside routes", method: r.Method, target: pre + p, header: bearer})
			}
		}
	}

	// Path spellings of every key route: each separator, dot and first letter of a segment
	// percent-encoded, dot segments (plain and encoded), repeated slashes, case, absolute form.
	for _, r := range keyPaths {
		p := fillRoute(r.Path, na.Model, "api")
		for _, v := range pathSpellings(p) {
			add(probe{class: "path spelling", desc: v.desc, method: r.Method, target: v.target, header: bearer})
		}
	}
	// Dashboard routes reached from a catch-all key route through dot segments, which a
	// cleaning reader would classify as the dashboard route.
	for i, r := range dashPaths {
		if i%3 != 0 {
			continue
		}
		d := strings.TrimPrefix(fillRoute(r.Path, na.Model, "api"), "/")
		for _, via := range []string{"/v1beta/models/x/../../../", "/v1beta/models/x%2F..%2F..%2F..%2F", "/v1/models/x/../../",
			"/v1/models/x%2F..%2F..%2F", "/v1beta/models/x%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f"} {
			add(probe{class: "path spelling", desc: "catch-all into a dashboard route", method: "POST", target: via + d, header: bearer})
		}
	}

	// Key spellings, on routes of each relay family, in the carriers that take them.
	spellings := keySpellings(na.ChannelID)
	keyRoutes := []struct{ method, target, carrierHeader, query string }{
		{"POST", "/v1/chat/completions", "Authorization", ""},
		{"GET", "/v1/models", "Authorization", ""},
		{"GET", "/v1/models", "", "key"},
		{"POST", "/v1/messages", "x-api-key", ""},
		{"POST", "/v1beta/models/" + na.Model + ":generateContent", "x-goog-api-key", ""},
		{"GET", "/api/usage/token/", "Authorization", ""},
		{"GET", "/api/log/token", "Authorization", ""},
		{"POST", "/mj/submit/imagine", "mj-api-secret", ""},
		{"GET", "/v1/realtime", "Sec-WebSocket-Protocol", ""},
	}
	for _, kr := range keyRoutes {
		for _, sp := range spellings {
			p := probe{class: "key spelling", desc: sp.desc, method: kr.method, target: kr.target, spell: sp.spell}
			switch kr.carrierHeader {
			case "":
				p.target += "?" + kr.query + "=" + phKey
				p.spell = func(k string) string { return url.QueryEscape(sp.spell(k)) }
			case "Authorization":
				p.header = [][2]string{{"Authorization", "Bearer " + phKey}}
			case "Sec-WebSocket-Protocol":
				p.header = [][2]string{{"Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key." + phKey}}
			default:
				p.header = [][2]string{{kr.carrierHeader, phKey}}
			}
			add(p)
			if kr.carrierHeader == "Authorization" {
				add(probe{class: "key spelling", desc: sp.desc + " (bare)", method: kr.method, target: kr.target,
					header: [][2]string{{"Authorization", phKey}}, spell: sp.spell})
			}
		}
	}

	// Carriers combined: duplicated, in several header lines, with decoy keys.
	combos := []struct {
		desc   string
		header [][2]string
		query  string
	}{
		{"Authorization twice, decoy first", [][2]string{{"Authorization", "Bearer " + phUnknown}, {"Authorization", "Bearer " + phKey}}, ""},
		{"Authorization twice, decoy second", [][2]string{{"Authorization", "Bearer " + phKey}, {"Authorization", "Bearer " + phUnknown}}, ""},
		{"Authorization twice, same key", [][2]string{{"Authorization", "Bearer " + phKey}, {"Authorization", "Bearer sk-" + phKey}}, ""},
		{"x-api-key key, Authorization decoy", [][2]string{{"x-api-key", phKey}, {"Authorization", "Bearer " + phUnknown}}, ""},
		{"x-api-key decoy, Authorization key", [][2]string{{"x-api-key", phUnknown}, {"Authorization", "Bearer " + phKey}}, ""},
		{"x-api-key key, Authorization other issued key", [][2]string{{"x-api-key", phKey}, {"Authorization", "Bearer " + phOther}}, ""},
		{"x-goog-api-key key, query decoy", [][2]string{{"x-goog-api-key", phKey}}, "key=" + phUnknown},
		{"query key, x-goog-api-key decoy", [][2]string{{"x-goog-api-key", phUnknown}}, "key=" + phKey},
		{"query twice, decoy first", nil, "key=" + phUnknown + "&key=" + phKey},
		{"query twice, key first", nil, "key=" + phKey + "&key=" + phUnknown},
		{"websocket two entries, decoy first", [][2]string{{"Sec-WebSocket-Protocol", "openai-insecure-api-key." + phUnknown + ", openai-insecure-api-key." + phKey}}, ""},
		{"websocket two lines, key in the second", [][2]string{{"Sec-WebSocket-Protocol", "realtime"}, {"Sec-WebSocket-Protocol", "openai-insecure-api-key." + phKey}}, ""},
		{"websocket whole value, Authorization decoy", [][2]string{{"Sec-WebSocket-Protocol", phKey}, {"Authorization", "Bearer " + phUnknown}}, ""},
		{"websocket entry without the dot", [][2]string{{"Sec-WebSocket-Protocol", "openai-insecure-api-key" + phKey}}, ""},
		{"websocket decoy, Authorization key", [][2]string{{"Sec-WebSocket-Protocol", "openai-insecure-api-key." + phUnknown}, {"Authorization", "Bearer " + phKey}}, ""},
		{"mj placeholder, mj decoy and key", [][2]string{{"Authorization", "Bearer midjourney-proxy"}, {"mj-api-secret", phUnknown}, {"mj-api-secret", phKey}}, ""},
		{"empty Authorization, mj key", [][2]string{{"Authorization", "Bearer "}, {"mj-api-secret", phKey}}, ""},
		{"Authorization key, mj decoy", [][2]string{{"Authorization", "Bearer " + phKey}, {"mj-api-secret", phUnknown}}, ""},
		{"every carrier, the same key", [][2]string{{"Authorization", "Bearer " + phKey}, {"x-api-key", phKey}, {"x-goog-api-key", phKey},
			{"Sec-WebSocket-Protocol", "openai-insecure-api-key." + phKey}, {"mj-api-secret", phKey}}, "key=" + phKey},
	}
	for _, r := range keyRoutes {
		for _, c := range combos {
			target := r.target
			if c.query != "" {
				target += "?" + c.query
			}
			add(probe{class: "carrier combination", desc: c.desc, method: r.method, target: target, header: c.header})
		}
	}
	return out
}

// fillRoute gives a gin pattern's parameters concrete values.
func fillRoute(pattern, model, mode string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		switch {
		case s == ":mode":
			segs[i] = mode
		case s == ":model":
			segs[i] = model
		case strings.HasPrefix(s, ":"):
			segs[i] = "1"
		case strings.HasPrefix(s, "*"):
			segs[i] = model + ":generateContent"
		}
	}
	return strings.Join(segs, "/")
}

type spelling struct{ desc, target string }

func pathSpellings(p string) []spelling {
	var out []spelling
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' && i > 0 || c == '.' || c == ':' || i > 0 && p[i-1] == '/' {
			out = append(out, spelling{fmt.Sprintf("%%%02X at %d", c, i), p[:i] + fmt.Sprintf("%%%02X", c) + p[i+1:]})
		}
	}
	first := strings.Index(p[1:], "/") + 1
	if first > 0 {
		out = append(out,
			spelling{"dot segment", p[:first] + "/x/.." + p[first:]},
			spelling{"encoded dot segment", p[:first] + "/x/%2e%2e" + p[first:]},
			spelling{"single dot", p[:first] + "/." + p[first:]},
			spelling{"from the dashboard prefix", "/api/.." + p},
			spelling{"from the dashboard prefix, encoded", "/api/%2e%2e" + p},
			spelling{"from the dashboard prefix, encoded slash", "/api%2F.." + p},
			spelling{"repeated slash inside", p[:first] + "/" + p[first:]},
		)
	}
	out = append(out,
		spelling{"repeated leading slash", "/" + p},
		spelling{"upper case", strings.ToUpper(p)},
		spelling{"absolute form", "http://newapi.test" + p},
		spelling{"absolute form, dashboard host path", "http://newapi.test/api/.." + p},
		spelling{"backslash", strings.Replace(p, "/", "%5C", 2)},
	)
	return out
}

type keySpelling struct {
	desc  string
	spell func(string) string
}

func keySpellings(channel int) []keySpelling {
	accent := map[byte]string{'a': "á", 'e': "é", 'i': "í", 'o': "ö", 'u': "ü", 'c': "ç", 'n': "ñ", 'A': "À", 'E': "É", 'O': "Ô", 'U': "Ú"}
	swap := func(k string) string {
		b := []byte(k)
		for i, c := range b {
			switch {
			case c >= 'a' && c <= 'z':
				b[i] = c - 32
			case c >= 'A' && c <= 'Z':
				b[i] = c + 32
			}
		}
		return string(b)
	}
	firstAccent := func(k string) string {
		for i := 0; i < len(k); i++ {
			if r, ok := accent[k[i]]; ok {
				return k[:i] + r + k[i+1:]
			}
		}
		return k
	}
	allAccents := func(k string) string {
		var b strings.Builder
		for i := 0; i < len(k); i++ {
			if r, ok := accent[k[i]]; ok {
				b.WriteString(r)
			} else {
				b.WriteByte(k[i])
			}
		}
		return b.String()
	}
	fullWidth := func(k string) string {
		c := rune(k[0])
		if c >= '!' && c <= '~' {
			return string(c-'!'+'！') + k[1:]
		}
		return k
	}
	return []keySpelling{
		{"sk- prefix", func(k string) string { return "sk-" + k }},
		{"no prefix", func(k string) string { return k }},
		{"channel suffix", func(k string) string { return fmt.Sprintf("sk-%s-%d", k, channel) }},
		{"unknown channel suffix", func(k string) string { return k + "-99" }},
		{"upper case", strings.ToUpper},
		{"lower case", strings.ToLower},
		{"swapped case", swap},
		{"one accented letter", firstAccent},
		{"every letter accented", allAccents},
		{"full-width first character", fullWidth},
		{"space before a channel suffix", func(k string) string { return k + " -1" }},
		{"surrounding whitespace", func(k string) string { return "  " + k + "  " }},
		{"trailing tab", func(k string) string { return k + "\t" }},
		{"trailing no-break space", func(k string) string { return k + "\u00a0" }},
		{"trailing zero-width space", func(k string) string { return k + "\u200b" }},
		{"trailing soft hyphen", func(k string) string { return k + "\u00ad" }},
		{"upper case with sk-", func(k string) string { return "SK-" + strings.ToUpper(k) }},
		// The plugin reads a value with a "." as no key (a dashboard JWT): New API must agree.
		{"trailing dot", func(k string) string { return k + "." }},
		{"dot inside", func(k string) string { return k[:24] + "." + k[24:] }},
		{"JWT-shaped, key first", func(k string) string { return k + ".eyJzdWIiOiIxIn0.c2ln" }},
	}
}
