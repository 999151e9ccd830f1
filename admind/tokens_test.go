package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAPITokens: an admin creates API tokens (shown once, stored as a hash), a read-only one
// only reads, a read-write one changes and is audited under its name, neither manages tokens
// or logs out, the last use is recorded, and a revoked or expired token is refused at once.
func TestAPITokens(t *testing.T) {
	a := startAdmind(t, nil)
	session := a.login(t)
	conn := a.db(t)
	ctx := context.Background()
	a.decideKey(t, "tokenTestKey0123456789", "127.0.0.2")

	type created struct {
		Token, Name, Prefix, Scope, Status string
		ID                                 int64
		LastUsedAt                         *string `json:"last_used_at"`
	}
	create := func(name, scope string, days int) created {
		t.Helper()
		st, body := a.call(t, session, http.MethodPost, "/admin/api/tokens", map[string]any{"name": name, "scope": scope, "expires_in_days": days})
		var c created
		if st != http.StatusCreated || json.Unmarshal(body, &c) != nil {
			t.Fatalf("create %s: %d %s", name, st, body)
		}
		return c
	}
	reader := create("ci-read", "read", 30)
	writer := create("ci-write", "write", 1)
	if !regexp.MustCompile(`^sat_[A-Za-z0-9_-]{43}$`).MatchString(reader.Token) || reader.Status != "active" || !strings.HasPrefix(reader.Token, reader.Prefix) || reader.LastUsedAt != nil {
		t.Fatalf("created: %+v", reader)
	}

	// Bad input, and names are never reused.
	for _, tt := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"name": "ci-read", "scope": "read", "expires_in_days": 5}, http.StatusConflict, "name_taken"},
		{map[string]any{"name": "has space", "scope": "read", "expires_in_days": 5}, http.StatusBadRequest, "bad_request"},
		{map[string]any{"name": "x", "scope": "admin", "expires_in_days": 5}, http.StatusBadRequest, "bad_request"},
		{map[string]any{"name": "x", "scope": "read", "expires_in_days": 366}, http.StatusBadRequest, "bad_request"},
		{map[string]any{"name": "x", "scope": "read", "expires_in_days": 0}, http.StatusBadRequest, "bad_request"},
	} {
		st, body := a.call(t, session, http.MethodPost, "/admin/api/tokens", tt.body)
		wantError(t, st, body, tt.status, tt.code, "")
	}

	// Only hashes are kept: the tokens are nowhere in PostgreSQL or the log.
	for _, tok := range []string{reader.Token, writer.Token} {
		secret := strings.TrimPrefix(tok, "sat_")
		if n := count(t, conn, `SELECT count(*) FROM api_tokens WHERE strpos(token_hash || prefix || name, $1) > 0`, secret); n != 0 {
			t.Fatal("a token is stored as it is")
		}
		if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE strpos(coalesce(after::text, '') || target, $1) > 0`, secret); n != 0 {
			t.Fatal("a token reached admin_audit")
		}
		if strings.Contains(a.stderr.String(), secret) {
			t.Fatal("a token reached the log")
		}
	}

	// Read-only: reads, nothing else.
	if st, body := a.call(t, reader.Token, http.MethodGet, "/admin/api/bindings", nil); st != 200 {
		t.Fatalf("read token, GET bindings: %d %s", st, body)
	}
	var set map[string]any
	_, body := a.call(t, session, http.MethodGet, "/admin/api/settings", nil)
	_ = json.Unmarshal(body, &set)
	st, body := a.call(t, reader.Token, http.MethodPut, "/admin/api/settings", set)
	wantError(t, st, body, http.StatusForbidden, "read_only_token", "read-only")
	st, body = a.call(t, reader.Token, http.MethodPost, "/admin/api/bindings/ban", map[string]any{"id": 1})
	wantError(t, st, body, http.StatusForbidden, "read_only_token", "read-only")
	// No token manages tokens or logs out (a read-only one is refused as read-only already).
	st, body = a.call(t, reader.Token, http.MethodGet, "/admin/api/tokens", nil)
	wantError(t, st, body, http.StatusForbidden, "session_required", "admin session")
	st, body = a.call(t, writer.Token, http.MethodGet, "/admin/api/tokens", nil)
	wantError(t, st, body, http.StatusForbidden, "session_required", "admin session")
	st, body = a.call(t, writer.Token, http.MethodPost, "/admin/api/tokens", map[string]any{"name": "minted", "scope": "write", "expires_in_days": 365})
	wantError(t, st, body, http.StatusForbidden, "session_required", "admin session")
	st, body = a.call(t, writer.Token, http.MethodPost, "/admin/api/tokens/revoke", map[string]any{"id": writer.ID})
	wantError(t, st, body, http.StatusForbidden, "session_required", "admin session")
	st, body = a.call(t, writer.Token, http.MethodPost, "/admin/api/logout", nil)
	wantError(t, st, body, http.StatusForbidden, "session_required", "admin session")

	// Read-write: changes, audited under the token's name.
	if st, body := a.call(t, writer.Token, http.MethodPost, "/admin/api/bindings/ban", map[string]any{"id": 1}); st != 200 {
		t.Fatalf("write token, ban: %d %s", st, body)
	}
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.ban' AND actor = 'token:ci-write' AND host(ip) = '127.0.0.1'`); n != 1 {
		t.Fatalf("%d binding.ban rows under token:ci-write", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'token.create' AND actor = 'admin'`); n != 2 {
		t.Fatalf("%d token.create rows", n)
	}

	// The list shows the last use.
	st, body = a.call(t, session, http.MethodGet, "/admin/api/tokens", nil)
	var list struct {
		Items []struct {
			Name       string  `json:"name"`
			Status     string  `json:"status"`
			LastUsedAt *string `json:"last_used_at"`
			LastUsedIP string  `json:"last_used_ip"`
		} `json:"items"`
	}
	if st != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 2 || strings.Contains(string(body), reader.Token) {
		t.Fatalf("list: %d %s", st, body)
	}
	for _, it := range list.Items {
		if it.LastUsedAt == nil || it.LastUsedIP != "127.0.0.1" || it.Status != "active" {
			t.Errorf("token %s: %+v", it.Name, it)
		}
	}

	// Revoked: refused at once. Expired: refused.
	st, body = a.call(t, session, http.MethodPost, "/admin/api/tokens/revoke", map[string]any{"id": writer.ID})
	if st != 200 || !strings.Contains(string(body), `"status":"revoked"`) || !strings.Contains(string(body), `"revoked_by":"admin"`) {
		t.Fatalf("revoke: %d %s", st, body)
	}
	st, body = a.call(t, writer.Token, http.MethodGet, "/admin/api/bindings", nil)
	wantError(t, st, body, http.StatusUnauthorized, "unauthorized", "")
	if _, err := conn.Exec(ctx, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, reader.ID); err != nil {
		t.Fatal(err)
	}
	st, body = a.call(t, reader.Token, http.MethodGet, "/admin/api/bindings", nil)
	wantError(t, st, body, http.StatusUnauthorized, "unauthorized", "")
	st, body = a.call(t, session, http.MethodPost, "/admin/api/tokens/revoke", map[string]any{"id": 999})
	wantError(t, st, body, http.StatusNotFound, "not_found", "")
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'token.revoke' AND target = 'token:' || $1::bigint`, writer.ID); n != 1 {
		t.Fatalf("%d token.revoke rows", n)
	}

	// Forged and malformed tokens.
	for _, tok := range []string{"sat_" + strings.Repeat("A", 43), "sat_short", reader.Token + "x", strings.Replace(reader.Token, "sat_", "sat-", 1)} {
		st, body = a.call(t, tok, http.MethodGet, "/admin/api/bindings", nil)
		wantError(t, st, body, http.StatusUnauthorized, "unauthorized", "")
	}
}
