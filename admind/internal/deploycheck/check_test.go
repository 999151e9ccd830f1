package deploycheck

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/key-ip-sentinel/sentinel/admind/internal/config"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
	"github.com/key-ip-sentinel/sentinel/plugin"
)

func TestDeploymentFilesAreConsistent(t *testing.T) {
	for _, err := range Check(testenv.RepoRoot()) {
		t.Error(err)
	}
}

// The check must fail when a label, an env name or an option is wrong.
func TestCheckCatchesMistakes(t *testing.T) {
	tests := []struct {
		file, from, to, want string
	}{
		{"docker-compose.yml", "ADMIN_PASSWORD_FILE:", "ADMIN_PASSWRD_FILE:", "ADMIN_PASSWRD_FILE is not one admind reads"},
		{"docker-compose.yml", "ADMIN_JWT_SECRET_FILE: /run/secrets/admin_jwt_secret", "ADMIN_JWT_SECRET_FILE: /run/secrets/nope", "not a secret mounted into admind"},
		{"docker-compose.yml", "condition: service_healthy", "condition: service_started", "without condition: service_healthy"},
		{"docker-compose.yml", "${SENTINEL_HTTP_PORT:-8016}", "${SENTINEL_PUBLIC_PORT:-8016}", "SENTINEL_PUBLIC_PORT"},
		{"traefik/examples/newapi-compose.yml", "middlewares: sentinel@file", "middlewares: sentinal@file", "sentinal@file does not exist"},
		{"traefik/examples/newapi-compose.yml", "entrypoints: web", "entrypoints: websecure", `entrypoint "websecure" does not exist`},
		{"traefik/examples/newapi-docker-run.sh", "sentinel.redisAddr=redis:6379", "sentinel.redisAdress=redis:6379", "redisAdress is not a sentinel option"},
		{"traefik/examples/newapi-docker-run.sh", "sentinel.failsafeMode=closed", "sentinel.failsafeMode=maybe", "the plugin refuses these options"},
		{"traefik/dynamic/sentinel.yml", "hmacSecretFile: /run/secrets/sentinel_hmac_secret", "hmacSecretFile: /run/secrets/hmac", "not a secret mounted into the Traefik container"},
		{"traefik/dynamic/sentinel.yml", "failsafeMode: closed", "failsafeMode: closed\n          missingSecrets: refuse", "missingSecrets=refuse"},
		{"traefik/static.yml", "abortOnPluginFailure: true", "abortOnPluginFailure: false", "abortOnPluginFailure must be true"},
		{"traefik/static.yml", "level: INFO", "level: debug", "of every aborted request"},
		{"traefik/static.yml", "RequestPath: drop", "RequestPath: keep", "must drop RequestPath"},
		{"traefik/static.yml", accessLogBlock, "accesslog:\n  fields:\n    defaultmode: keep\n", "must drop RequestPath"},
		{"traefik/static.yml", accessLogBlock, "accessLog: {}\n", "must drop RequestPath"},
		{"traefik/static.yml", "      defaultMode: drop", "      defaultMode: keep", "keeps every request header"},
		{"traefik/static.yml", "      defaultMode: drop", "      names:\n        Authorization: keep", "keeps request header Authorization"},
		{"docker-compose.yml", "- ./plugin:/plugins-local", "- .:/plugins-local", "that holds the secrets"},
		{"docker-compose.yml", "- ./go.mod:/plugins-local", "- ./secrets:/plugins-local", "that holds the secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			root := copyDeployment(t)
			path := filepath.Join(root, tt.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tt.from) {
				t.Fatalf("%s no longer contains %q", tt.file, tt.from)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), tt.from, tt.to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			errs := Check(root)
			for _, e := range errs {
				if strings.Contains(e.Error(), tt.want) {
					return
				}
			}
			t.Fatalf("no error containing %q; got %v", tt.want, errs)
		})
	}
}

// accessLogBlock is traefik/static.yml's access log configuration, as shipped.
const accessLogBlock = "accessLog:\n  format: json\n  fields:\n    defaultMode: keep\n    names:\n      RequestPath: drop\n" +
	"    headers:\n      defaultMode: drop\n"

// Logs that hold no key pass, read as Traefik reads them (each variant was run through
// Traefik v3.6.12 with a request carrying ?key= and Authorization).
func TestCheckAcceptsLogsWithoutKeys(t *testing.T) {
	for name, block := range map[string]string{
		"no access log":                     "",
		"accessLog with no value (off)":     "accessLog:\n",
		"every field dropped":               "accessLog:\n  fields:\n    defaultMode: drop\n",
		"names spelled in another case":     "accesslog:\n  fields:\n    names:\n      requestpath: drop\n",
		"headers left to Traefik's default": "accessLog:\n  fields:\n    names:\n      RequestPath: drop\n",
		"headers dropped or redacted by name": "accessLog:\n  fields:\n    names:\n      RequestPath: drop\n" +
			"    headers:\n      names:\n        Authorization: redact\n        Cookie: drop\n",
	} {
		t.Run(name, func(t *testing.T) {
			root := copyDeployment(t)
			path := filepath.Join(root, "traefik/static.yml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), accessLogBlock) {
				t.Fatalf("traefik/static.yml no longer contains %q", accessLogBlock)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), accessLogBlock, block, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, err := range Check(root) {
				t.Error(err)
			}
		})
	}
}

// copyDeployment copies the files Check reads into a temp dir.
func copyDeployment(t *testing.T) string {
	t.Helper()
	src, dst := testenv.RepoRoot(), t.TempDir()
	for _, rel := range []string{"docker-compose.yml", ".env.example", "traefik/static.yml", "traefik/dynamic/sentinel.yml",
		"traefik/dynamic/admin.yml", "traefik/examples/newapi-compose.yml", "traefik/examples/newapi-docker-run.sh",
		"traefik/examples/newapi-file-provider.yml"} {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// The README's configuration reference names every admind variable and plugin option.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	_, _ = config.Load(func(k string) string { names[strings.TrimSuffix(k, "_FILE")] = true; return "" })
	typ := reflect.TypeOf(plugin.Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i).Name
		names[strings.ToLower(f[:1])+f[1:]] = true
	}
	// Option names are case-insensitive (mapstructure); table cells quote names as `name`
	// or `a` / `b`.
	text := strings.ToLower(string(readme))
	for n := range names {
		if !strings.Contains(text, "`"+strings.ToLower(n)+"`") {
			t.Errorf("README.md does not document %s", n)
		}
	}
}
