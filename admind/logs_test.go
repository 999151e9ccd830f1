package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

type logPage struct {
	Items []struct {
		ID        int64     `json:"id"`
		At        time.Time `json:"at"`
		KeyHint   string    `json:"key_hint"`
		KeyHash   string    `json:"key_hash"`
		IP        string    `json:"ip"`
		Reason    string    `json:"reason"`
		Outcome   *string   `json:"outcome"`
		Path      string    `json:"path"`
		UserAgent string    `json:"user_agent"`
	} `json:"items"`
	Total int `json:"total"`
}

func TestAdminLogs(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	ctx := context.Background()
	kA, kB := hashKey("logKeyA0123456789"), hashKey("logKeyB0123456789")
	_, err := conn.Exec(ctx, `
		INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, outcome, method, path, user_agent, created_at) VALUES
		($1, 'sk-logA…6789', '127.0.0.3', 'ip_not_allowed', NULL, 'POST', '/v1/chat', 'x'||chr(13)||chr(10)||'FAKE', '2026-11-20T10:00:00Z'),
		($1, 'sk-logA…6789', '127.0.0.4', 'ip_not_allowed', 'forwarded', 'POST', '/v1/chat', 'ua', '2026-11-21T10:00:00Z'),
		($1, 'sk-logA…6789', '10.1.2.3',  'key_banned',     'refused', 'POST', '/v1/chat', 'ua', '2026-11-22T10:00:00Z'),
		($2, 'sk-logB…6789', '2001:db8::5', 'ip_not_allowed', 'refused', 'GET', '/v1/models', 'ua', '2026-11-23T10:00:00Z')`, kA, kB)
	if err != nil {
		t.Fatal(err)
	}
	logs := func(query string) logPage {
		t.Helper()
		st, body := a.call(t, tok, http.MethodGet, "/admin/api/logs?"+query, nil)
		var p logPage
		if st != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("logs?%s: %d %s", query, st, body)
		}
		return p
	}
	tests := []struct {
		query string
		total int
	}{
		{"", 4},
		{"key=" + url.QueryEscape("sk-logKeyA0123456789-2"), 3},
		{"key=" + kB, 1},
		{"ip=127.0.0.3", 1},
		{"ip=127.0.0.0/8", 2},
		{"ip=2001:db8::/64", 1},
		{"reason=key_banned", 1},
		{"from=2026-11-21T00:00:00Z&to=2026-11-23T00:00:00Z", 2},
		{"key=" + kA + "&reason=ip_not_allowed&from=2026-11-21T00:00:00Z", 1},
		{"outcome=refused", 2},
		{"outcome=forwarded", 1},
		{"key=" + kA + "&outcome=refused", 1},
	}
	for _, tt := range tests {
		if p := logs(tt.query); p.Total != tt.total || len(p.Items) != tt.total {
			t.Errorf("logs?%s: total %d items %d, want %d", tt.query, p.Total, len(p.Items), tt.total)
		}
	}
	p := logs("page_size=1&page=2")
	if p.Total != 4 || len(p.Items) != 1 || p.Items[0].KeyHash != kA || p.Items[0].IP != "10.1.2.3" {
		t.Fatalf("newest first, page 2 of 1: %+v", p)
	}
	if p := logs("ip=127.0.0.3"); p.Items[0].UserAgent != "x\r\nFAKE" {
		t.Fatalf("user agent not kept verbatim in one row: %q", p.Items[0].UserAgent)
	}
	// A row from before outcomes were recorded claims none.
	for ip, want := range map[string]string{"127.0.0.3": "", "127.0.0.4": "forwarded", "10.1.2.3": "refused"} {
		got := logs("ip=" + ip).Items[0].Outcome
		if (got == nil) != (want == "") || (got != nil && *got != want) {
			t.Errorf("outcome of the row from %s: %v, want %q", ip, got, want)
		}
	}
	for _, bad := range []string{"ip=nope", "from=yesterday", "reason=other", "outcome=blocked", "from=2026-11-23T00:00:00Z&to=2026-11-21T00:00:00Z", "page_size=0"} {
		st, body := a.call(t, tok, http.MethodGet, "/admin/api/logs?"+bad, nil)
		wantError(t, st, body, http.StatusBadRequest, "bad_request", "")
	}
}

// class G, docs/testing.md: exported cells that a spreadsheet would run are neutralised; RFC 4180 quoting.
func TestAdminLogExportCSV(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	ctx := context.Background()
	cells := []string{`=HYPERLINK("http://evil","x")`, "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", `a,b "c"` + "\nd", "/v1/plain"}
	for i, c := range cells {
		_, err := conn.Exec(ctx, `INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, outcome, method, path, user_agent, created_at)
			VALUES ($1, 'sk-csvK…6789', '127.0.0.3', 'ip_not_allowed', 'forwarded', 'POST', $2, $2, $3)`,
			hashKey("csvKey"), c, time.Date(2026, 11, 1, 0, 0, i, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, a.publicURL+"/admin/api/logs/export?ip=127.0.0.3", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	records, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatalf("not RFC 4180 CSV: %v", err)
	}
	if strings.Join(records[0], ",") != "id,time,key_hint,key_hash,ip,reason,outcome,method,path,user_agent" || len(records) != len(cells)+1 {
		t.Fatalf("header or row count: %v", records)
	}
	// Newest first: records[1] is the last cell inserted.
	for i, c := range cells {
		rec := records[len(cells)-i]
		want := c
		if strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			want = "'" + c
		}
		if rec[6] != "forwarded" || rec[8] != want || rec[9] != want {
			t.Errorf("row of %q exported as outcome %q, %q / %q, want forwarded, %q", c, rec[6], rec[8], rec[9], want)
		}
	}
}

// class G, docs/testing.md: an export of 100 000 rows streams: while the client has read only the start,
// the server holds a small fraction of the file in memory (admind runs in this process, so
// its heap is this test's heap).
func TestAdminLogExportStreams(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	const rows = 100_000
	_, err := conn.Exec(context.Background(), `
		INSERT INTO intercept_logs (key_hash, key_hint, ip, reason, method, path, user_agent, created_at)
		SELECT $1, 'sk-bulk…6789', '127.0.0.3', 'ip_not_allowed', 'POST', '/v1/chat/completions/' || g, repeat('agent-', 50) || g,
			now() - g * interval '1 second'
		FROM generate_series(1, $2) g`, hashKey("bulk"), rows)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	req, _ := http.NewRequest(http.MethodGet, a.publicURL+"/admin/api/logs/export", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server fill the socket buffers and block
	during := heap()
	lc := &lineCounter{}
	n, err := io.Copy(lc, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = lc.Write(head)
	total := int64(len(head)) + n
	grew := int64(during) - int64(before)
	t.Logf("export: %d bytes, %d lines; heap grew %d KiB while the client paused after 64 KiB", total, lc.n, grew>>10)
	if lc.n != rows+1 {
		t.Fatalf("export has %d lines, want %d rows and a header", lc.n, rows)
	}
	if grew > total/4 {
		t.Fatalf("heap grew %d bytes while %d bytes were being exported: the export is buffered, not streamed", grew, total)
	}
}

type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
