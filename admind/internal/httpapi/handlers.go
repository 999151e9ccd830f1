package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/auth"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/admind/internal/metrics"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/store"
)

// Deps is what the handlers need.
type Deps struct {
	Log           *slog.Logger
	Metrics       *metrics.Metrics
	Decider       *bindings.Service
	Intercepts    bindings.Store
	InternalToken string
	// Ready checks PostgreSQL and Redis.
	Ready func(ctx context.Context) error
	// PluginCacheLimit bounds how long the plugin may keep a decision's binding in its local
	// cache (cache_ttl_s in the answer); the plugin's own cacheTTL may be shorter.
	PluginCacheLimit time.Duration

	// Admin API.
	Auth          *auth.Authenticator
	APITokens     *auth.APITokens
	Admin         *bindings.Admin
	Settings      *settings.Service
	Queries       Queries
	AllowedCounts func(ctx context.Context, days []string) ([]int64, error)
	// TestAlert sends a test alert through the configured channel at once and says why it did
	// not arrive (alerts.Notifier.Test).
	TestAlert func(ctx context.Context, actor string) error
	// HMACSecret hashes a key an admin searches for, as the plugin would.
	HMACSecret []byte
	// TrustedProxies are the peers whose X-Forwarded-For names the admin's address.
	TrustedProxies []netip.Prefix
	// ConsoleHosts are the Hosts the console and admin API answer on (onConsoleHost).
	ConsoleHosts []string
	Now          func() time.Time
	// Console is the built admin console (web.Dist()).
	Console fs.FS
}

// Queries are the admin API's reads (PostgreSQL).
type Queries interface {
	ListBindings(ctx context.Context, q bindings.Query) ([]bindings.Binding, int, error)
	ListIntercepts(ctx context.Context, q bindings.LogQuery) ([]bindings.Intercept, int, error)
	EachIntercept(ctx context.Context, q bindings.LogQuery, fn func(bindings.Intercept) error) error
	ListAudit(ctx context.Context, q audit.Query) ([]audit.Record, int, error)
	EachAudit(ctx context.Context, q audit.Query, fn func(audit.Record) error) error
	BindingTotals(ctx context.Context) (store.Totals, error)
	InterceptsPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error)
	TopInterceptedKeys(ctx context.Context, since time.Time, limit int) ([]store.KeyCount, error)
	TopInterceptedIPs(ctx context.Context, since time.Time, limit int) ([]store.IPCount, error)
}

func handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func handleReady(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := d.Ready(ctx); err != nil {
			d.Log.Warn("not ready", "err", err)
			writeError(w, http.StatusServiceUnavailable, "not_ready", "a dependency is unreachable")
			return
		}
		encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func requireInternalToken(token string) func(http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong internal token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// decodeEvent reads and validates the plugin's body, answering 400 itself when it is bad.
// Intercept reports must also name a refusal reason.
func decodeEvent(w http.ResponseWriter, r *http.Request, needReason bool) (contract.Event, netip.Addr, bool) {
	var ev contract.Event
	if err := decode(r, &ev); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
		return ev, netip.Addr{}, false
	}
	ip, err := ev.Check(needReason)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return ev, netip.Addr{}, false
	}
	return ev, ip, true
}

func newDecideResponse(dec bindings.Decision, pluginCacheLimit time.Duration, now time.Time) contract.DecideResponse {
	out := contract.DecideResponse{Allow: dec.Allow, Reason: dec.Reason, CacheTTLS: int(pluginCacheLimit / time.Second),
		Provisional: dec.Provisional, Claim: dec.ClaimID}
	if dec.Reason == contract.ReasonClaimLimited {
		out.RetryAfterS = int((dec.RetryAfter + time.Second - 1) / time.Second)
		if out.RetryAfterS < 1 {
			out.RetryAfterS = 1
		}
	}
	if !dec.Provisional {
		out.Binding = &contract.BindingReply{Status: string(dec.Binding.Status), Mode: dec.Binding.WireMode(now), CIDRs: dec.Binding.CIDRStrings()}
	}
	return out
}

func handleDecide(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, ip, ok := decodeEvent(w, r, false)
		if !ok {
			return
		}
		dec, err := d.Decider.Decide(r.Context(), bindings.DecideRequest{
			KeyHash: ev.KeyHash, LegacyKeyHash: ev.LegacyKeyHash, KeyHint: ev.KeyHint, IP: ip, Method: ev.Method, Path: ev.Path, UserAgent: ev.UserAgent,
			Forwarded: ev.Forwarded,
		})
		if err != nil {
			d.Metrics.Decisions.WithLabelValues("error").Inc()
			d.Log.Error("decide failed", "key_hint", ev.KeyHint, "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot decide now")
			return
		}
		if !dec.Allow && !dec.Provisional {
			d.Log.Info("intercepted", "key_hint", ev.KeyHint, "ip", ip.String(), "reason", dec.Reason,
				"outcome", bindings.OutcomeOf(ev.Forwarded), "path", ev.Path, "user_agent", escapeControls(ev.UserAgent))
		}
		encode(w, http.StatusOK, newDecideResponse(dec, d.PluginCacheLimit, d.Now()))
	})
}

// decodeClaimEvent is decodeEvent for /confirm and /release, which must quote a claim.
func decodeClaimEvent(w http.ResponseWriter, r *http.Request) (contract.Event, netip.Addr, bool) {
	ev, ip, ok := decodeEvent(w, r, false)
	if ok && ev.Claim == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "claim is required")
		return ev, ip, false
	}
	return ev, ip, ok
}

// handleConfirm binds a claimed key: New API served the claimant's request.
func handleConfirm(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, ip, ok := decodeClaimEvent(w, r)
		if !ok {
			return
		}
		dec, err := d.Decider.Confirm(r.Context(), bindings.ConfirmRequest{KeyHash: ev.KeyHash, KeyHint: ev.KeyHint, ClaimID: ev.Claim, IP: ip})
		if errors.Is(err, bindings.ErrClaimLost) {
			writeError(w, http.StatusConflict, "claim_lost", "the claim no longer holds the key")
			return
		}
		if err != nil {
			d.Log.Error("confirm failed", "key_hint", ev.KeyHint, "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot confirm now")
			return
		}
		encode(w, http.StatusOK, newDecideResponse(dec, d.PluginCacheLimit, d.Now()))
	})
}

// handleRelease forgets a claimed key: New API did not serve the claimant's request.
func handleRelease(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _, ok := decodeClaimEvent(w, r)
		if !ok {
			return
		}
		if err := d.Decider.Release(r.Context(), ev.KeyHash, ev.Claim); err != nil {
			d.Log.Error("release failed", "key_hint", ev.KeyHint, "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot release now")
			return
		}
		encode(w, http.StatusOK, map[string]string{"status": "released"})
	})
}

// handleIntercept records an intercept the plugin decided itself while Redis was down.
func handleIntercept(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, ip, ok := decodeEvent(w, r, true)
		if !ok {
			return
		}
		err := d.Intercepts.InsertIntercepts(r.Context(), []bindings.Intercept{{
			KeyHash: ev.KeyHash, KeyHint: ev.KeyHint, IP: ip, Reason: ev.Reason, Outcome: bindings.OutcomeOf(ev.Forwarded),
			Method: ev.Method, Path: ev.Path, UserAgent: ev.UserAgent, At: time.Now(),
		}})
		if err != nil {
			d.Log.Error("record intercept failed", "key_hint", ev.KeyHint, "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot record now")
			return
		}
		encode(w, http.StatusOK, map[string]string{"status": "recorded"})
	})
}

// escapeControls keeps attacker-supplied text on one log line whatever the log handler.
func escapeControls(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`).Replace(s)
}
