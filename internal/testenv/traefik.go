package testenv

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// TraefikBin returns a Traefik v3.6.12 binary: $TRAEFIK_BIN, or the one scripts/traefik-bin.sh
// built and cached (building it takes 15-25 minutes the first time on a machine).
func TraefikBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TRAEFIK_BIN"); p != "" {
		return p
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "scripts", "traefik-bin.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fatalf(t, "building Traefik: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// InstallLocalPlugin lays the plugin out where Traefik looks for local plugins
// (<workdir>/plugins-local/src/<module>/): the manifest, go.mod and the plugin's packages.
// Tests are left out, as Traefik's Yaegi loads every .go file of the package it imports.
func InstallLocalPlugin(workdir string) error { return InstallPluginFrom(RepoRoot(), workdir) }

// InstallPluginFrom is InstallLocalPlugin from another copy of the repository (root).
func InstallPluginFrom(root, workdir string) error {
	dst := filepath.Join(workdir, "plugins-local", "src", "github.com", "key-ip-sentinel", "sentinel")
	files := []string{filepath.Join(root, ".traefik.yml"), filepath.Join(root, "go.mod")}
	// The plugin package and the packages under it (plugin/identity), without tests or
	// test data.
	err := filepath.WalkDir(filepath.Join(root, "plugin"), func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == "testdata":
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go"):
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, f)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// InstallBenchPlugin lays out bench/noop, make bench's no-op baseline plugin, next to the
// sentinel plugin.
func InstallBenchPlugin(workdir string) error {
	src := filepath.Join(RepoRoot(), "bench", "noop")
	dst := filepath.Join(workdir, "plugins-local", "src", "github.com", "key-ip-sentinel", "noop")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range []string{".traefik.yml", "go.mod", "noop.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WriteTraefikConfig renders traefik/local/*.yml.tmpl into dir as traefik.yml (static) and
// the file named by vars["DynamicFile"].
func WriteTraefikConfig(dir string, vars map[string]any) error {
	for _, f := range []struct{ tmpl, dst string }{
		{"static.yml.tmpl", filepath.Join(dir, "traefik.yml")},
		{"dynamic.yml.tmpl", fmt.Sprint(vars["DynamicFile"])},
	} {
		tmpl, err := template.ParseFiles(filepath.Join(RepoRoot(), "traefik", "local", f.tmpl))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := tmpl.Option("missingkey=error").Execute(&buf, vars); err != nil {
			return err
		}
		if err := os.WriteFile(f.dst, buf.Bytes(), 0o600); err != nil {
			return err
		}
	}
	return nil
}
