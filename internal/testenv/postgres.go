package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster is the cluster shared by one test binary (each test gets its own database).
var pg struct {
	once    sync.Once
	err     error
	dir     string // set when we started the cluster
	bin     string
	adminDS string // DSN of a database from which CREATE DATABASE is run
	seq     int
	mu      sync.Mutex
}

// PG returns the DSN of a new, empty database for this test.
func PG(t testing.TB) string {
	t.Helper()
	pg.once.Do(startPostgres)
	if pg.err != nil {
		fatalf(t, "postgres: %v", pg.err)
	}
	pg.mu.Lock()
	pg.seq++
	name := fmt.Sprintf("sentinel_test_%d_%d", os.Getpid(), pg.seq)
	pg.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.adminDS)
	if err != nil {
		fatalf(t, "postgres: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		fatalf(t, "postgres: create database: %v", err)
	}
	u, _ := url.Parse(pg.adminDS)
	u.Path = "/" + name
	return u.String()
}

// PGBinDir finds the PostgreSQL server binaries (PG_BINDIR overrides).
func PGBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install postgresql, or set SENTINEL_TEST_PG)")
}

func startPostgres() {
	if dsn := os.Getenv("SENTINEL_TEST_PG"); dsn != "" {
		pg.adminDS = dsn
		return
	}
	pg.bin, pg.err = PGBinDir()
	if pg.err != nil {
		return
	}
	dir, err := os.MkdirTemp("", "sentinel-pg-")
	if err != nil {
		pg.err = err
		return
	}
	pg.dir = dir
	port, err := StartPostgresCluster(pg.bin, dir)
	if err != nil {
		pg.err = err
		return
	}
	pg.adminDS = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// StartPostgresCluster initialises a cluster in dir and starts it on a free loopback port,
// running as the postgres user when we are root. Stop it with StopPostgresCluster.
func StartPostgresCluster(bin, dir string) (int, error) {
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("chown %s: %v: %s", dir, err, out)
		}
	}
	out, err := asPostgresUser(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// A port found free can be taken before the server binds it (parallel test binaries pick
	// ports too), so a taken port means another one, a few times.
	for attempt := 1; ; attempt++ {
		port, err := PickPort()
		if err != nil {
			return 0, err
		}
		err = startCluster(bin, dir, port)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return port, err
		}
	}
}

func startCluster(bin, dir string, port int) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB", port, dir)
	logFile := filepath.Join(dir, "postgres.log")
	_ = os.Remove(logFile) // the log read below is this start's alone
	out, err := asPostgresUser(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-o", opts, "-l", logFile, "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		log := tail(logFile, 20)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("postgres: %w (%d): %s", errPortTaken, port, log)
		}
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	stopWhenOrphaned(bin, dir)
	return nil
}

// stopWhenOrphaned starts a watchdog that stops the cluster in dir and removes dir once this
// test process has gone. pg_ctl detaches the server, and a process can end without running
// its cleanup: the fuzz coordinator interrupts, then kills, a worker that is slow to exit, and
// each worker of an admind fuzz target starts its own cluster (seen: make fuzz-brief left two
// clusters running per run). After a normal stop the watchdog's stop fails quietly.
func stopWhenOrphaned(bin, dir string) {
	stop := asPostgresUser(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop")
	watchdog := exec.Command("sh", append([]string{"-c",
		`pid=$1 dir=$2; shift 2; while kill -0 "$pid" 2>/dev/null; do sleep 1; done; "$@" >/dev/null 2>&1; rm -rf "$dir"`,
		"watchdog", strconv.Itoa(os.Getpid()), dir}, stop.Args...)...)
	watchdog.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives a Ctrl-C to the test's process group
	_ = watchdog.Start()                                      // best effort: the normal stop does not depend on it
}

// StopPostgresCluster stops the cluster in dir (immediately) and removes dir.
func StopPostgresCluster(bin, dir string) {
	_ = asPostgresUser(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run()
	_ = os.RemoveAll(dir)
}

// PostgresCluster is a cluster one test owns, so it may stop and restart it (fault tests).
type PostgresCluster struct {
	bin, dir string
	Port     int
}

// OwnPostgres starts a private cluster for t, removed at cleanup.
func OwnPostgres(t testing.TB) *PostgresCluster {
	t.Helper()
	bin, err := PGBinDir()
	if err != nil {
		fatalf(t, "%v", err)
	}
	dir, err := os.MkdirTemp("", "sentinel-pg-")
	if err != nil {
		fatalf(t, "%v", err)
	}
	port, err := StartPostgresCluster(bin, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		fatalf(t, "%v", err)
	}
	c := &PostgresCluster{bin: bin, dir: dir, Port: port}
	t.Cleanup(func() { StopPostgresCluster(bin, dir) })
	return c
}

// DSN is the cluster's postgres database.
func (c *PostgresCluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

// Stop shuts the cluster down (fast mode: connections are cut).
func (c *PostgresCluster) Stop() error {
	out, err := asPostgresUser(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Start starts the stopped cluster again on its port.
func (c *PostgresCluster) Start() error { return startCluster(c.bin, c.dir, c.Port) }

func stopPostgres() {
	if pg.dir != "" {
		StopPostgresCluster(pg.bin, pg.dir)
	}
}

// PickPort returns a TCP port free on 127.0.0.1 at the time of the call.
func PickPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
