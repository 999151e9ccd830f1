// Package yaegihost loads the plugin the way Traefik does: Yaegi v0.16.1 with the standard
// library symbols, the manifest's import path resolved GOPATH-style, options decoded with
// mapstructure (weakly typed, "a,b" strings to slices), then New and ServeHTTP called
// through reflection. go test on plugin/ proves little about Yaegi; this does.
package yaegihost

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"gopkg.in/yaml.v3"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

type manifest struct {
	DisplayName string         `yaml:"displayName"`
	Type        string         `yaml:"type"`
	Import      string         `yaml:"import"`
	Summary     string         `yaml:"summary"`
	TestData    map[string]any `yaml:"testData"`
}

const module = "github.com/key-ip-sentinel/sentinel"

func readManifest(t *testing.T) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), ".traefik.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// plugin holds the interpreted New and CreateConfig.
type plugin struct {
	fnNew, fnCreateConfig reflect.Value
}

func loadPlugin(t *testing.T, env []string) plugin {
	t.Helper()
	m := readManifest(t)
	if m.DisplayName == "" || m.Type != "middleware" || m.Summary == "" || m.TestData == nil || !strings.HasPrefix(m.Import, module) {
		t.Fatalf("manifest would make Traefik disable every plugin: %+v", m)
	}
	gopath := t.TempDir()
	if err := testenv.InstallLocalPlugin(gopath); err != nil {
		t.Fatal(err)
	}
	i := interp.New(interp.Options{GoPath: filepath.Join(gopath, "plugins-local"), Env: env})
	if err := i.Use(stdlib.Symbols); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Eval(`import "` + m.Import + `"`); err != nil {
		t.Fatalf("Yaegi cannot import the plugin: %v", err)
	}
	base := filepath.Base(m.Import)
	fnNew, err := i.Eval(base + ".New")
	if err != nil {
		t.Fatal(err)
	}
	fnCreate, err := i.Eval(base + ".CreateConfig")
	if err != nil {
		t.Fatal(err)
	}
	return plugin{fnNew: fnNew, fnCreateConfig: fnCreate}
}

// build decodes options like Traefik's plugin builder and calls New.
func (p plugin) build(t *testing.T, options map[string]any, next http.Handler) (http.Handler, error) {
	t.Helper()
	cfg := p.fnCreateConfig.Call(nil)[0]
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           cfg.Interface(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(options); err != nil {
		t.Fatalf("decode options: %v", err)
	}
	out := p.fnNew.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(next), cfg, reflect.ValueOf("sentinel@file")})
	if e := out[1].Interface(); e != nil {
		return nil, e.(error)
	}
	return out[0].Interface().(http.Handler), nil
}

func secretsEnv() []string {
	return append(os.Environ(), "SENTINEL_INTERNAL_TOKEN=yaegi-internal-token-0123", "SENTINEL_HMAC_SECRET="+yaegiHMACSecret)
}

func TestLabelStyleOptionsDecode(t *testing.T) {
	p := loadPlugin(t, secretsEnv())
	// Docker labels deliver every value as a string.
	opts := map[string]any{
		"admindURL": "http://127.0.0.1:9", "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET",
		"trustedProxies": "10.0.0.0/8,192.168.0.0/16", "redisDB": "2", "requireKey": "true", "cacheTTL": "500ms",
	}
	if _, err := p.build(t, opts, http.NotFoundHandler()); err != nil {
		t.Fatalf("label-style options: %v", err)
	}
	opts["trustedProxies"] = "10.0.0.5/24"
	opts["failsafeMode"] = "sometimes"
	_, err := p.build(t, opts, http.NotFoundHandler())
	if err == nil || !strings.Contains(err.Error(), "10.0.0.0/24") || !strings.Contains(err.Error(), "failsafeMode") {
		t.Fatalf("bad options: %v", err)
	}
}

// firstUseAdmind is an admind that binds each key to the first address it is asked about and
// refuses it elsewhere; bound maps key hash to address. The handler is not safe for
// concurrent requests.
func firstUseAdmind(t *testing.T) (admind *httptest.Server, bound map[string]string) {
	bound = map[string]string{}
	admind = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			KeyHash string `json:"key_hash"`
			IP      string `json:"ip"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &ev)
		if r.URL.Path != "/internal/v1/decide" {
			return
		}
		ip, ok := bound[ev.KeyHash]
		if !ok {
			ip = ev.IP
			bound[ev.KeyHash] = ip
		}
		reason := ""
		if ip != ev.IP {
			reason = "ip_not_allowed"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"allow": reason == "", "reason": reason, "cache_ttl_s": 60,
			"binding": map[string]any{"status": "active", "mode": "single", "cidrs": []string{ip + "/32"}}})
	}))
	t.Cleanup(admind.Close)
	return admind, bound
}

// TestDecisionsUnderYaegi runs the request path inside the interpreter: first use asks
// admind, the same key from another address is refused, two keys are ambiguous.
func TestDecisionsUnderYaegi(t *testing.T) {
	admind, bound := firstUseAdmind(t)
	p := loadPlugin(t, secretsEnv())
	h, err := p.build(t, map[string]any{"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc    string
		remote  string
		headers map[string]string
		want    int
	}{
		{desc: "first use", remote: "127.0.0.2:1", headers: map[string]string{"Authorization": "Bearer sk-yaegiKey"}, want: http.StatusTeapot},
		{desc: "cache hit", remote: "127.0.0.2:2", headers: map[string]string{"X-Api-Key": "yaegiKey-3"}, want: http.StatusTeapot},
		{desc: "other address", remote: "127.0.0.3:1", headers: map[string]string{"Authorization": "Bearer yaegiKey"}, want: http.StatusForbidden},
		{desc: "two keys", remote: "127.0.0.2:1", headers: map[string]string{"Authorization": "Bearer a", "X-Api-Key": "b"}, want: http.StatusBadRequest},
		{desc: "no key", remote: "127.0.0.9:1", want: http.StatusTeapot},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test/v1/chat/completions", nil)
		req.RemoteAddr = tt.remote
		for k, v := range tt.headers {
			req.Header.Set(k, v)
		}
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		if rw.Code != tt.want {
			t.Errorf("%s: status %d, want %d (%s)", tt.desc, rw.Code, tt.want, rw.Body)
		}
	}
	if len(bound) != 1 {
		t.Fatalf("admind saw %d keys, want 1", len(bound))
	}
}

// A downstream's http.ErrAbortHandler (Traefik's proxy, when a streamed answer breaks off)
// leaves the plugin as itself, on the hot path, the general path and with ?key=: Traefik's
// recovery then logs the aborted request only at DEBUG, which deploycheck keeps off, because
// that line holds the URL, ?key= included. Under Yaegi a panic the plugin raised or re-raised
// would reach Traefik as a reflect.Value, logged at ERROR with the URL: so the plugin neither
// recovers nor panics (docs/architecture.md, "Living inside Yaegi").
func TestDownstreamAbortPassesThroughUnderYaegi(t *testing.T) {
	admind, bound := firstUseAdmind(t)
	p := loadPlugin(t, secretsEnv())
	h, err := p.build(t, map[string]any{"admindURL": admind.URL, "internalTokenEnv": "SENTINEL_INTERNAL_TOKEN", "hmacSecretEnv": "SENTINEL_HMAC_SECRET"},
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ desc, target, auth string }{
		{desc: "first use, general path", target: "/v1/chat/completions", auth: "Bearer sk-abortKey0123"},
		{desc: "cache hit, hot path", target: "/v1/chat/completions", auth: "Bearer sk-abortKey0123"},
		{desc: "?key=", target: "/v1beta/models/m:streamGenerateContent?alt=sse&key=abortKey4567"},
		{desc: "no key", target: "/v1/models"},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://sentinel.test"+tt.target, nil)
		req.RemoteAddr = "127.0.0.2:1"
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		func() {
			defer func() {
				if r := recover(); r != http.ErrAbortHandler {
					t.Errorf("%s: the downstream's abort reached Traefik as %T %#v", tt.desc, r, r)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
	}
	if len(bound) != 2 {
		t.Errorf("admind was asked about %d keys, want 2 (the Authorization and the ?key= one)", len(bound))
	}
}
