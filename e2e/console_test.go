package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestConsoleInBrowser drives the admin console in Debian's chromium (web/tests, with
// playwright-core) against the real stack, after a real request through Traefik and the
// plugin has bound a key and another has been intercepted (and one more recorded as a
// monitor-mode router records it). Screenshots go to
// web/test-results/screenshots.
func TestConsoleInBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium not found at %s: apt-get install -y chromium (.ci/run does)", chromium)
	}
	root := testenv.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core")); err != nil {
		t.Fatal("web/node_modules is missing: run make web first (make e2e does)")
	}
	s := startStack(t, stackOptions{})
	resp, err := http.Get(s.publicURL + "/admin/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<div id="app">`) {
		t.Fatalf("admind serves no built console (run make web before building admind): %.200s", page)
	}

	const key = "e2eConsoleKey0123456789abcdef"
	const preBound = "consolePreBound0123456789abcd" // pre-bound in the browser, never used before
	bearer := map[string]string{"Authorization": "Bearer sk-" + key}
	if st, _ := s.call(t, "127.0.0.2", "/v1/chat/completions", bearer); st != 200 {
		t.Fatalf("bind: %d", st)
	}
	if st, _ := s.call(t, "127.0.0.3", "/v1/chat/completions", bearer); st != 403 {
		t.Fatalf("intercept: %d", st)
	}
	testenv.WaitFor(t, 15*time.Second, "the intercept in PostgreSQL", func() bool {
		return countRows(t, s, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, keyHash(key)) == 1
	})
	// One intercept as a monitor-mode router records it (e2e/cutover_test.go runs that mode
	// through Traefik), for the dashboard to tell forwarded from refused.
	if _, err := s.pg(t).Exec(t.Context(), `INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, outcome) VALUES ($1, 'sk-e2eC…cdef', '127.0.0.7', 'ip_not_allowed', 'forwarded')`,
		keyHash(key)); err != nil {
		t.Fatal(err)
	}

	shots := filepath.Join(root, "web", "test-results", "screenshots")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "tests/console.test.mjs")
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+s.publicURL+"/admin/ui/", "ADMIN_PASSWORD="+adminPassword,
		"KEY_HINT=sk-"+key[:4]+"…"+key[len(key)-4:], "PREBOUND_KEY=sk-"+preBound, "SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("browser test:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	t.Logf("screenshots: %s", shots)

	// What the clicks did, seen from the database.
	for action, want := range map[string]int{"binding.set_rule": 3, "binding.ban": 2, "binding.unban": 2, "binding.set_note": 1,
		"settings.update": 1, "binding.create": 1, "binding.import": 1, "binding.export": 1, "token.create": 1, "token.revoke": 1} {
		if n := countRows(t, s, `SELECT count(*) FROM admin_audit WHERE action = $1`, action); n != want {
			t.Errorf("admin_audit has %d %s rows, want %d", n, action, want)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND status = 'active'
		AND rule_mode = 'multiple' AND cidrs = '{127.0.0.2/32,10.0.0.0/8}' AND note = 'VIP customer, ticket 7'`, keyHash(key)); n != 1 {
		t.Error("the rule and note set in the console are not the binding's")
	}
	if n := countRows(t, s, `SELECT count(*) FROM admin_audit WHERE action = 'settings.update'
		AND (after->>'auto_ban_on_alert')::boolean AND (after->>'alert_threshold_count')::int = 9`); n != 1 {
		t.Error("the settings saved in the console are not in admin_audit as entered")
	}
	// The key pre-bound in the console: refused elsewhere on its first request, served at home.
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings WHERE key_hash = $1 AND origin = 'admin'
		AND rule_mode = 'single' AND cidrs = '{127.0.0.40/32}' AND note = 'customer 42'`, keyHash(preBound)); n != 1 {
		t.Error("the binding created in the console is not in PostgreSQL as entered")
	}
	preBearer := map[string]string{"Authorization": "Bearer sk-" + preBound}
	if st, _ := s.call(t, "127.0.0.41", "/v1/chat/completions", preBearer); st != 403 {
		t.Errorf("the key pre-bound in the console, first used from elsewhere: %d", st)
	}
	if st, _ := s.call(t, "127.0.0.40", "/v1/chat/completions", preBearer); st != 200 {
		t.Errorf("the key pre-bound in the console, from its address: %d", st)
	}
}
