package newapi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// sharedDir is where the workspace keeps New API's source snapshot and build script, beside
// the repository (tests read it when it is there; a clone elsewhere has none).
func sharedDir() string { return filepath.Join(testenv.RepoRoot(), "..", "shared", "newapi") }

var source struct {
	sync.Once
	dir string
	err string
}

// SourceDir returns New API's source tree: $NEWAPI_SRC (a directory, or a .tar.gz of one),
// else the snapshot in ../shared/newapi, unpacked once per test binary. It skips the test
// when there is neither.
func SourceDir(t testing.TB) string {
	t.Helper()
	source.Do(func() {
		src := os.Getenv("NEWAPI_SRC")
		if src == "" {
			m, _ := filepath.Glob(filepath.Join(sharedDir(), "new-api-*.tar.gz"))
			if len(m) == 0 {
				source.err = "no New API source: set NEWAPI_SRC (a source tree or .tar.gz) or provide ../shared/newapi"
				return
			}
			src = m[0]
		}
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			source.dir = src
			return
		}
		tmp, err := os.MkdirTemp("", "sentinel-newapi-src-")
		if err != nil {
			source.err = err.Error()
			return
		}
		if out, err := exec.Command("tar", "-xzf", src, "-C", tmp).CombinedOutput(); err != nil {
			source.err = "unpack " + src + ": " + strings.TrimSpace(string(out))
			return
		}
		// The tarball holds one top directory.
		entries, _ := os.ReadDir(tmp)
		if len(entries) == 1 && entries[0].IsDir() {
			tmp = filepath.Join(tmp, entries[0].Name())
		}
		source.dir = tmp
	})
	if source.err != "" {
		t.Skip("newapi: " + source.err)
	}
	return source.dir
}

// Binary returns a New API binary: $NEWAPI_BIN, else the one ../shared/newapi/build.sh builds
// and caches (6-10 minutes the first time on a machine). It skips the test when there is
// neither.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NEWAPI_BIN"); p != "" {
		return p
	}
	script := filepath.Join(sharedDir(), "build.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skip("newapi: no New API binary: set NEWAPI_BIN, or provide ../shared/newapi/build.sh to build one")
	}
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("newapi: %s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}
