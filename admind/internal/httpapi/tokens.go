package httpapi

import (
	_ "embed"
	"errors"
	"net/http"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/auth"
)

// tokenView is an API token as the admin API lists it: never the token itself.
type tokenView struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scope      string     `json:"scope"`
	Status     string     `json:"status"` // active, expired, revoked
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	LastUsedIP string     `json:"last_used_ip"`
	RevokedAt  *time.Time `json:"revoked_at"`
	RevokedBy  string     `json:"revoked_by"`
}

func viewToken(t auth.APIToken, now time.Time) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Prefix: t.Prefix, Scope: t.Scope, Status: t.Status(now), CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(), RevokedBy: t.RevokedBy}
	if !t.LastUsedAt.IsZero() {
		at := t.LastUsedAt.UTC()
		v.LastUsedAt = &at
	}
	if t.LastUsedIP.IsValid() {
		v.LastUsedIP = t.LastUsedIP.String()
	}
	if !t.RevokedAt.IsZero() {
		at := t.RevokedAt.UTC()
		v.RevokedAt = &at
	}
	return v
}

func handleListTokens(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := d.APITokens.List(r.Context())
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		out := struct {
			Items []tokenView `json:"items"`
		}{Items: make([]tokenView, len(list))}
		now := d.Now()
		for i, t := range list {
			out.Items[i] = viewToken(t, now)
		}
		encode(w, http.StatusOK, out)
	})
}

// handleCreateToken answers with the token itself, once: only its hash is kept.
func handleCreateToken(d Deps) http.Handler {
	type request struct {
		Name          string `json:"name"`
		Scope         string `json:"scope"`
		ExpiresInDays int    `json:"expires_in_days"`
	}
	type response struct {
		Token string `json:"token"`
		tokenView
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decode(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
			return
		}
		who := actor(d, r)
		raw, t, err := d.APITokens.Create(r.Context(), who, req.Name, req.Scope, req.ExpiresInDays)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		d.Log.Info("API token created", "actor", who.Name, "token", t.Name, "scope", t.Scope, "expires_at", t.ExpiresAt)
		w.Header().Set("Cache-Control", "no-store")
		encode(w, http.StatusCreated, response{Token: raw, tokenView: viewToken(t, d.Now())})
	})
}

func handleRevokeToken(d Deps) http.Handler {
	type request struct {
		ID int64 `json:"id"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decode(r, &req); err != nil || req.ID <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "send {\"id\"}: a token id")
			return
		}
		who := actor(d, r)
		t, err := d.APITokens.Revoke(r.Context(), who, req.ID)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		d.Log.Info("API token revoked", "actor", who.Name, "token", t.Name)
		encode(w, http.StatusOK, viewToken(t, d.Now()))
	})
}

// openAPI is the admin API's OpenAPI 3 document; openapi_test.go holds it to routes.go.
//
//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the admin API's OpenAPI document (for the handler tests' validation).
func OpenAPI() []byte { return openAPI }

func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(openAPI)
	})
}

// tokenFailure is writeFailure's answer for the API token errors, whose texts are safe to show.
func tokenFailure(err error) (status int, code string, ok bool) {
	var input *auth.InputError
	switch {
	case errors.As(err, &input):
		return http.StatusBadRequest, "bad_request", true
	case errors.Is(err, auth.ErrTokenNameTaken):
		return http.StatusConflict, "name_taken", true
	case errors.Is(err, auth.ErrTokenNotFound):
		return http.StatusNotFound, "not_found", true
	}
	return 0, "", false
}
