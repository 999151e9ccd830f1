package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Pre-binding one key: by the raw key (hashed as the plugin hashes it; stored nowhere) or by
// its hash. The key is refused from every other address from its very first use, with an
// intercept, and never claimed; the change is in admin_audit.
func TestPreBinding(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	const raw = "sk-PreBoundKey0123456789abcdefghij-3" // a channel suffix, upper case: one key
	canonical := "preboundkey0123456789abcdefghij"

	st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings", map[string]any{"key": raw, "mode": "single", "cidrs": []string{"127.0.0.20"}, "note": "customer 42"})
	var v struct {
		ID         int64    `json:"id"`
		KeyHash    string   `json:"key_hash"`
		KeyHint    string   `json:"key_hint"`
		Origin     string   `json:"origin"`
		CIDRs      []string `json:"cidrs"`
		FirstIP    string   `json:"first_ip"`
		LastUsedAt *string  `json:"last_used_at"`
	}
	if st != http.StatusCreated || json.Unmarshal(body, &v) != nil {
		t.Fatalf("create by key: %d %s", st, body)
	}
	if v.KeyHash != hashKey(canonical) || v.KeyHint != "sk-PreB…ghij" || v.Origin != "admin" || v.FirstIP != "" || v.LastUsedAt != nil ||
		len(v.CIDRs) != 1 || v.CIDRs[0] != "127.0.0.20/32" {
		t.Fatalf("created: %s", body)
	}
	if strings.Contains(string(body), "PreBoundKey0123456789") {
		t.Fatalf("the answer holds the raw key: %s", body)
	}

	// The first use from elsewhere is refused (and recorded), not claimed; the bound address is served.
	if d, st := a.internal(t, http.DefaultClient, "decide", hashKey(canonical), "sk-PreB…ghij", "127.0.0.21", ""); st != 200 || d.Allow || d.Provisional || d.Reason != "ip_not_allowed" {
		t.Fatalf("first use from another address: %d %+v", st, d)
	}
	if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1 AND host(ip) = '127.0.0.21'`, hashKey(canonical)); n != 1 {
		t.Fatalf("intercept rows %d", n)
	}
	if d, st := a.internal(t, http.DefaultClient, "decide", hashKey(canonical), "sk-PreB…ghij", "127.0.0.20", ""); st != 200 || !d.Allow || d.Provisional {
		t.Fatalf("bound address: %d %+v", st, d)
	}

	// Once bound, it cannot be created again; by hash works for a key never seen.
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings", map[string]any{"key": "sk-preboundkey0123456789abcdefghij", "mode": "all"})
	wantError(t, st, body, http.StatusConflict, "already_bound", "bound already")
	other := strings.Repeat("ab", 32)
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings", map[string]any{"key_hash": other, "mode": "multiple", "cidrs": []string{"10.0.0.0/8", "2001:db8::/48"}, "status": "banned"})
	if st != http.StatusCreated || !strings.Contains(string(body), `"key_hint":""`) || !strings.Contains(string(body), `"status":"banned"`) {
		t.Fatalf("create by hash: %d %s", st, body)
	}
	for _, tt := range []struct {
		body any
		msg  string
	}{
		{map[string]any{"key": raw, "key_hash": other, "mode": "all"}, "either key"},
		{map[string]any{"mode": "all"}, "either key"},
		{map[string]any{"key": "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "mode": "all"}, "not an API key"},
		{map[string]any{"key_hash": "SK-LEAKEDKEY0123456789", "mode": "all"}, "64 lower-case hex"},
		{map[string]any{"key_hash": strings.Repeat("cd", 32), "mode": "single", "cidrs": []string{"0.0.0.0/0"}}, "use the rule"},
		{map[string]any{"key_hash": strings.Repeat("cd", 32), "mode": "all", "status": "gone"}, "status must be"},
		{map[string]any{"key_hash": strings.Repeat("cd", 32), "mode": "all", "note": strings.Repeat("n", 1001)}, "note must be"},
	} {
		st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings", tt.body)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", tt.msg)
		if strings.Contains(strings.ToLower(string(body)), "leakedkey") || strings.Contains(string(body), "eyJzdWIiOi") {
			t.Errorf("the error repeats the value: %s", body)
		}
	}
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.create' AND actor = 'admin' AND after IS NOT NULL`); n != 2 {
		t.Fatalf("audit rows %d", n)
	}
	assertNoRawKey(t, a, conn, "PreBoundKey0123456789abcdefghij", canonical)
}

// Import and export: every bad row of an import is listed at once and nothing is written; a
// good import binds every row (refused from other addresses from the first request); an export
// holds hashes, never keys, and imports back into an empty instance as the same bindings.
func TestBindingImportExport(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	const firstUseKey = "firstUseKey0123456789xyz"
	a.decideKey(t, firstUseKey, "127.0.0.2")

	h := func(c string) string { return strings.Repeat(c, 64) }
	st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings/import?format=csv",
		"key_hash,mode,cidrs,status,note\n"+
			h("1")+",single,127.0.0.30,,ok\n"+
			"sk-LeakedKey0123456789abcdefghij,single,127.0.0.31,,\n"+
			h("2")+",multiple,10.0.0.5/24 127.0.0.32,,\n"+
			h("1")+",all,,,\n"+
			hashKey(firstUseKey)+",all,,,\n")
	var bad struct {
		Error struct {
			Code string `json:"code"`
			Rows []struct {
				Row     int    `json:"row"`
				Message string `json:"message"`
			} `json:"rows"`
		} `json:"error"`
	}
	if st != http.StatusBadRequest || json.Unmarshal(body, &bad) != nil || bad.Error.Code != "invalid_import" || len(bad.Error.Rows) != 3 ||
		bad.Error.Rows[0].Row != 2 || bad.Error.Rows[1].Row != 3 || bad.Error.Rows[2].Row != 4 || strings.Contains(string(body), "LeakedKey") {
		t.Fatalf("bad import: %d %s", st, body)
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings`); n != 1 {
		t.Fatalf("a refused import wrote rows: %d", n)
	}
	// Valid rows, but one key is bound already (found only by the insert): still every such row.
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/import?format=csv",
		"key_hash,mode,cidrs\n"+h("1")+",single,127.0.0.30\n"+hashKey(firstUseKey)+",all,\n")
	if st != http.StatusBadRequest || !strings.Contains(string(body), `"row":2`) || !strings.Contains(string(body), "bound already") || strings.Contains(string(body), `"row":1`) {
		t.Fatalf("import over a bound key: %d %s", st, body)
	}

	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings/import?format=csv",
		"key_hash,mode,cidrs,status,note\n"+
			h("1")+",single,127.0.0.30,,=SUM(A1)\n"+
			h("2")+",multiple,10.0.0.0/24 2001:db8::/64,banned,\n"+
			h("3")+",all,,,\"a, b\"\n")
	if st != http.StatusOK || !strings.Contains(string(body), `"imported":3`) {
		t.Fatalf("import: %d %s", st, body)
	}
	if d, st := a.internal(t, http.DefaultClient, "decide", h("1"), "", "127.0.0.31", ""); st != 200 || d.Allow || d.Provisional {
		t.Fatalf("imported key from another address: %d %+v", st, d)
	}
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE origin = 'import' AND first_ip IS NULL AND last_used_at IS NULL`); n != 3 {
		t.Fatalf("imported rows %d", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.import' AND after->>'count' = '3'`); n != 1 {
		t.Fatalf("import audit rows %d", n)
	}

	// A learning rule travels with its bounds.
	if st, body := a.call(t, tok, http.MethodPut, "/admin/api/bindings/ip", map[string]any{"id": bindingID(t, a, tok, hashKey(firstUseKey)),
		"mode": "learning", "cidrs": []string{"127.0.0.2"}, "learn_slots": 2, "learn_window_seconds": 3600}); st != 200 {
		t.Fatalf("learning rule: %d %s", st, body)
	}

	// Export, both formats: every binding, by hash.
	st, csvBody := a.call(t, tok, http.MethodGet, "/admin/api/bindings/export?format=csv", nil)
	records, err := csv.NewReader(strings.NewReader(string(csvBody))).ReadAll()
	if st != 200 || err != nil || len(records) != 5 || strings.Join(records[0], ",") != "key_hash,key_hint,mode,cidrs,status,note,learn_slots,learn_until,origin,first_ip,created_at,last_used_at" {
		t.Fatalf("csv export: %d %v\n%s", st, err, csvBody)
	}
	if !strings.Contains(string(csvBody), ",learning,127.0.0.2/32,active,,2,") {
		t.Fatalf("csv export: the learning rule without its bounds:\n%s", csvBody)
	}
	if !strings.Contains(string(csvBody), "'=SUM(A1)") || strings.Contains(strings.ToLower(string(csvBody)), strings.ToLower(firstUseKey)) {
		t.Fatalf("csv export: formula unguarded or a raw key:\n%s", csvBody)
	}
	st, jsonBody := a.call(t, tok, http.MethodGet, "/admin/api/bindings/export?format=json", nil)
	var exported []map[string]any
	if st != 200 || json.Unmarshal(jsonBody, &exported) != nil || len(exported) != 4 {
		t.Fatalf("json export: %d %s", st, jsonBody)
	}
	if n := count(t, conn, `SELECT count(*) FROM admin_audit WHERE action = 'binding.export'`); n != 2 {
		t.Fatalf("export audit rows %d", n)
	}

	// Into an empty instance (same HMAC secret): the same bindings come back.
	snapshot := func() string {
		var s string
		if err := conn.QueryRow(context.Background(), `SELECT string_agg(concat_ws('|', key_hash, key_hint, rule_mode, cidrs::text, status, note, learn_slots, learn_until), E'\n' ORDER BY key_hash) FROM token_bindings`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	if _, err := conn.Exec(context.Background(), `DELETE FROM token_bindings`); err != nil {
		t.Fatal(err)
	}
	if st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings/import", string(jsonBody)); st != 200 || !strings.Contains(string(body), `"imported":4`) {
		t.Fatalf("re-import: %d %s", st, body)
	}
	if after := snapshot(); after != before {
		t.Fatalf("round trip changed the bindings:\n%s\n---\n%s", before, after)
	}
	assertNoRawKey(t, a, conn, firstUseKey)
}
