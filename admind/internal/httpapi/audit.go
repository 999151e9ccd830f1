package httpapi

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

// auditView is an admin_audit row as the admin API shows it.
type auditView struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	IP     string          `json:"ip"` // "" when the change was admind's own
	Action string          `json:"action"`
	Target string          `json:"target"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

func viewAudit(r audit.Record) auditView {
	v := auditView{ID: r.ID, At: r.At.UTC(), Actor: r.Actor, Action: r.Action, Target: r.Target, Before: r.Before, After: r.After}
	if r.IP.IsValid() {
		v.IP = r.IP.String()
	}
	if v.Before == nil {
		v.Before = json.RawMessage("null")
	}
	if v.After == nil {
		v.After = json.RawMessage("null")
	}
	return v
}

// maxAuditFilter bounds each text filter; real actors, actions and targets are short.
const maxAuditFilter = 200

// auditQuery reads the audit filters: actor, action (exact, or a prefix ending in "."),
// target (such as binding:42), from/to (RFC 3339).
func auditQuery(r *http.Request) (audit.Query, error) {
	v := r.URL.Query()
	var q audit.Query
	for _, f := range []struct {
		name string
		dst  *string
	}{{"actor", &q.Actor}, {"action", &q.Action}, {"target", &q.Target}} {
		s := strings.TrimSpace(v.Get(f.name))
		if len(s) > maxAuditFilter || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return q, &bindings.InputError{Message: f.name + " must be UTF-8 text of at most " + strconv.Itoa(maxAuditFilter) + " bytes"}
		}
		*f.dst = s
	}
	var err error
	if q.From, q.To, err = timeRange(r); err != nil {
		return q, err
	}
	return q, nil
}

func handleListAudit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := auditQuery(r)
		if err == nil {
			q.Page, q.PageSize, err = pagination(r)
		}
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		list, total, err := d.Queries.ListAudit(r.Context(), q)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out := page[auditView]{Items: make([]auditView, len(list)), Total: total, Page: q.Page, PageSize: q.PageSize}
		for i, rec := range list {
			out.Items[i] = viewAudit(rec)
		}
		encode(w, http.StatusOK, out)
	})
}

// handleExportAudit streams the matching rows as CSV from the database cursor, as the
// intercept log's export does; every text cell is neutralised for spreadsheets.
func handleExportAudit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := auditQuery(r)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		streamCSV(w, d, "sentinel-audit", []string{"id", "time", "actor", "ip", "action", "target", "before", "after"},
			func(row func([]string) error) error {
				return d.Queries.EachAudit(r.Context(), q, func(rec audit.Record) error {
					v := viewAudit(rec)
					return row([]string{strconv.FormatInt(v.ID, 10), v.At.Format(time.RFC3339Nano), csvCell(v.Actor), v.IP,
						csvCell(v.Action), csvCell(v.Target), csvCell(string(v.Before)), csvCell(string(v.After))})
				})
			})
	})
}

// streamCSV answers with a CSV download named name-<time>.csv: the header, then each row each
// calls for, flushed every 1 000 rows, so memory stays flat whatever the row count.
func streamCSV(w http.ResponseWriter, d Deps, name string, header []string, each func(row func([]string) error) error) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`-`+time.Now().UTC().Format("20060102-150405")+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	n := 0
	err := each(func(cells []string) error {
		_ = cw.Write(cells)
		if n++; n%1000 == 0 {
			cw.Flush()
			_ = rc.Flush()
			return cw.Error()
		}
		return nil
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if err != nil {
		// The status is sent already: cut the connection so the client sees an incomplete
		// download instead of a short file that looks whole.
		d.Log.Error("export failed", "export", name, "rows_written", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}
