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
// recorded; switching mode to enforce in the dynamic configuration, which Traefik watches,
// refuses it from then on without a restart, and the owner is served throughout.
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
	var logs struct {
		Items []struct{ IP, Reason string }
	}
	testenv.WaitFor(t, 10*time.Second, "the monitored intercept in the log", func() bool {
		_, body := s.admin(t, token, "GET", "/logs", nil)
		return json.Unmarshal(body, &logs) == nil && len(logs.Items) == 1
	})
	if it := logs.Items[0]; it.IP != "127.0.0.3" || it.Reason != "ip_not_allowed" {
		t.Fatalf("the intercept log holds %+v", it)
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
}
