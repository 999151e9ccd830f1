package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

const maxBodyBytes = 64 << 10

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads one JSON object of bounded size, refusing unknown fields and text PostgreSQL
// cannot store (see validText).
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD silently, and accepts \u0000.
	if !utf8.Valid(body) || bytes.Contains(body, []byte(`\u0000`)) {
		return errNotText
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}

// isJSON: the request says its body is application/json (parameters such as charset allowed).
func isJSON(r *http.Request) bool {
	t, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && t == "application/json"
}

var errNotText = errors.New("text must be valid UTF-8 without NUL characters")

// validText: what an admin sends is stored and searched in PostgreSQL, whose text holds
// neither invalid UTF-8 nor NUL; refusing it here makes it a 400, not a failed query's 500.
func validText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// validQuery checks every query parameter with validText.
func validQuery(r *http.Request) bool {
	for _, vs := range r.URL.Query() {
		for _, v := range vs {
			if !validText(v) {
				return false
			}
		}
	}
	return true
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers {"error":{"code","message"}}. message must be safe for clients:
// internal error text never goes here.
func writeError(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	encode(w, status, b)
}

func handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
}

func handleMethodNotAllowed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})
}
