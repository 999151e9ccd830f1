package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestConsoleServing(t *testing.T) {
	files := fstest.MapFS{
		"index.html":            {Data: []byte("<html>console</html>")},
		"assets/index-abc1.js":  {Data: []byte("console.log(1)")},
		"assets/index-abc1.css": {Data: []byte("body{}")},
	}
	h := handleConsole(files)
	tests := []struct {
		path, wantBody, wantCache string
		wantStatus                int
	}{
		{"/admin/ui/", "console", "no-cache", 200},
		{"/admin/ui/bindings", "console", "no-cache", 200},   // an app route: SPA fallback
		{"/admin/ui/logs?key=x", "console", "no-cache", 200}, // with a query
		{"/admin/ui/assets/index-abc1.js", "console.log", "immutable", 200},
		{"/admin/ui/assets/missing-123.js", "404", "", 404}, // a missing asset is not the app
		{"/admin/ui/favicon.ico", "404", "", 404},
		{"/admin/ui/../../etc/passwd", "console", "no-cache", 200}, // cleaned, stays inside
	}
	for _, tt := range tests {
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rw.Code != tt.wantStatus || !strings.Contains(rw.Body.String(), tt.wantBody) || !strings.Contains(rw.Header().Get("Cache-Control"), tt.wantCache) {
			t.Errorf("%s: %d %q cache %q", tt.path, rw.Code, rw.Body.String(), rw.Header().Get("Cache-Control"))
		}
		if rw.Header().Get("Content-Security-Policy") == "" || rw.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers missing", tt.path)
		}
	}
	// Built without Node: a page that says how to build the console.
	rw := httptest.NewRecorder()
	handleConsole(fstest.MapFS{".keep": {}}).ServeHTTP(rw, httptest.NewRequest(http.MethodGet, "/admin/ui/dashboard", nil))
	if rw.Code != 200 || !strings.Contains(rw.Body.String(), "make web") {
		t.Fatalf("placeholder: %d %s", rw.Code, rw.Body)
	}
}
