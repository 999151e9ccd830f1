package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestDemoDoesWhatItPrints runs `make demo`'s program as a newcomer would, then runs the
// commands it prints with curl, as printed: a first use binds the key, the same key from
// 127.0.0.2 is intercepted, the admin API lists the binding. Ctrl-C then stops everything.
func TestDemoDoesWhatItPrints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the demo prints curl commands: apt-get install curl (.ci/run does)")
	}
	// Not t.TempDir: PostgreSQL runs as the postgres user, who must reach the demo's state
	// directory, and t.TempDir's parent is private to this user.
	dir, err := os.MkdirTemp("", "sentinel-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "demo")
	build := exec.Command("go", "build", "-o", bin, "./internal/demo")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo: %v\n%s", err, out)
	}
	port, err := testenv.PickPort()
	if err != nil {
		t.Fatal(err)
	}
	demo := exec.Command(bin)
	// The demo finds Traefik through scripts/traefik-bin.sh's cache, which make e2e fills.
	demo.Env = append(os.Environ(), fmt.Sprintf("DEMO_HTTP_PORT=%d", port), "DEMO_STATE="+filepath.Join(dir, "state"))
	demo.Stderr = os.Stderr
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	type exit struct {
		err  error
		rest string // what it printed after its instructions, or all of it if it never got there
	}
	exited := make(chan exit, 1)
	printed := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				printed <- all.String()
				all.Reset()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- exit{demo.Wait(), all.String()}
	}()
	defer func() { _ = demo.Process.Kill() }()

	var text string
	select {
	case text = <-printed:
	case e := <-exited:
		t.Fatalf("the demo exited before it was ready: %v\n%s", e.err, e.rest)
	case <-time.After(8 * time.Minute):
		t.Fatal("the demo was not ready after 8 minutes")
	}
	t.Logf("the demo printed:\n%s", text)
	commands := regexp.MustCompile(`(?m)^  ((?:curl|TOKEN=).*)$`).FindAllStringSubmatch(text, -1)
	if len(commands) != 4 {
		t.Fatalf("want the demo's 4 commands (bind, intercept, login, list), found %d", len(commands))
	}
	run := func(script string) string {
		t.Helper()
		out, err := exec.Command("sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	if out := run(commands[0][1]); !strings.Contains(out, `"chat.completion"`) {
		t.Fatalf("the first use was not forwarded: %s", out)
	}
	if out := run(commands[1][1]); !strings.Contains(out, `"code":"ip_not_allowed"`) {
		t.Fatalf("the same key from 127.0.0.2 was not intercepted: %s", out)
	}
	var list struct {
		Items []struct {
			KeyHint string   `json:"key_hint"`
			CIDRs   []string `json:"cidrs"`
		}
		Total int
	}
	out := run(commands[2][1] + "\n" + commands[3][1])
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("the bindings list: %v: %s", err, out)
	}
	if list.Total != 1 || len(list.Items) != 1 || strings.Join(list.Items[0].CIDRs, ",") != "127.0.0.1/32" {
		t.Fatalf("want one binding to 127.0.0.1/32, got %s", out)
	}
	key := regexp.MustCompile(`Bearer (sk-\w+)`).FindStringSubmatch(commands[0][1])[1]
	if strings.Contains(out, key) {
		t.Fatal("the bindings list holds the raw key")
	}
	public := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, p := range []string{"/health", "/admin/ui/"} {
		resp, err := http.Get(public + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
	}

	// Ctrl-C, sent to the demo alone (a terminal sends it to every process of the group): it
	// stops everything it started, PostgreSQL included.
	pg := regexp.MustCompile(`PostgreSQL on (127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	if pg == nil {
		t.Fatal("the demo did not print PostgreSQL's address")
	}
	if err := demo.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exited:
		if e.err != nil {
			t.Fatalf("the demo exited with %v after Ctrl-C:\n%s", e.err, e.rest)
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop within a minute of Ctrl-C")
	}
	for _, addr := range []string{pg[1], fmt.Sprintf("127.0.0.1:%d", port)} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers after the demo stopped", addr)
		}
	}
}
