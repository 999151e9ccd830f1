package deploycheck

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// make bundle's output is complete and consistent: a static admind that carries the console,
// and a deployment directory that passes the same checks as the repository.
func TestOfflineBundle(t *testing.T) {
	root := testenv.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, "web/dist/index.html")); err != nil {
		t.Fatal("the console is not built: run make web (make unit and make test do)")
	}
	out := t.TempDir()
	cmd := exec.Command("scripts/bundle.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BUNDLE_DIR="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bundle: %v\n%s", err, b)
	}
	dirs, _ := filepath.Glob(filepath.Join(out, "key-ip-sentinel-*"))
	var stage string
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			stage = d
		}
	}
	if stage == "" {
		t.Fatalf("no bundle directory in %v", dirs)
	}
	if tars, _ := filepath.Glob(filepath.Join(out, "*.tar.gz")); len(tars) != 1 {
		t.Fatalf("tarballs: %v", tars)
	}
	for _, f := range []string{"admind", "Dockerfile.offline", "docker-compose.offline.yml", "OFFLINE.md", "ca-certificates.crt",
		".traefik.yml", "go.mod", "plugin/sentinel.go", "plugin/identity/key.go", "scripts/make-secrets.sh"} {
		if _, err := os.Stat(filepath.Join(stage, f)); err != nil {
			t.Errorf("bundle lacks %s", f)
		}
	}
	if tests, _ := filepath.Glob(filepath.Join(stage, "plugin/*_test.go")); len(tests) > 0 {
		t.Errorf("bundle carries test files: %v", tests)
	}
	// Static: no dynamic loader, so it runs on a scratch image.
	bin := filepath.Join(stage, "admind")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("admind is dynamically linked")
		}
	}
	f.Close()
	b, _ := os.ReadFile(bin)
	if !bytes.Contains(b, []byte(`<div id="app">`)) {
		t.Error("admind in the bundle does not embed the built console")
	}
	// It runs: its health check reports the (absent) admind it asks.
	hc := exec.Command(bin, "healthcheck")
	hc.Env = []string{"APP_PORT=" + strings.TrimSpace("1")}
	if out, err := hc.CombinedOutput(); err == nil || !strings.Contains(string(out), "healthcheck") {
		t.Errorf("admind healthcheck against nothing: %v %s", err, out)
	}
	for _, err := range Check(stage) {
		t.Errorf("bundle: %v", err)
	}
}
