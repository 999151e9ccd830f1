package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type auditPage struct {
	Items []struct {
		ID     int64           `json:"id"`
		At     time.Time       `json:"at"`
		Actor  string          `json:"actor"`
		IP     string          `json:"ip"`
		Action string          `json:"action"`
		Target string          `json:"target"`
		Before json.RawMessage `json:"before"`
		After  json.RawMessage `json:"after"`
	} `json:"items"`
	Total int `json:"total"`
}

// The audit trail is readable: every admin change the API made is listed, newest first,
// filtered by actor, action (exact or a prefix), target and time, paged, and exported as CSV
// with spreadsheet formulas neutralised. A binding's note is edited through the API, audited
// with its before and after, and changes nothing the plugin reads.
func TestAdminAuditTrail(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	ctx := context.Background()
	if d := a.decideKey(t, "auditKey0123456789", "127.0.0.2"); !d.Allow {
		t.Fatalf("first use: %+v", d)
	}
	var id int64
	if err := conn.QueryRow(ctx, `SELECT id FROM token_bindings WHERE key_hash = $1`, hashKey("auditkey0123456789")).Scan(&id); err != nil {
		t.Fatal(err)
	}
	target := "binding:" + jsonInt(id)
	entryBefore := a.redisEntry(t, hashKey("auditkey0123456789"))

	// Four changes: a note, a ban, an unban, a note with a formula in it.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "/admin/api/bindings/note", `{"id":` + jsonInt(id) + `,"note":"customer 42"}`},
		{http.MethodPost, "/admin/api/bindings/ban", `{"id":` + jsonInt(id) + `}`},
		{http.MethodPost, "/admin/api/bindings/unban", `{"id":` + jsonInt(id) + `}`},
		{http.MethodPut, "/admin/api/bindings/note", `{"id":` + jsonInt(id) + `,"note":"=HYPERLINK(\"http://evil\")"}`},
	} {
		if st, body := a.call(t, tok, c.method, c.path, c.body); st != 200 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, st, body)
		}
	}
	if p := a.bindings(t, tok, "q="+hashKey("auditkey0123456789")); p.Total != 1 {
		t.Fatalf("binding: %+v", p)
	}
	var note string
	if err := conn.QueryRow(ctx, `SELECT note FROM token_bindings WHERE id = $1`, id).Scan(&note); err != nil || note != `=HYPERLINK("http://evil")` {
		t.Fatalf("note %q %v", note, err)
	}
	if got := a.redisEntry(t, hashKey("auditkey0123456789")); got != entryBefore {
		t.Fatalf("a note changed the plugin's entry: %q → %q", entryBefore, got)
	}

	audit := func(query string) auditPage {
		t.Helper()
		st, body := a.call(t, tok, http.MethodGet, "/admin/api/audit?"+query, nil)
		var p auditPage
		if st != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("audit?%s: %d %s", query, st, body)
		}
		return p
	}
	all := audit("target=" + url.QueryEscape(target))
	actions := []string{}
	for _, it := range all.Items {
		actions = append(actions, it.Action)
		if it.Actor != "admin" || it.IP != "127.0.0.1" || it.Target != target {
			t.Errorf("row %+v", it)
		}
	}
	if strings.Join(actions, ",") != "binding.set_note,binding.unban,binding.ban,binding.set_note" {
		t.Fatalf("newest first: %v", actions)
	}
	var first struct{ Note string }
	if err := json.Unmarshal(all.Items[3].After, &first); err != nil || first.Note != "customer 42" || string(all.Items[3].Before) == "null" {
		t.Fatalf("the first note change: before %s after %s", all.Items[3].Before, all.Items[3].After)
	}
	from := all.Items[2].At.Add(-time.Microsecond).Format(time.RFC3339Nano)
	for _, tt := range []struct {
		query string
		total int
	}{
		{"action=binding.ban&target=" + url.QueryEscape(target), 1},
		{"action=binding.&target=" + url.QueryEscape(target), 4},
		{"action=binding.set_note", 2},
		{"actor=admin&target=" + url.QueryEscape(target), 4},
		{"actor=nobody", 0},
		{"target=binding:0", 0},
		{"target=" + url.QueryEscape(target) + "&from=" + url.QueryEscape(from), 3},
		{"target=" + url.QueryEscape(target) + "&to=" + url.QueryEscape(from), 1},
	} {
		if p := audit(tt.query); p.Total != tt.total {
			t.Errorf("audit?%s: total %d, want %d", tt.query, p.Total, tt.total)
		}
	}
	if p := audit("page_size=1&page=2&target=" + url.QueryEscape(target)); len(p.Items) != 1 || p.Total != 4 || p.Items[0].Action != "binding.unban" {
		t.Errorf("page 2 of 1: %+v", p)
	}
	for _, bad := range []string{"from=yesterday", "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "actor=" + strings.Repeat("a", 201), "page_size=0"} {
		st, body := a.call(t, tok, http.MethodGet, "/admin/api/audit?"+bad, nil)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", "")
	}
	for _, bad := range []string{`{"id":` + jsonInt(id) + `}`, `{"id":` + jsonInt(id) + `,"note":"x","mode":"all"}`, `{"id":` + jsonInt(id) + `,"note":"` + strings.Repeat("n", 1001) + `"}`,
		`{"id":` + jsonInt(id) + `,"note":"a\u0000b"}`} {
		st, body := a.call(t, tok, http.MethodPut, "/admin/api/bindings/note", bad)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", "")
	}
	if st, body := a.call(t, tok, http.MethodPut, "/admin/api/bindings/note", `{"id":999999,"note":"x"}`); st != http.StatusNotFound {
		t.Errorf("note on a missing binding: %d %s", st, body)
	}

	req, _ := http.NewRequest(http.MethodGet, a.publicURL+"/admin/api/audit/export?target="+url.QueryEscape(target), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	records, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(records) != 5 || strings.Join(records[0], ",") != "id,time,actor,ip,action,target,before,after" {
		t.Fatalf("export: %v %v", records, err)
	}
	if after := records[1][7]; !strings.HasPrefix(after, "{") || !strings.Contains(after, `=HYPERLINK`) {
		t.Errorf("the formula note's after: %q", after)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// redisEntry is the binding entry the plugin would read for keyHash.
func (a *admindUnderTest) redisEntry(t *testing.T, keyHash string) string {
	t.Helper()
	return a.redis.Client(t).Get(context.Background(), "sentinel:b:"+keyHash).Val()
}
