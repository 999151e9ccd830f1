package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPreBoundKeysThroughTraefik: a key pre-bound through the admin API (by raw key, or
// imported by hash) is refused from another address on its very first request through the
// real Traefik and plugin, and served from its own.
func TestPreBoundKeysThroughTraefik(t *testing.T) {
	s := startStack(t, stackOptions{})
	st, body := s.admin(t, "", "POST", "/login", map[string]string{"username": "admin", "password": adminPassword})
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	const created, imported = "e2ePreBoundKey0123456789ab", "e2eImportedKey0123456789ab"
	if st, body := s.admin(t, login.Token, "POST", "/bindings", map[string]any{"key": "sk-" + created, "mode": "single", "cidrs": []string{"127.0.0.8"}}); st != 201 {
		t.Fatalf("create: %d %s", st, body)
	}
	if st, body := s.admin(t, login.Token, "POST", "/bindings/import", []map[string]any{
		{"key_hash": keyHash(imported), "mode": "multiple", "cidrs": []string{"127.0.0.10", "2001:db8::/64"}}}); st != 200 {
		t.Fatalf("import: %d %s", st, body)
	}
	for _, tt := range []struct{ key, owner, other string }{{created, "127.0.0.8", "127.0.0.9"}, {imported, "127.0.0.10", "127.0.0.11"}} {
		bearer := map[string]string{"Authorization": "Bearer sk-" + tt.key}
		if st, body := s.call(t, tt.other, "/v1/chat/completions", bearer); st != 403 || !strings.Contains(body, "ip_not_allowed") {
			t.Fatalf("%s first used from %s: %d %s", tt.key, tt.other, st, body)
		}
		if st, body := s.call(t, tt.owner, "/v1/chat/completions", bearer); st != 200 {
			t.Fatalf("%s from its own address %s: %d %s", tt.key, tt.owner, st, body)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM token_bindings`); n != 2 {
		t.Fatalf("binding rows %d, want the 2 pre-bound", n)
	}
}
