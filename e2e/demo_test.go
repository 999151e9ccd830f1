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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/newapi"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// TestDemoDoesWhatItPrints runs `make demo`'s program as a newcomer would, then runs the
// commands it prints with curl, as printed: a first use binds the key, the same key from
// 127.0.0.2 is intercepted, the admin API lists the binding. Ctrl-C then stops everything.
func TestDemoDoesWhatItPrints(t *testing.T) {
	d := startDemo(t)
	if st, out := d.call(t, d.commands[0], ""); st != http.StatusOK || !strings.Contains(out, `"fake-model"`) {
		t.Fatalf("the first use was not forwarded: %d %s", st, out)
	}
	if st, out := d.call(t, d.commands[1], ""); st != http.StatusForbidden || !strings.Contains(out, `"code":"ip_not_allowed"`) {
		t.Fatalf("the same key from 127.0.0.2 was not intercepted: %d %s", st, out)
	}
	key := regexp.MustCompile(`Bearer (sk-\w+)`).FindStringSubmatch(d.commands[0])
	if key == nil {
		t.Fatalf("the demo printed no key to bind: %s", d.commands[0])
	}
	d.wantOneBinding(t, key[1])
	public := fmt.Sprintf("http://127.0.0.1:%d", d.port)
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
	d.stop(t)
}

// TestDemoWithNewAPI is the demo pointed at the real New API (DEMO_UPSTREAM), as the README
// offers: a key New API refuses binds nothing; one it issued binds on first use and is
// intercepted from 127.0.0.2.
func TestDemoWithNewAPI(t *testing.T) {
	up := newUpstream(t)
	na := newapi.Start(t, newapi.Options{UpstreamURL: up.url})
	d := startDemo(t, "DEMO_UPSTREAM="+na.URL)
	madeUp := "KEY=sk-" + strings.Repeat("x", 48)
	if st, out := d.call(t, d.commands[0], madeUp); st != http.StatusUnauthorized || !strings.Contains(out, `"type":"new_api_error"`) {
		t.Fatalf("New API did not refuse a made-up key: %d %s", st, out)
	}
	if st, out := d.call(t, d.commands[1], madeUp); st != http.StatusUnauthorized || !strings.Contains(out, `"type":"new_api_error"`) {
		t.Fatalf("a key New API refused was bound, or refused by the gate: %d %s", st, out)
	}
	issued := "KEY=sk-" + na.Keys[0]
	if st, out := d.call(t, d.commands[0], issued); st != http.StatusOK || !strings.Contains(out, na.Model) {
		t.Fatalf("New API did not list its model for the issued key: %d %s", st, out)
	}
	if st, out := d.call(t, d.commands[1], issued); st != http.StatusForbidden || !strings.Contains(out, `"code":"ip_not_allowed"`) {
		t.Fatalf("the issued key from 127.0.0.2 was not intercepted: %d %s", st, out)
	}
	d.wantOneBinding(t, na.Keys[0])
	d.stop(t)
}

// TestDemoStopsWhenAPartDies: the demo does not go on as if it ran when a process it started
// exits; it says which one, with the end of its log, and stops the rest.
func TestDemoStopsWhenAPartDies(t *testing.T) {
	d := startDemo(t)
	admind := filepath.Join(d.state, "admind")
	pid := 0
	for p, cmdline := range d.processes() {
		if cmdline == admind {
			pid = p
		}
	}
	if pid == 0 {
		t.Fatalf("no process runs %s", admind)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-d.exited:
		if e.err == nil || !strings.Contains(e.stderr, "admind exited (signal: killed)") {
			t.Fatalf("want the demo to fail naming admind; it exited with %v:\n%s", e.err, e.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo ran on for a minute without admind")
	}
	d.nothingAnswers(t)
}

// TestDemoRefusesATakenPort: a taken DEMO_HTTP_PORT is named at once, before any build.
func TestDemoRefusesATakenPort(t *testing.T) {
	_, bin := buildDemo(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("DEMO_HTTP_PORT=%d", ln.Addr().(*net.TCPAddr).Port), "DEMO_STATE="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is taken (another demo still running?") || strings.Contains(string(out), "building") {
		t.Fatalf("want an early refusal naming the port; got %v:\n%s", err, out)
	}
}

// demo is a running `make demo` and the commands it printed.
type demo struct {
	cmd      *exec.Cmd
	port     int
	state    string   // DEMO_STATE
	text     string   // what it printed up to "Press Ctrl-C"
	commands []string // bind, intercept, log in, list the bindings
	exited   chan demoExit
}

type demoExit struct {
	err    error
	rest   string // what it printed after its instructions, or all of it if it never got there
	stderr string
}

func startDemo(t *testing.T, env ...string) *demo {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the demo prints curl commands: apt-get install curl (.ci/run does)")
	}
	dir, bin := buildDemo(t)
	d := &demo{exited: make(chan demoExit, 1), state: filepath.Join(dir, "state")}
	var err error
	if d.port, err = testenv.PickPort(); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin)
	// The demo finds Traefik through scripts/traefik-bin.sh's cache, which make e2e fills.
	d.cmd.Env = append(append(os.Environ(), fmt.Sprintf("DEMO_HTTP_PORT=%d", d.port), "DEMO_STATE="+d.state), env...)
	var stderr strings.Builder // written by exec's copier until Wait returns
	d.cmd.Stderr = &stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
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
		err := d.cmd.Wait()
		d.exited <- demoExit{err, all.String(), stderr.String()}
	}()
	select {
	case d.text = <-printed:
	case e := <-d.exited:
		t.Fatalf("the demo exited before it was ready: %v\n%s%s", e.err, e.rest, e.stderr)
	case <-time.After(8 * time.Minute):
		t.Fatal("the demo was not ready after 8 minutes")
	}
	t.Logf("the demo printed:\n%s", d.text)
	for _, m := range regexp.MustCompile(`(?m)^  ((?:curl|TOKEN=).*)$`).FindAllStringSubmatch(d.text, -1) {
		d.commands = append(d.commands, m[1])
	}
	if len(d.commands) != 4 {
		t.Fatalf("want the demo's 4 commands (bind, intercept, log in, list), found %d", len(d.commands))
	}
	return d
}

// buildDemo builds the demo into a new directory that the postgres user can reach (not
// t.TempDir, whose parent is private to this user): PostgreSQL runs as that user in the
// demo's state directory.
func buildDemo(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sentinel-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "demo")
	build := exec.Command("go", "build", "-o", bin, "./internal/demo")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo: %v\n%s", err, out)
	}
	return dir, bin
}

// run runs a printed command in sh, with env ("KEY=…") set as the demo says to.
func (d *demo) run(t *testing.T, script, env string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// call runs a printed curl command and returns its status and body; curl's -w prints the
// status after the body.
func (d *demo) call(t *testing.T, command, env string) (int, string) {
	t.Helper()
	out := d.run(t, command+` -w '\n%{http_code}'`, env)
	i := strings.LastIndexByte(out, '\n')
	st, err := strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("%s: no status in %q", command, out)
	}
	return st, out[:i]
}

// wantOneBinding runs the printed log-in and list commands: one binding, to 127.0.0.1, and
// no trace of the raw key.
func (d *demo) wantOneBinding(t *testing.T, key string) {
	t.Helper()
	out := d.run(t, d.commands[2]+"\n"+d.commands[3], "")
	var list struct {
		Items []struct {
			CIDRs []string `json:"cidrs"`
		}
		Total int
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("the bindings list: %v: %s", err, out)
	}
	if list.Total != 1 || len(list.Items) != 1 || strings.Join(list.Items[0].CIDRs, ",") != "127.0.0.1/32" {
		t.Fatalf("want one binding to 127.0.0.1/32, got %s", out)
	}
	if strings.Contains(out, key) {
		t.Fatal("the bindings list holds the raw key")
	}
}

// stop sends SIGINT to the demo, as a terminal's Ctrl-C does: it must stop everything it
// started, PostgreSQL included.
func (d *demo) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-d.exited:
		if e.err != nil {
			t.Fatalf("the demo exited with %v after Ctrl-C:\n%s%s", e.err, e.rest, e.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop within a minute of Ctrl-C")
	}
	d.nothingAnswers(t)
}

// nothingAnswers checks, once the demo has exited, that neither PostgreSQL nor Traefik's
// public entrypoint answers, and that no process it started is left: none runs from, or
// names, its state directory (a process killed a moment ago may take a few seconds to go).
func (d *demo) nothingAnswers(t *testing.T) {
	t.Helper()
	pg := regexp.MustCompile(`PostgreSQL on (127\.0\.0\.1:\d+)`).FindStringSubmatch(d.text)
	if pg == nil {
		t.Fatal("the demo did not print PostgreSQL's address")
	}
	for _, addr := range []string{pg[1], fmt.Sprintf("127.0.0.1:%d", d.port)} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers after the demo stopped", addr)
		}
	}
	left := d.processes()
	for deadline := time.Now().Add(10 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = d.processes() {
		time.Sleep(200 * time.Millisecond)
	}
	for _, cmdline := range left {
		t.Errorf("left running after the demo stopped: %s", cmdline)
	}
}

// processes are the processes that run from, or name, the demo's state directory: pid →
// command line, its arguments joined by spaces.
func (d *demo) processes() map[int]string {
	found := map[int]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		cwd, _ := os.Readlink(filepath.Join(dir, "cwd"))
		if strings.Contains(string(cmdline), d.state) || strings.HasPrefix(cwd, d.state) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			found[pid] = strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		}
	}
	return found
}
