package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestNoRawKeyAnywhere is the security sweep (issue 8): unique marker keys go through every
// path a key can take — allowed, intercepted (up to an alert webhook), ambiguous, failsafe,
// every carrier New API reads, the admin search, the logs and their CSV export — and then no
// marker may appear in any process log, any table, any Redis value of any type, any webhook
// body, any admin API answer, the CSV, /metrics or an error body.
func TestNoRawKeyAnywhere(t *testing.T) {
	hook := newAlertReceiver(t)
	s := startStack(t, stackOptions{AdmindEnv: []string{"ALERT_WEBHOOK_URL=" + hook.URL, "ALERT_THRESHOLD_COUNT=3"}})
	ctx := context.Background()
	run := time.Now().UnixNano()
	marker := func(name string) string { return fmt.Sprintf("MRK%s%d", name, run) }
	markers := map[string]string{}
	for _, n := range []string{"Allowed", "Ambiguous", "Failsafe", "Query", "Goog", "Anthropic", "Socket", "Midjourney"} {
		markers[n] = marker(n)
	}
	var answers []string // every body the public entrypoint and the admin API sent back
	call := func(from, path string, headers map[string]string) int {
		st, body := s.call(t, from, path, headers)
		answers = append(answers, body)
		return st
	}
	expect := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %d, want %d", what, got, want)
		}
	}

	allowed := map[string]string{"Authorization": "Bearer sk-" + markers["Allowed"] + "-3"}
	expect("first use", call("127.0.0.2", "/v1/chat/completions", allowed), 200)
	expect("allowed", call("127.0.0.2", "/v1/chat/completions", allowed), 200)
	for i := 0; i < 3; i++ {
		expect("intercepted", call("127.0.0.3", "/v1/chat/completions", allowed), 403)
	}
	expect("ambiguous", call("127.0.0.2", "/v1/messages", map[string]string{
		"Authorization": "Bearer sk-" + markers["Allowed"], "X-Api-Key": "sk-" + markers["Ambiguous"]}), 400)
	expect("?key=", call("127.0.0.2", "/v1beta/models/x:generateContent?key="+markers["Query"], nil), 200)
	expect("x-goog-api-key", call("127.0.0.2", "/v1beta/models/x", map[string]string{"X-Goog-Api-Key": markers["Goog"]}), 200)
	expect("x-api-key", call("127.0.0.2", "/v1/messages", map[string]string{"X-Api-Key": "sk-" + markers["Anthropic"]}), 200)
	expect("websocket", call("127.0.0.2", "/v1/realtime", map[string]string{
		"Sec-Websocket-Protocol": "realtime, openai-insecure-api-key." + markers["Socket"] + ", openai-beta.realtime-v1"}), 200)
	expect("mj-api-secret", call("127.0.0.2", "/mj/submit/imagine", map[string]string{
		"Authorization": "midjourney-proxy", "Mj-Api-Secret": markers["Midjourney"]}), 200)
	// Failsafe: admind stopped, a new key is refused (closed mode) and counted.
	if err := s.procs["admind"].Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	st := call("127.0.0.2", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + markers["Failsafe"]})
	_ = s.procs["admind"].Process.Signal(syscall.SIGCONT)
	expect("failsafe", st, 503)

	hook.waitFor(t, 1, "sentinel.alert")
	// The plugin's usage flush (every 5 s: last use, the day's allowed count and the failsafe
	// count in one pipeline) has run.
	rc := s.redisClient(t)
	day := "sentinel:stats:allowed:" + time.Now().UTC().Format("2006-01-02")
	testenv.WaitFor(t, 30*time.Second, "the plugin's usage flush", func() bool {
		n, _ := rc.Get(ctx, day).Int()
		return n >= 7
	})

	// The admin side: search by a raw key, the logs, their CSV export.
	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	expect("login", st, 200)
	var login struct{ Token string }
	if err := json.Unmarshal(body, &login); err != nil {
		t.Fatal(err)
	}
	token := login.Token
	for _, p := range []string{"/bindings?q=" + url.QueryEscape("sk-"+markers["Allowed"]), "/bindings", "/logs",
		"/logs?key=" + url.QueryEscape("sk-"+markers["Allowed"]), "/dashboard", "/settings"} {
		st, body := s.admin(t, token, "GET", p, nil)
		expect("GET "+p, st, 200)
		answers = append(answers, string(body))
	}
	csv := s.getBody(t, s.publicURL+"/admin/api/logs/export", token)
	if !strings.Contains(csv, "ip_not_allowed") {
		t.Fatalf("the CSV export holds no intercept:\n%s", csv)
	}
	metrics := s.getBody(t, s.publicURL+"/metrics", "")

	sources := map[string]string{"CSV export": csv, "admind /metrics": metrics, "answers": strings.Join(answers, "\n"),
		"webhook bodies": strings.Join(hook.all(), "\n"), "PostgreSQL": dumpTables(t, s.pg(t)), "Redis": s.dumpRedis(t, ctx)}
	for _, path := range s.logs {
		b, _ := os.ReadFile(path)
		sources[path] = string(b)
	}
	// The sweep must be looking at the right data: hashes of the markers are there.
	if !strings.Contains(sources["PostgreSQL"], keyHash(markers["Allowed"])) || !strings.Contains(sources["Redis"], keyHash(markers["Allowed"])) {
		t.Fatal("the dumps do not hold the allowed key's hash: the sweep is looking elsewhere")
	}
	// In any case: the plugin hashes the lower-case form, and to New API on MySQL or MariaDB
	// every case spelling is the key.
	for where, text := range sources {
		lower := strings.ToLower(text)
		for name, m := range markers {
			if i := strings.Index(lower, strings.ToLower(m)); i >= 0 {
				t.Errorf("%s holds the raw %s key: …%s…", where, name, text[max(0, i-80):min(len(text), i+len(m)+20)])
			}
		}
	}
}

func (r *alertReceiver) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func (s *stack) getBody(t *testing.T, u, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}

// dumpTables renders every row of every table in the public schema as JSON.
func dumpTables(t *testing.T, pg *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	rows, err := pg.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 5 {
		t.Fatalf("tables %v: %v", tables, err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		var dump string
		q := fmt.Sprintf(`SELECT coalesce(string_agg(row_to_json(x)::text, E'\n'), '') FROM %s x`, pgx.Identifier{tbl}.Sanitize())
		if err := pg.QueryRow(ctx, q).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		b.WriteString(tbl + ":\n" + dump + "\n")
	}
	return b.String()
}

// dumpRedis renders every key and value, whatever its type.
func (s *stack) dumpRedis(t *testing.T, ctx context.Context) string {
	t.Helper()
	rc := s.redisClient(t)
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range keys {
		var v any
		switch typ := rc.Type(ctx, k).Val(); typ {
		case "string":
			v = rc.Get(ctx, k).Val()
		case "hash":
			v = rc.HGetAll(ctx, k).Val()
		case "list":
			v = rc.LRange(ctx, k, 0, -1).Val()
		case "set":
			v = rc.SMembers(ctx, k).Val()
		case "zset":
			v = rc.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "stream":
			v = rc.XRange(ctx, k, "-", "+").Val()
		default:
			t.Fatalf("%s: unexpected type %s", k, typ)
		}
		fmt.Fprintf(&b, "%s = %v\n", k, v)
	}
	return b.String()
}
