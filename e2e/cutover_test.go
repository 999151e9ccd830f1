package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestCutoverFromMonitorToEnforce follows the README's cutover through a real Traefik: in
// monitor mode a bound key used from another address is forwarded and its intercept
// recorded as forwarded; switching mode to enforce in the dynamic configuration, which
// Traefik watches, refuses it from then on without a restart (recorded as refused), and the
// owner is served throughout.
func TestCutoverFromMonitorToEnforce(t *testing.T) {
	s := startStack(t, stackOptions{Mode: "monitor"})
	key := map[string]string{"Authorization": "Bearer sk-cutoverKey0123456789"}
	if st, body := s.call(t, "127.0.0.2", "/v1/chat/completions", key); st != 200 {
		t.Fatalf("first use: %d %s", st, body)
	}
	if st, body := s.call(t, "127.0.0.3", "/v1/chat/completions", key); st != 200 {
		t.Fatalf("monitor mode refused the key from another address: %d %s", st, body)
	}
	token := s.adminToken(t)
	// intercepts waits for the log's rows from ip (the plugin reports them asynchronously).
	intercepts := func(ip string, atLeast int) []struct{ IP, Reason, Outcome string } {
		t.Helper()
		var logs struct {
			Items []struct{ IP, Reason, Outcome string }
		}
		testenv.WaitFor(t, 10*time.Second, "intercepts from "+ip+" in the log", func() bool {
			_, body := s.admin(t, token, "GET", "/logs?ip="+ip, nil)
			return json.Unmarshal(body, &logs) == nil && len(logs.Items) >= atLeast
		})
		return logs.Items
	}
	if got := intercepts("127.0.0.3", 1); len(got) != 1 || got[0].Reason != "ip_not_allowed" || got[0].Outcome != "forwarded" {
		t.Fatalf("the intercept log holds %+v, want one ip_not_allowed row marked forwarded", got)
	}

	// The switch: the file is replaced whole (written beside it, then renamed), as an editor
	// saves it, so that Traefik never reads it half written.
	dynamic := filepath.Join(s.dir, "dynamic.yml")
	b, err := os.ReadFile(dynamic)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `mode: "monitor"`) {
		t.Fatalf("%s sets no monitor mode", dynamic)
	}
	mustWrite(t, dynamic+".new", strings.Replace(string(b), `mode: "monitor"`, `mode: "enforce"`, 1))
	if err := os.Rename(dynamic+".new", dynamic); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "enforce mode after the reload", func() bool {
		if st, body := s.call(t, "127.0.0.2", "/v1/chat/completions", key); st != 200 {
			t.Fatalf("the owner was refused during the switch: %d %s", st, body)
		}
		st, _ := s.call(t, "127.0.0.3", "/v1/chat/completions", key)
		return st == 403
	})
	// And it holds: a new key binds, and is refused elsewhere.
	other := map[string]string{"Authorization": "Bearer sk-cutoverKey9876543210"}
	if st, body := s.call(t, "127.0.0.4", "/v1/chat/completions", other); st != 200 {
		t.Fatalf("first use after the switch: %d %s", st, body)
	}
	if st, body := s.call(t, "127.0.0.5", "/v1/chat/completions", other); st != 403 || !strings.Contains(body, "ip_not_allowed") {
		t.Fatalf("enforce mode forwarded a key from another address: %d %s", st, body)
	}
	if got := intercepts("127.0.0.5", 1); len(got) != 1 || got[0].Outcome != "refused" {
		t.Fatalf("the intercept log holds %+v, want one row marked refused", got)
	}
	// The first key's rows: newest first, the 403 that ended the wait is refused, and every
	// row before the reload is forwarded.
	got := intercepts("127.0.0.3", 2)
	seenForwarded := false
	for i, it := range got {
		seenForwarded = seenForwarded || it.Outcome == "forwarded"
		if (i == 0 && it.Outcome != "refused") || (seenForwarded && it.Outcome != "forwarded") || it.Outcome == "" {
			t.Fatalf("the first key's intercepts, newest first: %+v", got)
		}
	}
	if !seenForwarded {
		t.Fatalf("the first key's intercepts, newest first: %+v, none forwarded", got)
	}
}
