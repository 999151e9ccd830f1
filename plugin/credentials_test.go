package plugin

import (
	"net/http"
	"testing"
)

func defaultSettings(t *testing.T) *settings {
	t.Helper()
	c := CreateConfig()
	s := &settings{}
	noErr := func(format string, args ...interface{}) { t.Fatalf(format, args...) }
	s.dashboardPaths = parsePaths("dashboardPaths", c.DashboardPaths, noErr)
	s.dashboardKeyPaths = parsePaths("dashboardKeyPaths", c.DashboardKeyPaths, noErr)
	return s
}

func TestAPIKey(t *testing.T) {
	s := defaultSettings(t)
	tests := []struct {
		desc    string
		target  string
		headers map[string][]string
		want    string
		wantErr bool
	}{
		{desc: "no credentials", target: "/v1/chat/completions", want: ""},
		{desc: "Bearer", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}}, want: "abc123"},
		{desc: "bearer lowercase", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"bearer sk-abc123"}}, want: "abc123"},
		{desc: "bare Authorization", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"sk-abc123"}}, want: "abc123"},
		{desc: "BEARER is not a prefix New API strips: whole value is the key", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"BEARER abc123"}}, want: "BEARER abc123"},
		{desc: "channel suffix dropped", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer sk-abc123-7"}}, want: "abc123"},
		{desc: "x-api-key", target: "/v1/messages", headers: map[string][]string{"X-Api-Key": {"sk-abc123"}}, want: "abc123"},
		{desc: "x-api-key trimmed", target: "/v1/messages", headers: map[string][]string{"X-Api-Key": {"  abc123  "}}, want: "abc123"},
		{desc: "x-goog-api-key", target: "/v1beta/models/gemini:generateContent", headers: map[string][]string{"X-Goog-Api-Key": {"abc123"}}, want: "abc123"},
		{desc: "query key", target: "/v1beta/models/gemini:generateContent?key=sk-abc123", want: "abc123"},
		{desc: "query key with encoded name", target: "/v1beta/models?k%65y=abc123", want: "abc123"},
		{desc: "query key on any path", target: "/v1/chat/completions?key=abc123", want: "abc123"},
		{desc: "websocket subprotocol", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"realtime, openai-insecure-api-key.sk-abc123, openai-beta.realtime-v1"}}, want: "abc123"},
		{desc: "websocket subprotocol across header lines", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"realtime", "openai-insecure-api-key.abc123"}}, want: "abc123"},
		{desc: "mj-api-secret", target: "/mj/submit/imagine", headers: map[string][]string{"Mj-Api-Secret": {"sk-abc123"}}, want: "abc123"},
		{desc: "midjourney-proxy placeholder defers to mj-api-secret", target: "/mj/submit/imagine",
			headers: map[string][]string{"Authorization": {"Bearer midjourney-proxy"}, "Mj-Api-Secret": {"abc123"}}, want: "abc123"},
		{desc: "same key in two carriers", target: "/v1/messages",
			headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}, "X-Api-Key": {"abc123-2"}}, want: "abc123"},
		{desc: "two different keys", target: "/v1/messages",
			headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}, "X-Api-Key": {"sk-zzz999"}}, wantErr: true},
		{desc: "duplicate header lines differ", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"Bearer abc123", "Bearer zzz999"}}, wantErr: true},
		{desc: "query and header differ", target: "/v1beta/models?key=abc123", headers: map[string][]string{"X-Goog-Api-Key": {"zzz999"}}, wantErr: true},
		{desc: "two websocket keys differ", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"openai-insecure-api-key.abc123, openai-insecure-api-key.zzz999"}}, wantErr: true},
		{desc: "empty after normalisation is no key", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer sk-"}}, want: ""},
		{desc: "dashboard login is not an API key", target: "/api/user/self", headers: map[string][]string{"Authorization": {"Bearer eyJhbGciOi.x.y"}}, want: ""},
		{desc: "pg dashboard path", target: "/pg/chat", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: ""},
		{desc: "dashboard path still reads other carriers", target: "/api/user/self", headers: map[string][]string{"X-Api-Key": {"abc123"}}, want: "abc123"},
		{desc: "usage/token takes API keys", target: "/api/usage/token", headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}}, want: "abc123"},
		{desc: "log/token takes API keys", target: "/api/log/token/", headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}}, want: "abc123"},
		{desc: "dot segments cannot hide a relay path", target: "/api/../v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "double slash", target: "//v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "apiary is not /api", target: "/apiary", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodPost, "http://sentinel.test"+tt.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range tt.headers {
			req.Header[k] = vs
		}
		got, err := apiKey(req, s)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: want ambiguity error, got %q", tt.desc, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.desc, got, err, tt.want)
		}
	}
}

func TestEncodedSlashPathIsRelay(t *testing.T) {
	// "/api%2F..%2Fv1/chat" decodes to /api/../v1/chat: cleaned, it is a relay path.
	s := defaultSettings(t)
	req, _ := http.NewRequest(http.MethodPost, "http://sentinel.test/api%2F..%2Fv1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer abc123")
	got, err := apiKey(req, s)
	if err != nil || got != "abc123" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestKeyHint(t *testing.T) {
	if got := keyHint("abcdefghijklmnopqrstuvwxyz"); got != "sk-abcd…wxyz" {
		t.Errorf("hint = %q", got)
	}
	if got := keyHint("short"); got != "sk-…" {
		t.Errorf("short hint = %q", got)
	}
}
