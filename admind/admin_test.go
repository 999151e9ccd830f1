package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// call sends an admin API request and returns the status and body.
func (a *admindUnderTest) call(t testing.TB, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var sent []byte
	switch b := body.(type) {
	case nil:
	case string:
		sent = []byte(b)
	default:
		sent, _ = json.Marshal(b)
	}
	req, _ := http.NewRequest(method, a.publicURL+path, bytes.NewReader(sent))
	contentType := ""
	if body != nil {
		contentType = "application/json"
		if strings.Contains(path, "format=csv") {
			contentType = "text/csv"
		}
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	checkOpenAPI(t, method, path, contentType, sent, resp, out)
	return resp.StatusCode, out
}

func (a *admindUnderTest) login(t testing.TB) string {
	t.Helper()
	st, body := a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "admin", "password": testAdminPassword})
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if st != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Token == "" {
		t.Fatalf("login: %d %s", st, body)
	}
	if d := time.Until(out.ExpiresAt); d <= 0 || d > time.Hour+time.Minute {
		t.Fatalf("token lifetime %v", d)
	}
	return out.Token
}

// wantError checks an error answer: status, code and JSON shape.
func wantError(t testing.TB, st int, body []byte, status int, code, msgPart string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if st != status || json.Unmarshal(body, &e) != nil || e.Error.Code != code || !strings.Contains(e.Error.Message, msgPart) {
		t.Fatalf("got %d %s; want %d code %s message containing %q", st, body, status, code, msgPart)
	}
}

func TestAdminLogin(t *testing.T) {
	a := startAdmind(t, nil)
	a.login(t)
	st, wrongPass := a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "admin", "password": "nope"})
	wantError(t, st, wrongPass, http.StatusUnauthorized, "invalid_credentials", "invalid username or password")
	_, unknownUser := a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "root", "password": "nope"})
	if !bytes.Equal(wrongPass, unknownUser) {
		t.Fatalf("unknown user and wrong password answer differently:\n%s\n%s", wrongPass, unknownUser)
	}
	st, body := a.call(t, "", http.MethodPost, "/admin/api/login", `{"username":"admin","password":"x","extra":1}`)
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "invalid JSON")

	// Five failures lock the user: the right password then gets the same answer.
	for i := 0; i < 4; i++ {
		a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "admin", "password": "nope"})
	}
	_, locked := a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "admin", "password": testAdminPassword})
	if !bytes.Equal(locked, wrongPass) {
		t.Fatalf("locked account answers differently: %s", locked)
	}
	st, body = a.call(t, "", http.MethodGet, "/metrics", nil)
	if st != 200 || !strings.Contains(string(body), `sentinel_admin_login_failures_total{reason="locked"} 1`) ||
		!strings.Contains(string(body), `sentinel_admin_login_failures_total{reason="bad_credentials"} 6`) {
		t.Fatalf("login failures not in metrics:\n%s", grepLines(string(body), "login_failures"))
	}

	a.redis.Kill()
	st, body = a.call(t, "", http.MethodPost, "/admin/api/login", map[string]string{"username": "admin", "password": testAdminPassword})
	wantError(t, st, body, http.StatusServiceUnavailable, "unavailable", "unavailable")
	if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "connection") {
		t.Fatalf("503 leaks internals: %s", body)
	}
}

// class F, docs/testing.md: without a valid token every admin endpoint answers 401, quickly and alike.
func TestAdminEndpointsNeedAToken(t *testing.T) {
	a := startAdmind(t, nil)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "admin", "iss": "key-ip-sentinel", "aud": "sentinel-admin",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "admin", "iss": "key-ip-sentinel", "aud": "sentinel-admin",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testJWTSecret))
	tokens := []string{"", "garbage", none, hs512, strings.Repeat(".", 100_000), strings.Repeat("A", 1<<20-100)}
	endpoints := [][2]string{
		{"GET", "/admin/api/dashboard"}, {"GET", "/admin/api/bindings"}, {"POST", "/admin/api/bindings/unbind"},
		{"PUT", "/admin/api/bindings/ip"}, {"POST", "/admin/api/bindings/ban"}, {"POST", "/admin/api/bindings/unban"},
		{"GET", "/admin/api/logs"}, {"GET", "/admin/api/logs/export"}, {"GET", "/admin/api/settings"}, {"PUT", "/admin/api/settings"},
		{"PUT", "/admin/api/bindings/note"}, {"GET", "/admin/api/audit"}, {"GET", "/admin/api/audit/export"}, {"POST", "/admin/api/alerts/test"},
	}
	for _, ep := range endpoints {
		for _, tok := range tokens {
			st, body := a.call(t, tok, ep[0], ep[1], `{"id":1}`)
			if st != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"unauthorized"`) {
				t.Fatalf("%s %s with a %d-byte token: %d %s", ep[0], ep[1], len(tok), st, body)
			}
		}
	}
	// Unknown paths and wrong methods are JSON errors too.
	st, body := a.call(t, "", http.MethodGet, "/admin/api/nothing", nil)
	wantError(t, st, body, http.StatusNotFound, "not_found", "")
	st, body = a.call(t, "", http.MethodGet, "/admin/api/login", nil)
	wantError(t, st, body, http.StatusMethodNotAllowed, "method_not_allowed", "")
}

type bindingPage struct {
	Items []struct {
		ID      int64    `json:"id"`
		KeyHint string   `json:"key_hint"`
		KeyHash string   `json:"key_hash"`
		Mode    string   `json:"mode"`
		CIDRs   []string `json:"cidrs"`
		Status  string   `json:"status"`
		FirstIP string   `json:"first_ip"`
	} `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
}

func (a *admindUnderTest) bindings(t testing.TB, token, query string) bindingPage {
	t.Helper()
	st, body := a.call(t, token, http.MethodGet, "/admin/api/bindings?"+query, nil)
	var p bindingPage
	if st != http.StatusOK || json.Unmarshal(body, &p) != nil {
		t.Fatalf("bindings?%s: %d %s", query, st, body)
	}
	return p
}

// decideKey binds or checks a raw key the way the plugin would ask (hash of the normalised key).
func (a *admindUnderTest) decideKey(t testing.TB, normalised, ip string) decideReply {
	t.Helper()
	hint := "sk-" + normalised[:4] + "…" + normalised[len(normalised)-4:]
	d, st := a.decideHinted(t, http.DefaultClient, hashKey(normalised), hint, ip)
	if st != http.StatusOK {
		t.Fatalf("decide %s from %s: %d", normalised, ip, st)
	}
	return d
}

func TestAdminBindings(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	rc := a.redis.Client(t)
	ctx := context.Background()
	const k1, k2, k3 = "alphaKey0123456789", "bravoKey0123456789", "charlieKey01234567"
	a.decideKey(t, k1, "127.0.0.2")
	a.decideKey(t, k2, "127.0.0.3")
	a.decideKey(t, k3, "2001:db8::1")

	// List, search, filter, sort, paginate.
	if p := a.bindings(t, tok, ""); p.Total != 3 || len(p.Items) != 3 || p.Page != 1 || p.PageSize != 20 {
		t.Fatalf("list: %+v", p)
	}
	if p := a.bindings(t, tok, "q=127.0.0.2"); p.Total != 1 || p.Items[0].FirstIP != "127.0.0.2" {
		t.Fatalf("search by IP: %+v", p)
	}
	if p := a.bindings(t, tok, "q=2001:db8::abcd"); p.Total != 1 || p.Items[0].CIDRs[0] != "2001:db8::/64" {
		t.Fatalf("search by an IPv6 address inside the rule: %+v", p)
	}
	if p := a.bindings(t, tok, "q="+url.QueryEscape("sk-"+k2+"-7")); p.Total != 1 || p.Items[0].KeyHash != hashKey(k2) {
		t.Fatalf("search by raw key: %+v", p)
	}
	if p := a.bindings(t, tok, "q="+hashKey(k3)); p.Total != 1 || p.Items[0].KeyHash != hashKey(k3) {
		t.Fatalf("search by key hash: %+v", p)
	}
	if p := a.bindings(t, tok, "q=alph"); p.Total != 1 || p.Items[0].KeyHint != "sk-alph…6789" {
		t.Fatalf("search by hint: %+v", p)
	}
	if p := a.bindings(t, tok, "q="+url.QueryEscape("sk-alph…6789")); p.Total != 1 {
		t.Fatalf("search by a whole hint: %+v", p)
	}
	if p := a.bindings(t, tok, "q=%25"); p.Total != 0 {
		t.Fatalf("%% is matched as a wildcard: %+v", p)
	}
	p := a.bindings(t, tok, "sort=key_hint&order=asc&page_size=2&page=2")
	if p.Total != 3 || len(p.Items) != 1 || p.Items[0].KeyHint != "sk-char…4567" {
		t.Fatalf("sorted page 2: %+v", p)
	}
	id1 := a.bindings(t, tok, "q=alph").Items[0].ID
	for _, bad := range []string{"sort=key_hash", "page_size=1000", "page=0", "status=gone", "mode=any", "order=up"} {
		st, body := a.call(t, tok, http.MethodGet, "/admin/api/bindings?"+bad, nil)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", "")
	}

	// Change the rule: Redis holds the new rule at once and decisions follow it.
	st, body := a.call(t, tok, http.MethodPut, "/admin/api/bindings/ip", map[string]any{"id": id1, "mode": "multiple", "cidrs": []string{"10.0.0.0/8", "127.0.0.9"}})
	if st != http.StatusOK || !strings.Contains(string(body), `"cache_updated":true`) || !strings.Contains(string(body), `"cidrs":["10.0.0.0/8","127.0.0.9/32"]`) {
		t.Fatalf("set rule: %d %s", st, body)
	}
	if got := rc.Get(ctx, "sentinel:b:"+hashKey(k1)).Val(); got != "v1|active|multiple|10.0.0.0/8,127.0.0.9/32" {
		t.Fatalf("redis after rule change: %q", got)
	}
	if d := a.decideKey(t, k1, "127.0.0.9"); !d.Allow {
		t.Fatal("new rule not applied")
	}
	if d := a.decideKey(t, k1, "127.0.0.2"); d.Allow {
		t.Fatal("old address still allowed")
	}
	// Bad rules: 400 naming the entry, nothing changed.
	for _, tt := range []struct {
		body any
		msg  string
	}{
		{map[string]any{"id": id1, "mode": "single", "cidrs": []string{"0.0.0.0/0"}}, `"0.0.0.0/0" allows every address; use the rule "all"`},
		{map[string]any{"id": id1, "mode": "multiple", "cidrs": []string{"127.0.0.1", "10.0.0.5/24"}}, `"10.0.0.5/24" has host bits set`},
		{map[string]any{"id": id1, "mode": "single", "cidrs": []string{"not-an-ip"}}, `"not-an-ip" is not an IP address or CIDR`},
		{map[string]any{"id": id1, "mode": "sometimes"}, "rule mode must be"},
		{map[string]any{"id": 0, "mode": "all"}, "id must be"},
		{`{"id":1,"mode":"all","extra":true}`, "invalid JSON"},
	} {
		st, body := a.call(t, tok, http.MethodPut, "/admin/api/bindings/ip", tt.body)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", tt.msg)
	}
	st, body = a.call(t, tok, http.MethodPut, "/admin/api/bindings/ip", map[string]any{"id": 999999, "mode": "all"})
	wantError(t, st, body, http.StatusNotFound, "not_found", "no such binding")

	// Ban and unban.
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/ban", map[string]any{"id": id1})
	if st != 200 || !strings.Contains(string(body), `"status":"banned"`) {
		t.Fatalf("ban: %d %s", st, body)
	}
	if got := rc.Get(ctx, "sentinel:b:"+hashKey(k1)).Val(); !strings.HasPrefix(got, "v1|banned|") {
		t.Fatalf("redis after ban: %q", got)
	}
	if d := a.decideKey(t, k1, "127.0.0.9"); d.Allow || d.Reason != "key_banned" {
		t.Fatalf("banned key: %+v", d)
	}
	if p := a.bindings(t, tok, "status=banned"); p.Total != 1 || p.Items[0].ID != id1 {
		t.Fatalf("status filter: %+v", p)
	}
	if p := a.bindings(t, tok, "mode=multiple"); p.Total != 1 {
		t.Fatalf("mode filter: %+v", p)
	}
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/ban", map[string]any{"id": id1, "mode": "all"})
	wantError(t, st, body, http.StatusBadRequest, "bad_request", "only an id")
	if st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/unban", map[string]any{"id": id1}); st != 200 {
		t.Fatalf("unban: %d %s", st, body)
	}
	if d := a.decideKey(t, k1, "127.0.0.9"); !d.Allow {
		t.Fatal("unbanned key still refused")
	}

	// Unbind: gone from PostgreSQL and Redis; the next use binds again, once.
	if st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/unbind", map[string]any{"id": id1}); st != 200 || !strings.Contains(string(body), `"cache_updated":true`) {
		t.Fatalf("unbind: %d %s", st, body)
	}
	if n := rc.Exists(ctx, "sentinel:b:"+hashKey(k1)).Val(); n != 0 {
		t.Fatal("redis entry survived the unbind")
	}
	if d := a.decideKey(t, k1, "127.0.0.44"); !d.Allow || d.Binding.CIDRs[0] != "127.0.0.44/32" {
		t.Fatalf("rebind after unbind: %+v", d)
	}
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/unbind", map[string]any{"id": id1})
	wantError(t, st, body, http.StatusNotFound, "not_found", "")

	// Every change is in admin_audit: who, what, before, after, from where.
	rows, _ := conn.Query(ctx, `SELECT actor, action, target, coalesce(before::text, ''), coalesce(after::text, ''), host(ip) FROM admin_audit ORDER BY id`)
	type auditRow struct{ Actor, Action, Target, Before, After, IP string }
	audits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[auditRow])
	if err != nil {
		t.Fatal(err)
	}
	wantActions := []string{"binding.set_rule", "binding.ban", "binding.unban", "binding.unbind"}
	if len(audits) != len(wantActions) {
		t.Fatalf("audit rows: %+v", audits)
	}
	for i, r := range audits {
		if r.Actor != "admin" || r.Action != wantActions[i] || r.Target != fmt.Sprintf("binding:%d", id1) || r.IP != "127.0.0.1" || r.Before == "" {
			t.Errorf("audit row %d: %+v", i, r)
		}
	}
	if !strings.Contains(audits[0].Before, `"127.0.0.2/32"`) || !strings.Contains(audits[0].After, `"10.0.0.0/8"`) {
		t.Errorf("rule change audit lacks before/after: %+v", audits[0])
	}
	if audits[3].After != "" {
		t.Errorf("unbind audit has an after: %+v", audits[3])
	}
	assertNoRawKey(t, a, conn, k1, k2, k3)
}

// assertNoRawKey greps the log and the admin tables for raw keys.
func assertNoRawKey(t *testing.T, a *admindUnderTest, conn *pgx.Conn, keys ...string) {
	t.Helper()
	var dump string
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(string_agg(t::text, ' '), '') FROM (
		SELECT a::text AS t FROM admin_audit a UNION ALL SELECT b::text FROM token_bindings b UNION ALL SELECT l::text FROM intercept_logs l) x`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(dump, k) || strings.Contains(a.stderr.String(), k) {
			t.Errorf("raw key %s found in the database or the log", k)
		}
	}
}

// class D, docs/testing.md: unbind while requests are in flight. Decides that read the binding before the
// unbind must not put it back into Redis, and the next requests rebind exactly once.
func TestUnbindWhileRequestsInFlight(t *testing.T) {
	// 30 rounds of rebinding from one address: more new claims than the default limit allows.
	a := startAdmind(t, map[string]string{"CLAIM_LIMIT": "0"})
	tok := a.login(t)
	conn := a.db(t)
	rc := a.redis.Client(t)
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const rounds = 30
	for round := 0; round < rounds; round++ {
		key := fmt.Sprintf("inflightKey%04d-xyz", round)
		hash := hashKey(key)
		a.decideKey(t, key, "127.0.0.2")
		var id int64
		if err := conn.QueryRow(ctx, `SELECT id FROM token_bindings WHERE key_hash = $1`, hash).Scan(&id); err != nil {
			t.Fatal(err)
		}
		// In flight from the bound address while the unbind happens.
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						a.decide(t, client, hash, "127.0.0.2")
					}
				}
			}()
		}
		time.Sleep(5 * time.Millisecond) // let the in-flight requests get going; not a correctness wait
		if st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings/unbind", map[string]any{"id": id}); st != 200 {
			t.Fatalf("unbind: %d %s", st, body)
		}
		close(stop)
		wg.Wait()
		// Whatever the interleaving: Redis agrees with PostgreSQL.
		var entry string
		err := conn.QueryRow(ctx, `SELECT 'v1|' || status || '|' || rule_mode || '|' || array_to_string(cidrs, ',') FROM token_bindings WHERE key_hash = $1`, hash).Scan(&entry)
		if err == pgx.ErrNoRows {
			entry = ""
		} else if err != nil {
			t.Fatal(err)
		}
		if got := rc.Get(ctx, "sentinel:b:"+hash).Val(); got != entry {
			t.Fatalf("round %d: redis %q but PostgreSQL %q (a stale fill survived the unbind)", round, got, entry)
		}
		// The next requests, from 20 new addresses at once, rebind exactly once (or find the
		// binding an in-flight request re-created).
		var allowed sync.Map
		for g := 0; g < 20; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				ip := fmt.Sprintf("127.0.1.%d", g+1)
				if d, st := a.decide(t, client, hash, ip); st == 200 && d.Allow {
					allowed.Store(ip, true)
				}
			}(g)
		}
		wg.Wait()
		if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, hash); n != 1 {
			t.Fatalf("round %d: %d bindings", round, n)
		}
		n := 0
		allowed.Range(func(any, any) bool { n++; return true })
		if entry == "" && n != 1 {
			t.Fatalf("round %d: %d addresses allowed after the unbind, want 1", round, n)
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var _ = testenv.WaitFor
