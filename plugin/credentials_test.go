package plugin

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func defaultOptions(t *testing.T) *options {
	t.Helper()
	noErr := func(format string, args ...interface{}) { t.Fatalf(format, args...) }
	return &options{
		dashboardRoutes: parseRoutes("dashboardRoutes", newAPIDashboardRoutes, noErr),
		keyRoutes:       parseRoutes("keyRoutes", newAPIKeyRoutes, noErr),
		routeVerdicts:   newRouteVerdicts(),
	}
}

func TestAPIKey(t *testing.T) {
	s := defaultOptions(t)
	tests := []struct {
		desc    string
		target  string
		headers map[string][]string
		want    string
		wantErr error
	}{
		{desc: "no credentials", target: "/v1/chat/completions", want: ""},
		{desc: "Bearer", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}}, want: "abc123"},
		{desc: "bearer lowercase", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"bearer sk-abc123"}}, want: "abc123"},
		{desc: "bare Authorization", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"sk-abc123"}}, want: "abc123"},
		{desc: "BEARER is not a prefix New API strips: the whole value is read, and is no key form", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"BEARER abc123"}}, wantErr: errMalformedKey},
		{desc: "case folds: MySQL collations find one key", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"Bearer sk-AbC123"}}, want: "abc123"},
		{desc: "same key in two cases is one key", target: "/v1/messages",
			headers: map[string][]string{"Authorization": {"Bearer abc123"}, "X-Api-Key": {"ABC123"}}, want: "abc123"},
		{desc: "accented spelling refused", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"Bearer ábc123"}}, wantErr: errMalformedKey},
		{desc: "full-width spelling refused", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"Bearer ａbc123"}}, wantErr: errMalformedKey},
		{desc: "space before a channel suffix (MySQL pads trailing spaces) refused", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"Bearer abc123 -1"}}, wantErr: errMalformedKey},
		{desc: "NUL refused", target: "/v1/chat/completions?key=abc%00", wantErr: errMalformedKey},
		{desc: "a dotted value (a dashboard JWT) is no key", target: "/v1/videos/x/content",
			headers: map[string][]string{"Authorization": {"Bearer eyJhbGciOi.eyJzdWIi.c2ln_x"}}, want: ""},
		{desc: "channel suffix dropped", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer sk-abc123-7"}}, want: "abc123"},
		{desc: "x-api-key", target: "/v1/messages", headers: map[string][]string{"X-Api-Key": {"sk-abc123"}}, want: "abc123"},
		{desc: "x-api-key trimmed", target: "/v1/messages", headers: map[string][]string{"X-Api-Key": {"  abc123  "}}, want: "abc123"},
		{desc: "x-goog-api-key", target: "/v1beta/models/gemini:generateContent", headers: map[string][]string{"X-Goog-Api-Key": {"abc123"}}, want: "abc123"},
		{desc: "query key", target: "/v1beta/models/gemini:generateContent?key=sk-abc123", want: "abc123"},
		{desc: "query key with encoded name", target: "/v1beta/models?k%65y=abc123", want: "abc123"},
		{desc: "query key on any path", target: "/v1/chat/completions?key=abc123", want: "abc123"},
		{desc: "websocket subprotocol", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"realtime, openai-insecure-api-key.sk-abc123, openai-beta.realtime-v1"}}, want: "abc123"},
		{desc: "websocket line without a key entry is the key itself, as New API reads it", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"sk-abc123"}}, want: "abc123"},
		{desc: "websocket key entry without the dot: New API keeps the prefix, then cuts at the first -", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"realtime, openai-insecure-api-keyabc123"}}, want: "openai"},
		{desc: "websocket lines each read", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"openai-insecure-api-key.abc123", "zzz999"}}, wantErr: errAmbiguousKey},
		{desc: "websocket whole value and Authorization differ", target: "/v1/chat/completions",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"zzz999"}, "Authorization": {"Bearer abc123"}}, wantErr: errAmbiguousKey},
		{desc: "mj-api-secret", target: "/mj/submit/imagine", headers: map[string][]string{"Mj-Api-Secret": {"sk-abc123"}}, want: "abc123"},
		{desc: "midjourney-proxy placeholder defers to mj-api-secret", target: "/mj/submit/imagine",
			headers: map[string][]string{"Authorization": {"Bearer midjourney-proxy"}, "Mj-Api-Secret": {"abc123"}}, want: "abc123"},
		{desc: "same key in two carriers", target: "/v1/messages",
			headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}, "X-Api-Key": {"abc123-2"}}, want: "abc123"},
		{desc: "two different keys", target: "/v1/messages",
			headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}, "X-Api-Key": {"sk-zzz999"}}, wantErr: errAmbiguousKey},
		{desc: "duplicate header lines differ", target: "/v1/chat/completions",
			headers: map[string][]string{"Authorization": {"Bearer abc123", "Bearer zzz999"}}, wantErr: errAmbiguousKey},
		{desc: "query and header differ", target: "/v1beta/models?key=abc123", headers: map[string][]string{"X-Goog-Api-Key": {"zzz999"}}, wantErr: errAmbiguousKey},
		{desc: "two websocket keys differ", target: "/v1/realtime",
			headers: map[string][]string{"Sec-Websocket-Protocol": {"openai-insecure-api-key.abc123, openai-insecure-api-key.zzz999"}}, wantErr: errAmbiguousKey},
		{desc: "empty after normalisation is no key", target: "/v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer sk-"}}, want: ""},
		{desc: "dashboard login is not an API key", target: "/api/user/self", headers: map[string][]string{"Authorization": {"Bearer eyJhbGciOi.x.y"}}, want: ""},
		{desc: "pg dashboard route", target: "/pg/chat/completions", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: ""},
		{desc: "dashboard route with a parameter", target: "/api/channel/12", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: ""},
		{desc: "dashboard route, trailing slash (gin redirects)", target: "/api/user/self/", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: ""},
		{desc: "gin falls back from /api/ to /:mode/mj/", target: "/api/mj/submit/imagine", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "gin falls back from /pg/ to /:mode/mj/", target: "/pg/mj/task/1/fetch", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "no New API route under /api is checked", target: "/api/nothing/here", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "the path is read as gin routes it, not cleaned", target: "/v1beta/models/x/../../../api/user/self", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "case is gin's: /API is no dashboard route", target: "/API/user/self", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "dashboard path still reads other carriers", target: "/api/user/self", headers: map[string][]string{"X-Api-Key": {"abc123"}}, want: "abc123"},
		{desc: "usage/token takes API keys", target: "/api/usage/token", headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}}, want: "abc123"},
		{desc: "log/token takes API keys", target: "/api/log/token/", headers: map[string][]string{"Authorization": {"Bearer sk-abc123"}}, want: "abc123"},
		{desc: "dot segments cannot hide a relay path", target: "/api/../v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "double slash", target: "//v1/chat/completions", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
		{desc: "apiary is not /api", target: "/apiary", headers: map[string][]string{"Authorization": {"Bearer abc123"}}, want: "abc123"},
	}
	// Twice: the second pass reads the route verdicts the first one remembered.
	for pass := 0; pass < 2; pass++ {
		for _, tt := range tests {
			req, err := http.NewRequest(http.MethodPost, "http://sentinel.test"+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tt.headers {
				req.Header[k] = vs
			}
			got, _, err := apiKey(req, s)
			if tt.wantErr != nil {
				if err != tt.wantErr {
					t.Errorf("%s: got %q, %v; want %v", tt.desc, got, err, tt.wantErr)
				}
				continue
			}
			if err != nil || got != tt.want {
				t.Errorf("%s: got %q, %v; want %q", tt.desc, got, err, tt.want)
			}
		}
	}
}

func TestEncodedSlashPathIsRelay(t *testing.T) {
	// "/api%2F..%2Fv1/chat" decodes to /api/../v1/chat, which New API's router routes as it
	// is (to no dashboard route), so Authorization is a key (serveGeneral refuses the
	// encoded separators before it gets here).
	s := defaultOptions(t)
	req, _ := http.NewRequest(http.MethodPost, "http://sentinel.test/api%2F..%2Fv1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer abc123")
	got, _, err := apiKey(req, s)
	if err != nil || got != "abc123" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestHasEncodedSeparator(t *testing.T) {
	for raw, want := range map[string]bool{
		"/v1/chat/completions": false, "/a%2Fb": true, "/a%2fb": true, "/a%5Cb": true, "/a%5c": true,
		"/a%41b": false, "/%2": false, "%": false, "/a%252F": false, "/%41%2F": true,
	} {
		if got := hasEncodedSeparator(raw); got != want {
			t.Errorf("hasEncodedSeparator(%q) = %v", raw, got)
		}
	}
}

// The route verdicts are bounded: no path over maxRouteVerdictOf bytes, no more than
// maxRouteVerdicts paths; a path they do not hold is matched again.
func TestRouteVerdictsBounded(t *testing.T) {
	rv := newRouteVerdicts()
	rememberRouteVerdict(rv, "/"+strings.Repeat("a", maxRouteVerdictOf), true)
	if _, ok := rv.m["/"+strings.Repeat("a", maxRouteVerdictOf)]; ok {
		t.Fatal("a long path was remembered")
	}
	for i := 0; i < maxRouteVerdicts+10; i++ {
		rememberRouteVerdict(rv, "/p/"+strconv.Itoa(i), i%2 == 0)
	}
	if len(rv.m) != maxRouteVerdicts {
		t.Fatalf("%d paths remembered, bound %d", len(rv.m), maxRouteVerdicts)
	}
	if v, ok := rv.m["/p/2"]; !ok || !v {
		t.Fatal("/p/2 lost")
	}
	if _, ok := rv.m["/p/"+strconv.Itoa(maxRouteVerdicts+5)]; ok {
		t.Fatal("remembered past the bound")
	}
}
