package yaegihost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"golang.org/x/mod/modfile"
	"gopkg.in/yaml.v3"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// catalogCheck applies to the tree at root what the Traefik Plugin Catalog's analyzer
// (traefik/piceus, pkg/core/yaegi.go) checks before it lists a middleware plugin: go.mod
// requires no Traefik, Yaegi or Mesh module; the manifest's import lies under the module
// path; and, with every environment variable whose name holds token, password, username,
// _url, _host or _port unset, Yaegi with the standard library imports the plugin, testData
// decodes into CreateConfig() (mapstructure, weakly typed, "a,b" to lists), New has
// Traefik's signature and returns a handler within 10 s.
func catalogCheck(root string) error {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	mod, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		return err
	}
	for _, r := range mod.Require {
		for _, banned := range []string{"github.com/containous/yaegi", "github.com/containous/traefik", "github.com/containous/maesh",
			"github.com/traefik/yaegi", "github.com/traefik/traefik", "github.com/traefik/mesh"} {
			if strings.Contains(r.Mod.Path, banned) {
				return fmt.Errorf("a plugin cannot have a dependence to: %s", r.Mod.Path)
			}
		}
	}
	b, err = os.ReadFile(filepath.Join(root, ".traefik.yml"))
	if err != nil {
		return err
	}
	var m manifest
	if err := yaml.Unmarshal(b, &m); err != nil {
		return err
	}
	if m.DisplayName == "" || m.Type != "middleware" || m.Summary == "" || len(m.TestData) == 0 {
		return fmt.Errorf("manifest: displayName, type middleware, summary and testData are required: %+v", m)
	}
	if !strings.HasPrefix(strings.ReplaceAll(m.Import, "-", "_"), strings.ReplaceAll(mod.Module.Mod.Path, "-", "_")) {
		return fmt.Errorf("the import %q must be related to the module name %q", m.Import, mod.Module.Mod.Path)
	}

	gopath, err := os.MkdirTemp("", "catalog-gopath")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gopath)
	if err := testenv.InstallPluginFrom(root, gopath); err != nil {
		return err
	}
	defer dropSensitiveEnv()()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	i := interp.New(interp.Options{GoPath: filepath.Join(gopath, "plugins-local")})
	if err := i.Use(stdlib.Symbols); err != nil {
		return err
	}
	if _, err := i.EvalWithContext(ctx, fmt.Sprintf("import %q", m.Import)); err != nil {
		return fmt.Errorf("yaegi cannot import the plugin: %w", err)
	}
	base := strings.ReplaceAll(path.Base(m.Import), "-", "_")
	cfg, err := i.EvalWithContext(ctx, base+".CreateConfig()")
	if err != nil {
		return fmt.Errorf("CreateConfig: %w", err)
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.StringToSliceHookFunc(","), WeaklyTypedInput: true, Result: cfg.Interface(),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(m.TestData); err != nil {
		return fmt.Errorf("testData does not decode: %w", err)
	}
	fnNew, err := i.EvalWithContext(ctx, base+".New")
	if err != nil {
		return fmt.Errorf("New: %w", err)
	}
	ft := fnNew.Type()
	if ft.NumIn() != 4 || ft.NumOut() != 2 || !ft.In(2).AssignableTo(cfg.Type()) || ft.In(3).Kind() != reflect.String ||
		!ft.Out(0).Implements(reflect.TypeOf((*http.Handler)(nil)).Elem()) {
		return fmt.Errorf("New has the signature %s", ft)
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("New panicked: %v", r)
			}
		}()
		out := fnNew.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(http.NotFoundHandler()), cfg, reflect.ValueOf("test")})
		if e, _ := out[1].Interface().(error); e != nil {
			done <- fmt.Errorf("New with testData: %w", e)
			return
		}
		if _, ok := out[0].Interface().(http.Handler); !ok {
			done <- errors.New("New returned no http.Handler")
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("New did not return within 10s: %w", ctx.Err())
	}
}

// dropSensitiveEnv unsets what the analyzer unsets, and returns the function that restores it.
func dropSensitiveEnv() (restore func()) {
	saved := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		lk := strings.ToLower(k)
		for _, s := range []string{"token", "password", "username", "_url", "_host", "_port"} {
			if strings.Contains(lk, s) {
				saved[k] = v
				_ = os.Unsetenv(k)
				break
			}
		}
	}
	return func() {
		for k, v := range saved {
			_ = os.Setenv(k, v)
		}
	}
}

// TestPluginCatalogAcceptsThePlugin checks this tree, or the one CATALOG_CHECK_ROOT names
// (another checkout, such as a release candidate or an older commit).
func TestPluginCatalogAcceptsThePlugin(t *testing.T) {
	root := os.Getenv("CATALOG_CHECK_ROOT")
	if root == "" {
		root = testenv.RepoRoot()
	}
	// As the analyzer's machine would have them: the secrets' variables set under sensitive
	// names (so unset by the check) and no secret files.
	t.Setenv("SENTINEL_INTERNAL_TOKEN", "catalog-internal-token-0123")
	if err := catalogCheck(root); err != nil {
		t.Fatalf("the Plugin Catalog would refuse the plugin: %v", err)
	}
}

// The check can fail: on copies of the tree with what the catalog refuses, it does.
func TestPluginCatalogCheckFails(t *testing.T) {
	root := testenv.RepoRoot()
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(root, ".traefik.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc             string
		goMod, manifest  string
		want             string
		tokenInEnvBefore bool
	}{
		{desc: "go.mod requires yaegi (before the in-process tests had their own module)",
			goMod: strings.Replace(string(goMod), "require (", "require (\n\tgithub.com/traefik/yaegi v0.16.1", 1), manifest: string(manifest),
			want: "cannot have a dependence to: github.com/traefik/yaegi"},
		{desc: "testData names environment variables the analyzer unsets",
			goMod: string(goMod), manifest: replaceTestData(string(manifest), "  admindURL: http://127.0.0.1:9090\n  internalTokenEnv: SENTINEL_INTERNAL_TOKEN\n  hmacSecretEnv: SENTINEL_HMAC_SECRET\n"),
			want: "SENTINEL_INTERNAL_TOKEN is empty or unset", tokenInEnvBefore: true},
		{desc: "testData without missingSecrets: refuse, and no secret files",
			goMod: string(goMod), manifest: strings.Replace(string(manifest), "  missingSecrets: refuse\n", "", 1),
			want: "cannot read"},
		{desc: "import outside the module",
			goMod: string(goMod), manifest: strings.Replace(string(manifest), "import: github.com/key-ip-sentinel/sentinel/plugin", "import: github.com/elsewhere/plugin", 1),
			want: "must be related to the module name"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if tt.tokenInEnvBefore {
				t.Setenv("SENTINEL_INTERNAL_TOKEN", "catalog-internal-token-0123")
				t.Setenv("SENTINEL_HMAC_SECRET", "catalog-hmac-secret-0123456789")
			}
			// What the analyzer reads of the module: its manifest, go.mod and the plugin's packages.
			work := t.TempDir()
			if err := testenv.InstallPluginFrom(root, work); err != nil {
				t.Fatal(err)
			}
			copyRoot := filepath.Join(work, "plugins-local", "src", "github.com", "key-ip-sentinel", "sentinel")
			if err := os.WriteFile(filepath.Join(copyRoot, "go.mod"), []byte(tt.goMod), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(copyRoot, ".traefik.yml"), []byte(tt.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			err := catalogCheck(copyRoot)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("catalogCheck: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// replaceTestData puts body in place of the manifest's testData block.
func replaceTestData(manifest, body string) string {
	head, _, _ := strings.Cut(manifest, "testData:\n")
	return head + "testData:\n" + body
}
