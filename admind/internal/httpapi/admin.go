package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/alerts"
	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/auth"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

type adminKey struct{}

// requireAdmin lets a request through only with a valid admin session token or API token;
// a read-only API token only for GET and HEAD.
func requireAdmin(d Deps) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			tok, ok := strings.CutPrefix(h, "Bearer ")
			var sess auth.Session
			err := auth.ErrInvalidToken
			switch {
			case ok && auth.IsAPIToken(tok):
				ip, _ := adminClientIP(r, d.TrustedProxies)
				sess, err = d.APITokens.VerifyAPIToken(r.Context(), tok, ip)
			case ok:
				sess, err = d.Auth.Verify(r.Context(), tok)
			}
			if errors.Is(err, auth.ErrUnavailable) {
				d.Log.Error("token check unavailable", "err", err)
				writeError(w, http.StatusServiceUnavailable, "unavailable", "the admin API is unavailable, try again later")
				return
			}
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sentinel-admin"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing, invalid or expired token")
				return
			}
			if sess.Scope != auth.ScopeWrite && r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, http.StatusForbidden, "read_only_token", "this API token is read-only")
				return
			}
			if !validQuery(r) {
				writeError(w, http.StatusBadRequest, "bad_request", errNotText.Error())
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, sess)))
		})
	}
}

// sessionOnly refuses API tokens: logging out and managing tokens take an admin session (a
// token that could mint tokens would outlive its own revocation).
func sessionOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sess, _ := r.Context().Value(adminKey{}).(auth.Session); sess.APIToken {
			writeError(w, http.StatusForbidden, "session_required", "this takes an admin session, not an API token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// actor is who makes this request, for admin_audit.
func actor(d Deps, r *http.Request) audit.Actor {
	sess, _ := r.Context().Value(adminKey{}).(auth.Session)
	ip, _ := adminClientIP(r, d.TrustedProxies)
	return audit.Actor{Name: sess.Name, IP: ip}
}

// adminClientIP resolves an admin client behind Traefik as the plugin resolves a request's
// client, except that a trusted peer naming no client (a health check or a tool on the
// sentinel network) is taken as the client: admind binds nothing to it.
func adminClientIP(r *http.Request, trusted []netip.Prefix) (netip.Addr, error) {
	ip, err := identity.ClientIP(r, trusted)
	if errors.Is(err, identity.ErrUnnamedClient) {
		return ip, nil
	}
	return ip, err
}

// handleLogout ends the session of the token it is called with, on the server: the token is
// refused from then on, wherever a copy of it is.
func handleLogout(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _ := r.Context().Value(adminKey{}).(auth.Session)
		if err := d.Auth.Revoke(r.Context(), sess); err != nil {
			d.Log.Error("logout unavailable", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "logout is unavailable, try again later")
			return
		}
		d.Log.Info("admin logged out", "actor", sess.Name)
		encode(w, http.StatusOK, map[string]string{"status": "logged_out"})
	})
}

// writeFailure maps an error to its answer: input errors and missing objects are the
// client's to see; anything else is logged and answered without its text.
func writeFailure(w http.ResponseWriter, d Deps, r *http.Request, err error) {
	var input *bindings.InputError
	var invalid *settings.ValidationError
	var conflict *bindings.ConflictError
	var badImport *bindings.ImportError
	if status, code, ok := tokenFailure(err); ok {
		writeError(w, status, code, err.Error())
		return
	}
	switch {
	case errors.As(err, &badImport):
		var b importErrorBody
		b.Error.Code, b.Error.Message, b.Error.Rows = "invalid_import", badImport.Error(), badImport.Rows
		encode(w, http.StatusBadRequest, b)
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, "already_bound", conflict.Error())
	case errors.As(err, &input):
		writeError(w, http.StatusBadRequest, "bad_request", input.Message)
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, "bad_request", invalid.Error())
	case errors.Is(err, bindings.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such binding")
	default:
		d.Log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal_error", "internal error")
	}
}

func handleLogin(d Deps) http.Handler {
	type request struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	type response struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only JSON: a page on another site can make a browser send a form or text/plain
		// cross-site without asking, but not application/json, so nobody's visitors can be
		// used to guess the password or lock the admin's addresses.
		if !isJSON(r) {
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
			return
		}
		var req request
		if err := decode(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
			return
		}
		ip, err := adminClientIP(r, d.TrustedProxies)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "cannot tell the client address")
			return
		}
		tok, exp, err := d.Auth.Login(r.Context(), req.Username, req.Password, ip)
		switch {
		case errors.Is(err, auth.ErrUnavailable):
			d.Log.Error("login unavailable", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "login is unavailable, try again later")
		case err != nil:
			d.Log.Warn("admin login refused", "ip", ip.String())
			writeError(w, http.StatusUnauthorized, "invalid_credentials", auth.ErrInvalidCredentials.Error())
		default:
			d.Log.Info("admin logged in", "actor", req.Username, "ip", ip.String())
			encode(w, http.StatusOK, response{Token: tok, ExpiresAt: exp.UTC()})
		}
	})
}

// bindingView is a binding as the admin API shows it.
type bindingView struct {
	ID        int64     `json:"id"`
	KeyHint   string    `json:"key_hint"`
	KeyHash   string    `json:"key_hash"`
	Mode      string    `json:"mode"`
	CIDRs     []string  `json:"cidrs"`
	Status    string    `json:"status"`
	Origin    string    `json:"origin"`
	FirstIP   string    `json:"first_ip"` // "" for a pre-bound binding
	LastIP    string    `json:"last_ip"`
	CreatedAt time.Time `json:"created_at"`
	// LastUsedAt is null for a pre-bound binding not used yet.
	LastUsedAt *time.Time `json:"last_used_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Note       string     `json:"note"`
	// A learning rule's bounds and state; absent for the other modes.
	LearnSlots *int       `json:"learn_slots,omitempty"`
	LearnUntil *time.Time `json:"learn_until,omitempty"`
	SlotsLeft  *int       `json:"slots_left,omitempty"` // 0 once the rule holds (full or past learn_until)
}

func viewBinding(b bindings.Binding, now time.Time) bindingView {
	v := bindingView{
		ID: b.ID, KeyHint: b.KeyHint, KeyHash: b.KeyHash, Mode: string(b.Mode), CIDRs: b.CIDRStrings(),
		Status: string(b.Status), Origin: string(b.Origin), CreatedAt: b.CreatedAt.UTC(), UpdatedAt: b.UpdatedAt.UTC(), Note: b.Note,
	}
	if b.FirstIP.IsValid() {
		v.FirstIP, v.LastIP = b.FirstIP.String(), b.LastIP.String()
	}
	if !b.LastUsedAt.IsZero() {
		used := b.LastUsedAt.UTC()
		v.LastUsedAt = &used
	}
	if b.Mode == bindings.ModeLearning {
		slots, until, left := b.LearnSlots, b.LearnUntil.UTC(), b.SlotsLeft(now)
		v.LearnSlots, v.LearnUntil, v.SlotsLeft = &slots, &until, &left
	}
	return v
}

// learnRule is the learning rule an admin asked for: slots and a window from now, each
// defaulting to the runtime settings. Zero for the other modes, which take neither.
func learnRule(d Deps, mode string, slots, windowSeconds int) (bindings.LearnRule, error) {
	if mode != string(bindings.ModeLearning) {
		if slots != 0 || windowSeconds != 0 {
			return bindings.LearnRule{}, &bindings.InputError{Message: `learn_slots and learn_window_seconds are for the rule "learning" only`}
		}
		return bindings.LearnRule{}, nil
	}
	set := d.Settings.Current()
	if slots == 0 {
		slots = set.LearningSlots
	}
	if windowSeconds == 0 {
		windowSeconds = set.LearningWindowSeconds
	}
	if windowSeconds < 1 || windowSeconds > settings.MaxLearningWindowSeconds {
		return bindings.LearnRule{}, &bindings.InputError{Message: fmt.Sprintf("learn_window_seconds must be in 1-%d", settings.MaxLearningWindowSeconds)}
	}
	return bindings.LearnRule{Slots: slots, Until: d.Now().Add(time.Duration(windowSeconds) * time.Second)}, nil
}

type page[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
}

const maxPageSize = 200

// pagination reads page (from 1) and page_size (1-200, default 20).
func pagination(r *http.Request) (int, int, error) {
	pg, err := intParam(r, "page", 1, 1, 1_000_000)
	if err != nil {
		return 0, 0, err
	}
	size, err := intParam(r, "page_size", 20, 1, maxPageSize)
	return pg, size, err
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &bindings.InputError{Message: name + " must be an integer in " + strconv.Itoa(lo) + "-" + strconv.Itoa(hi)}
	}
	return n, nil
}

// bindingQuery reads the list filters. q searches in one box: an IP address finds the
// bindings that cover it, a 64-hex key hash its binding; anything else, hashed, a whole key,
// or (if short enough) part of a key hint.
func bindingQuery(d Deps, r *http.Request) (bindings.Query, error) {
	v := r.URL.Query()
	q := bindings.Query{Status: bindings.Status(v.Get("status")), Mode: bindings.Mode(v.Get("mode")), Sort: v.Get("sort"), Desc: v.Get("order") != "asc"}
	var err error
	if q.Page, q.PageSize, err = pagination(r); err != nil {
		return q, err
	}
	if search := strings.TrimSpace(v.Get("q")); search != "" {
		if len(search) > 512 {
			return q, &bindings.InputError{Message: "q is too long"}
		}
		switch ip, err := netip.ParseAddr(search); {
		case err == nil:
			q.IP = ip.Unmap().WithZone("")
		case contract.ValidKeyHash(search):
			q.KeyHash = search // as the logs and alerts show it
		default:
			hash, isKey := identity.HashRawKey(d.HMACSecret, search)
			// A hint is "sk-" + 4 + "…" + 4: a longer search can only be a whole key, which
			// the unique index on key_hash finds without scanning every hint.
			switch {
			case len(search) <= contract.MaxHintLen:
				q.KeyHash, q.Hint = hash, search
			case isKey:
				q.KeyHash = hash
			default:
				return q, &bindings.InputError{Message: "q is not an IP address, a key hash, a hint or an API key"}
			}
		}
	}
	switch q.Status {
	case "", bindings.StatusActive, bindings.StatusBanned:
	default:
		return q, &bindings.InputError{Message: `status must be "active" or "banned"`}
	}
	switch q.Mode {
	case "", bindings.ModeSingle, bindings.ModeMultiple, bindings.ModeLearning, bindings.ModeAll:
	default:
		return q, &bindings.InputError{Message: `mode must be "single", "multiple", "learning" or "all"`}
	}
	if q.Sort == "" {
		q.Sort = "id"
	}
	valid := false
	for _, c := range bindings.SortColumns {
		valid = valid || c == q.Sort
	}
	if !valid {
		return q, &bindings.InputError{Message: "sort must be one of " + strings.Join(bindings.SortColumns, ", ")}
	}
	if o := v.Get("order"); o != "" && o != "asc" && o != "desc" {
		return q, &bindings.InputError{Message: `order must be "asc" or "desc"`}
	}
	return q, nil
}

func handleListBindings(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := bindingQuery(d, r)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		list, total, err := d.Queries.ListBindings(r.Context(), q)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out := page[bindingView]{Items: make([]bindingView, len(list)), Total: total, Page: q.Page, PageSize: q.PageSize}
		for i, b := range list {
			out.Items[i] = viewBinding(b, d.Now())
		}
		encode(w, http.StatusOK, out)
	})
}

type changeRequest struct {
	ID    int64    `json:"id"`
	Mode  string   `json:"mode,omitempty"`
	CIDRs []string `json:"cidrs,omitempty"`
	// A learning rule's slots and window (seconds from now); the settings' when 0.
	LearnSlots         int     `json:"learn_slots,omitempty"`
	LearnWindowSeconds int     `json:"learn_window_seconds,omitempty"`
	Note               *string `json:"note,omitempty"`
}

// What a binding change takes besides the id.
type changeTakes int

const (
	takesID   changeTakes = iota // ban, unban, unbind
	takesRule                    // mode and cidrs
	takesNote                    // note
)

type changeResponse struct {
	Binding *bindingView `json:"binding,omitempty"` // absent after unbind
	// CacheUpdated false: saved, but Redis could not be told yet; admind keeps retrying.
	CacheUpdated bool `json:"cache_updated"`
}

// handleChange serves the binding changes; apply performs one.
func handleChange(d Deps, takes changeTakes, apply func(context.Context, audit.Actor, changeRequest) (bindings.Change, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req changeRequest
		if err := decode(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
			return
		}
		if req.ID <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "id must be a binding id")
			return
		}
		hasRule := req.Mode != "" || req.CIDRs != nil || req.LearnSlots != 0 || req.LearnWindowSeconds != 0
		switch {
		case takes == takesID && (hasRule || req.Note != nil):
			writeError(w, http.StatusBadRequest, "bad_request", "this change takes only an id")
			return
		case takes == takesRule && req.Note != nil:
			writeError(w, http.StatusBadRequest, "bad_request", "this change takes an id, a mode and cidrs")
			return
		case takes == takesNote && (hasRule || req.Note == nil):
			writeError(w, http.StatusBadRequest, "bad_request", "this change takes an id and a note")
			return
		}
		c, err := apply(r.Context(), actor(d, r), req)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out := changeResponse{CacheUpdated: c.CacheUpdated}
		if c.After.ID != 0 {
			v := viewBinding(c.After, d.Now())
			out.Binding = &v
		}
		encode(w, http.StatusOK, out)
	})
}

func handleUnbind(d Deps) http.Handler {
	return handleChange(d, takesID, func(ctx context.Context, a audit.Actor, req changeRequest) (bindings.Change, error) {
		return d.Admin.Unbind(ctx, a, req.ID)
	})
}

func handleSetRule(d Deps) http.Handler {
	return handleChange(d, takesRule, func(ctx context.Context, a audit.Actor, req changeRequest) (bindings.Change, error) {
		learn, err := learnRule(d, req.Mode, req.LearnSlots, req.LearnWindowSeconds)
		if err != nil {
			return bindings.Change{}, err
		}
		return d.Admin.SetRule(ctx, a, req.ID, bindings.Mode(req.Mode), req.CIDRs, learn)
	})
}

func handleBan(d Deps) http.Handler {
	return handleChange(d, takesID, func(ctx context.Context, a audit.Actor, req changeRequest) (bindings.Change, error) {
		return d.Admin.Ban(ctx, a, req.ID)
	})
}

func handleUnban(d Deps) http.Handler {
	return handleChange(d, takesID, func(ctx context.Context, a audit.Actor, req changeRequest) (bindings.Change, error) {
		return d.Admin.Unban(ctx, a, req.ID)
	})
}

func handleSetNote(d Deps) http.Handler {
	return handleChange(d, takesNote, func(ctx context.Context, a audit.Actor, req changeRequest) (bindings.Change, error) {
		return d.Admin.SetNote(ctx, a, req.ID, *req.Note)
	})
}

// handleTestAlert sends a test alert: 200 when the receiver took it, otherwise the reason,
// so a misconfigured channel shows in the console at once.
func handleTestAlert(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := d.TestAlert(r.Context(), actor(d, r).Name)
		switch {
		case errors.Is(err, alerts.ErrNoChannel):
			writeError(w, http.StatusConflict, "no_alert_channel", err.Error())
		case err != nil:
			writeError(w, http.StatusBadGateway, "alert_not_delivered", "the receiver did not take the test alert: "+err.Error())
		default:
			encode(w, http.StatusOK, map[string]bool{"delivered": true})
		}
	})
}

func handleGetSettings(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, d.Settings.Current())
	})
}

func handlePutSettings(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every field must be sent: a missing one would silently become its zero value
		// (archive_days 0 means "never archive").
		var fields map[string]json.RawMessage
		if err := decode(r, &fields); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
			return
		}
		var missing []string
		for _, name := range settings.Fields() {
			if _, ok := fields[name]; !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "send every setting; missing: "+strings.Join(missing, ", "))
			return
		}
		var next settings.Settings
		dec := json.NewDecoder(bytes.NewReader(mustJSON(fields)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&next); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "invalid settings: unknown field or wrong type")
			return
		}
		saved, err := d.Settings.Update(r.Context(), actor(d, r), next)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		encode(w, http.StatusOK, saved)
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
