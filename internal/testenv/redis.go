package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server this test owns, or the shared one from SENTINEL_TEST_REDIS
// (then each test gets its own database number, flushed first).
type RedisServer struct {
	Addr string
	DB   int
	cmd  *exec.Cmd // nil for an external server
	dir  string
	port int
	args []string // extra redis-server arguments (a replica's --replicaof)
}

var redisDBSeq struct {
	sync.Mutex
	n int
}

// Redis starts a fresh redis-server for this test.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	if addr := os.Getenv("SENTINEL_TEST_REDIS"); addr != "" {
		redisDBSeq.Lock()
		db := redisDBSeq.n % 16
		redisDBSeq.n++
		redisDBSeq.Unlock()
		r := &RedisServer{Addr: addr, DB: db}
		c := r.Client(t)
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			fatalf(t, "redis %s: %v", addr, err)
		}
		return r
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		fatalf(t, "redis-server not found: apt-get install -y redis-server (or set SENTINEL_TEST_REDIS)")
	}
	return ownRedis(t)
}

// ownRedis starts a redis-server with args on a free port, killed at cleanup. A port found
// free can be taken before redis-server binds it (parallel test binaries pick ports too), so
// a taken port means another one, a few times.
func ownRedis(t testing.TB, args ...string) *RedisServer {
	r := &RedisServer{dir: t.TempDir(), args: args}
	t.Cleanup(r.Kill)
	for attempt := 1; ; attempt++ {
		r.port = FreePort(t)
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
		err := r.Start()
		if err == nil {
			return r
		}
		r.Kill()
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			fatalf(t, "%v", err)
		}
	}
}

// Client is a go-redis client on the test's database, for assertions.
func (r *RedisServer) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB})
	t.Cleanup(func() { c.Close() })
	return c
}

// Start (re)starts the server on its port, empty.
func (r *RedisServer) Start() error {
	r.cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")}, r.args...)...)
	r.cmd.SysProcAttr = DiesWithTest()
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	// Short deadlines: whatever took the port may accept and never answer.
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 250 * time.Millisecond, ReadTimeout: 250 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	log := filepath.Join(r.dir, "redis.log")
	for c.Ping(context.Background()).Err() != nil {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "Address already in use") {
			_ = os.Remove(log) // the next attempt's log starts empty
			return fmt.Errorf("redis-server: %w (%d)", errPortTaken, r.port)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer PING: %s", tail(log, 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Kill stops the server (SIGKILL) and waits for it.
func (r *RedisServer) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Terminate stops the server with SIGTERM (a clean shutdown) and waits for it.
func (r *RedisServer) Terminate() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Signal sends sig (SIGSTOP to hang it, SIGCONT to resume).
func (r *RedisServer) Signal(sig syscall.Signal) error {
	if r.cmd == nil {
		return fmt.Errorf("redis-server not running under testenv")
	}
	return r.cmd.Process.Signal(sig)
}

// RedisFailover is a primary, a replica of it and a Redis Sentinel watching them under Name
// (quorum 1; the primary counts as down after 1 s without an answer), all owned by the test.
type RedisFailover struct {
	Primary, Replica *RedisServer
	SentinelAddr     string
	Name             string
}

// RedisWithSentinel starts a RedisFailover and waits until the Sentinel knows the replica.
func RedisWithSentinel(t testing.TB) *RedisFailover {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		fatalf(t, "redis-server not found: apt-get install -y redis-server")
	}
	f := &RedisFailover{Name: "sentinel-primary"}
	f.Primary = ownRedis(t)
	f.Replica = ownRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(f.Primary.port))

	dir := t.TempDir()
	port := FreePort(t)
	f.SentinelAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(dir, "sentinel.conf") // the Sentinel rewrites it: it must be writable
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
`, port, dir, filepath.Join(dir, "sentinel.log"), f.Name, f.Primary.port, f.Name, f.Name)), 0o600); err != nil {
		fatalf(t, "%v", err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	cmd.SysProcAttr = DiesWithTest()
	if err := cmd.Start(); err != nil {
		fatalf(t, "start redis sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := redis.NewSentinelClient(&redis.Options{Addr: f.SentinelAddr})
	defer sc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		replicas, err := sc.Replicas(context.Background(), f.Name).Result()
		if err == nil && len(replicas) == 1 {
			break
		}
		if time.Now().After(deadline) {
			fatalf(t, "the Sentinel never saw the replica (%v): %s", err, tail(filepath.Join(dir, "sentinel.log"), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f
}
