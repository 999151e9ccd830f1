package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A handler that panics still answers (500): the plugin reads a dropped connection as "admind
// could not decide", which in failsafe open would forward the request.
func TestPanicsAreAnswered(t *testing.T) {
	d := Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := recoverPanics(d)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/internal/v1/decide", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("the connection was dropped: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "internal_error") || strings.Contains(string(body), "boom") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
