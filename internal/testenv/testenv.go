// Package testenv starts the real servers tests need — a throwaway PostgreSQL cluster and
// redis-server processes on free loopback ports — and tears them down. SENTINEL_TEST_PG (a
// DSN of a database whose user may CREATE DATABASE) and SENTINEL_TEST_REDIS (host:port) use
// existing servers instead.
package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Main runs the package's tests and stops the servers started for them.
func Main(m *testing.M) {
	closeInheritedOnExec()
	code := m.Run()
	stopPostgres()
	os.Exit(code)
}

// closeInheritedOnExec marks every inherited descriptor above stderr close-on-exec. A fuzz
// worker talks to its coordinator over two inherited pipes that are not; a PostgreSQL or
// Redis server the worker starts would inherit them, keep them open after the worker exits,
// and the coordinator would wait on them forever (seen: make fuzz-brief hung in .ci/run).
func closeInheritedOnExec() {
	for fd := 3; fd < 256; fd++ {
		syscall.CloseOnExec(fd)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// errPortTaken: a server could not bind the port picked for it, taken meanwhile.
var errPortTaken = errors.New("port taken")

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// WaitFor polls cond every 20ms until it is true or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// asPostgresUser wraps a command so it runs as the postgres user when we are root
// (PostgreSQL refuses to run as root; CI runs as root).
func asPostgresUser(name string, args ...string) *exec.Cmd {
	if os.Geteuid() != 0 {
		return exec.Command(name, args...)
	}
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("testenv: "+format, args...)
}

// Process is a server process a test started (StartProcess).
type Process struct {
	Log    string        // the file holding its output
	Exited chan struct{} // closed when it has exited
}

// StartProcess starts cmd with its output in logPath; the process is killed at cleanup,
// and its log's tail is shown if the test failed.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd, logPath string) *Process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		fatalf(t, "%s: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = DiesWithTest()
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		fatalf(t, "%s: start: %v", name, err)
	}
	p := &Process{Log: logPath, Exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.Exited
		logFile.Close()
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, tail(logPath, 40))
		}
	})
	return p
}

// Tail is the last n lines of the file at path.
func Tail(path string, n int) string { return tail(path, n) }

// DiesWithTest makes a process the test starts get SIGKILL when the test process ends, even when
// its cleanup never runs (a fuzz worker its coordinator kills, a test binary that times out).
// A process that changes its user afterwards (mariadbd --user) loses it: Linux clears it then.
// The kernel sends it when the OS thread that started the process exits, which in Go is the
// test process ending: the runtime keeps its threads, and the one thread a test locks
// (InNetns) only dials and listens, it never starts a process.
func DiesWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
