package httpapi

import (
	"net/http"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/cache"
)

// dashboardDays is the length of the dashboard's series and of its top lists' window.
const dashboardDays = 7

type dayView struct {
	Day         string `json:"day"` // UTC, YYYY-MM-DD
	Allowed     int64  `json:"allowed"`
	Intercepted int64  `json:"intercepted"`
	// Forwarded is how many of Intercepted the plugin forwarded in monitor mode.
	Forwarded int64 `json:"forwarded"`
}

type dashboardView struct {
	Totals struct {
		Active   int64 `json:"active"`
		Banned   int64 `json:"banned"`
		Archived int64 `json:"archived"`
	} `json:"totals"`
	Today dayView   `json:"today"`
	Days  []dayView `json:"days"` // oldest first, today last
	// AllowedCounted is false when Redis (which holds the allowed counters) did not answer;
	// the allowed figures are then 0.
	AllowedCounted bool         `json:"allowed_counted"`
	TopKeys        []topKeyView `json:"top_keys"`
	TopIPs         []topIPView  `json:"top_ips"`
	Since          time.Time    `json:"since"`
	GeneratedAt    time.Time    `json:"generated_at"`
}

type topKeyView struct {
	KeyHint   string `json:"key_hint"`
	KeyHash   string `json:"key_hash"`
	Count     int64  `json:"count"`
	Forwarded int64  `json:"forwarded"` // of Count, forwarded in monitor mode
}

type topIPView struct {
	IP        string `json:"ip"`
	Count     int64  `json:"count"`
	Forwarded int64  `json:"forwarded"` // of Count, forwarded in monitor mode
}

func handleDashboard(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		now := d.Now().UTC()
		today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		since := today.AddDate(0, 0, -(dashboardDays - 1))
		var out dashboardView
		out.Since, out.GeneratedAt = since, now

		totals, err := d.Queries.BindingTotals(ctx)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out.Totals.Active, out.Totals.Banned, out.Totals.Archived = totals.Active, totals.Banned, totals.Archived

		perDay, err := d.Queries.InterceptsPerDay(ctx, since)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		days := make([]string, dashboardDays)
		out.Days = make([]dayView, dashboardDays)
		for i := range out.Days {
			days[i] = cache.DayKey(since.AddDate(0, 0, i))
			out.Days[i].Day = days[i]
		}
		for _, c := range perDay {
			if i := int(c.Day.Sub(since).Hours() / 24); i >= 0 && i < dashboardDays {
				out.Days[i].Intercepted, out.Days[i].Forwarded = c.Count, c.Forwarded
			}
		}
		if allowed, err := d.AllowedCounts(ctx, days); err != nil {
			d.Log.Warn("dashboard: allowed counters unavailable", "err", err)
		} else {
			out.AllowedCounted = true
			for i, n := range allowed {
				out.Days[i].Allowed = n
			}
		}
		out.Today = out.Days[dashboardDays-1]

		keys, err := d.Queries.TopInterceptedKeys(ctx, since, 10)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		ips, err := d.Queries.TopInterceptedIPs(ctx, since, 10)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out.TopKeys, out.TopIPs = make([]topKeyView, len(keys)), make([]topIPView, len(ips))
		for i, k := range keys {
			out.TopKeys[i] = topKeyView{KeyHint: k.KeyHint, KeyHash: k.KeyHash, Count: k.Count, Forwarded: k.Forwarded}
		}
		for i, c := range ips {
			out.TopIPs[i] = topIPView{IP: c.IP.String(), Count: c.Count, Forwarded: c.Forwarded}
		}
		encode(w, http.StatusOK, out)
	})
}
