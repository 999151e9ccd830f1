package httpapi

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// interceptView is an intercept log row as the admin API shows it.
type interceptView struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	KeyHint string    `json:"key_hint"`
	KeyHash string    `json:"key_hash"`
	IP      string    `json:"ip"`
	Reason  string    `json:"reason"`
	// Outcome: refused, or forwarded (monitor mode); absent on rows from before it was recorded.
	Outcome   string `json:"outcome,omitempty"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	UserAgent string `json:"user_agent"`
}

// logQuery reads the log filters: key (a whole key, hashed here, or its 64-hex hash), ip (an
// address or a CIDR), from/to (RFC 3339), reason, outcome.
func logQuery(d Deps, r *http.Request) (bindings.LogQuery, error) {
	v := r.URL.Query()
	var q bindings.LogQuery
	bad := func(msg string) (bindings.LogQuery, error) { return q, &bindings.InputError{Message: msg} }
	if k := strings.TrimSpace(v.Get("key")); k != "" {
		if len(k) > 512 {
			return bad("key is too long")
		}
		q.KeyHash = k
		if !contract.ValidKeyHash(k) {
			hash, isKey := identity.HashRawKey(d.HMACSecret, k)
			if !isKey {
				return bad("key is not a key hash or an API key")
			}
			q.KeyHash = hash
		}
	}
	if s := strings.TrimSpace(v.Get("ip")); s != "" {
		if p, err := netip.ParsePrefix(s); err == nil && !p.Addr().Is4In6() {
			q.IP = p.Masked()
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap().WithZone("")
			q.IP = netip.PrefixFrom(a, a.BitLen())
		} else {
			return bad("ip must be an IP address or CIDR")
		}
	}
	var err error
	if q.From, q.To, err = timeRange(r); err != nil {
		return q, err
	}
	switch q.Reason = v.Get("reason"); q.Reason {
	case "", contract.ReasonIPNotAllowed, contract.ReasonKeyBanned:
	default:
		return bad("reason must be ip_not_allowed or key_banned")
	}
	switch q.Outcome = v.Get("outcome"); q.Outcome {
	case "", bindings.OutcomeRefused, bindings.OutcomeForwarded:
	default:
		return bad("outcome must be refused or forwarded")
	}
	return q, nil
}

func handleListLogs(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := logQuery(d, r)
		if err == nil {
			q.Page, q.PageSize, err = pagination(r)
		}
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		list, total, err := d.Queries.ListIntercepts(r.Context(), q)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out := page[interceptView]{Items: make([]interceptView, len(list)), Total: total, Page: q.Page, PageSize: q.PageSize}
		for i, ic := range list {
			out.Items[i] = interceptView{ID: ic.ID, At: ic.At.UTC(), KeyHint: ic.KeyHint, KeyHash: ic.KeyHash, IP: ic.IP.String(),
				Reason: ic.Reason, Outcome: ic.Outcome, Method: ic.Method, Path: ic.Path, UserAgent: ic.UserAgent}
		}
		encode(w, http.StatusOK, out)
	})
}

// timeRange reads from and to (RFC 3339; either may be absent), from before to.
func timeRange(r *http.Request) (from, to time.Time, err error) {
	v := r.URL.Query()
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := v.Get(t.name); s != "" {
			tm, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return from, to, &bindings.InputError{Message: t.name + " must be an RFC 3339 time such as 2026-11-29T10:00:00Z"}
			}
			*t.dst = tm
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, &bindings.InputError{Message: "from must be before to"}
	}
	return from, to, nil
}

// exportWriteTimeout replaces the server's write timeout for one export: a large export
// streams for longer than an API answer should take.
const exportWriteTimeout = 10 * time.Minute

// handleExportLogs streams the matching rows as CSV straight from the database cursor, so
// memory stays flat whatever the row count.
func handleExportLogs(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := logQuery(d, r)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		streamCSV(w, d, "sentinel-intercepts", []string{"id", "time", "key_hint", "key_hash", "ip", "reason", "outcome", "method", "path", "user_agent"},
			func(row func([]string) error) error {
				return d.Queries.EachIntercept(r.Context(), q, func(ic bindings.Intercept) error {
					return row([]string{
						strconv.FormatInt(ic.ID, 10), ic.At.UTC().Format(time.RFC3339Nano), csvCell(ic.KeyHint), ic.KeyHash,
						ic.IP.String(), csvCell(ic.Reason), ic.Outcome, csvCell(ic.Method), csvCell(ic.Path), csvCell(ic.UserAgent),
					})
				})
			})
	})
}

// csvCell keeps spreadsheet programs from running attacker-supplied text (paths and user
// agents come from the requests we refused): a cell starting with = + - @ tab or CR is
// prefixed with ' (OWASP's advice for CSV injection). encoding/csv does the RFC 4180 quoting.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
