// Package e2e runs the real stack as processes: PostgreSQL, redis-server, admind (built
// binary), Traefik v3.6.12 with the plugin loaded as a local plugin, and a fake
// OpenAI-compatible upstream. Clients bind their sockets to 127.0.0.2, 127.0.0.3, ... so
// Traefik sees distinct client addresses.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	hmacSecret    = "e2e-hmac-secret-0123456789abcdef"
	internalToken = "e2e-internal-token-0123456789"
)

// stack is one running Sentinel deployment.
type stack struct {
	webURL    string // Traefik's public entrypoint
	apiURL    string // Traefik's API (to check the plugin loaded)
	dsn       string
	redis     *testenv.RedisServer
	upstream  *upstream
	logs      []string // files holding every process's output
	admindURL string
}

type stackOptions struct {
	FailsafeMode string
	CacheTTL     string
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.FailsafeMode == "" {
		o.FailsafeMode = "closed"
	}
	if o.CacheTTL == "" {
		o.CacheTTL = "2s"
	}
	traefikBin := testenv.TraefikBin(t)
	dir := t.TempDir()
	s := &stack{dsn: testenv.PG(t), redis: testenv.Redis(t), upstream: newUpstream(t)}

	// admind, built and run as a process.
	admindBin := filepath.Join(dir, "admind")
	build := exec.Command("go", "build", "-o", admindBin, "./admind")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build admind: %v\n%s", err, out)
	}
	appPort, internalPort := testenv.FreePort(t), testenv.FreePort(t)
	s.admindURL = "http://127.0.0.1:" + strconv.Itoa(internalPort)
	s.start(t, dir, "admind", []string{
		"DATABASE_URL=" + s.dsn,
		"REDIS_ADDR=" + s.redis.Addr,
		"REDIS_DB=" + strconv.Itoa(s.redis.DB),
		"SENTINEL_HMAC_SECRET=" + hmacSecret,
		"SENTINEL_INTERNAL_TOKEN=" + internalToken,
		"LISTEN_HOST=127.0.0.1",
		"APP_PORT=" + strconv.Itoa(appPort),
		"INTERNAL_PORT=" + strconv.Itoa(internalPort),
	}, admindBin)
	waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(appPort)+"/health")

	// Traefik with the plugin from this repository.
	tokenFile, secretFile := filepath.Join(dir, "internal-token"), filepath.Join(dir, "hmac-secret")
	mustWrite(t, tokenFile, internalToken)
	mustWrite(t, secretFile, hmacSecret)
	webPort, adminPort := testenv.FreePort(t), testenv.FreePort(t)
	vars := map[string]any{
		"WebAddr":           "127.0.0.1:" + strconv.Itoa(webPort),
		"AdminAddr":         "127.0.0.1:" + strconv.Itoa(adminPort),
		"DynamicFile":       filepath.Join(dir, "dynamic.yml"),
		"AdmindURL":         s.admindURL,
		"InternalTokenFile": tokenFile,
		"HMACSecretFile":    secretFile,
		"RedisAddr":         s.redis.Addr,
		"RedisDB":           s.redis.DB,
		"FailsafeMode":      o.FailsafeMode,
		"CacheTTL":          o.CacheTTL,
		"UpstreamURL":       s.upstream.url,
	}
	render(t, "static.yml.tmpl", filepath.Join(dir, "traefik.yml"), vars)
	render(t, "dynamic.yml.tmpl", filepath.Join(dir, "dynamic.yml"), vars)
	testenv.InstallLocalPlugin(t, dir)
	s.start(t, dir, "traefik", nil, traefikBin, "--configFile="+filepath.Join(dir, "traefik.yml"))
	s.webURL = "http://127.0.0.1:" + strconv.Itoa(webPort)
	s.apiURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
	waitHTTP(t, s.apiURL+"/ping")
	// /ping alone does not prove the plugin loaded: the middleware must be enabled and the
	// router must be serving through it.
	testenv.WaitFor(t, 30*time.Second, "sentinel middleware enabled in Traefik", func() bool {
		var mw struct{ Status string }
		return getJSON(s.apiURL+"/api/http/middlewares/sentinel@file", &mw) == nil && mw.Status == "enabled"
	})
	testenv.WaitFor(t, 30*time.Second, "newapi router enabled", func() bool {
		var r struct{ Status string }
		return getJSON(s.apiURL+"/api/http/routers/newapi@file", &r) == nil && r.Status == "enabled"
	})
	return s
}

// start runs a process in dir with its output in dir/<name>.log, killed at cleanup.
func (s *stack) start(t *testing.T, dir, name string, env []string, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s.logs = append(s.logs, logPath)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 60))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func render(t *testing.T, name, dst string, vars map[string]any) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join(testenv.RepoRoot(), "traefik", "local", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tmpl.Execute(f, vars); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// clientFrom returns an HTTP client whose connections leave from the given loopback address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			DisableCompression: true,
		},
	}
}

func (s *stack) pg(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (s *stack) redisClient(t *testing.T) *redis.Client { return s.redis.Client(t) }

// upstream is a fake OpenAI-compatible New API: it records what reached it and streams SSE
// for stream requests, holding the rest of the stream until released.
type upstream struct {
	url     string
	mu      sync.Mutex
	hits    int
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: u}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	u.url = "http://" + ln.Addr().String()
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits++
	u.mu.Unlock()
	if r.URL.Query().Get("stream") != "true" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"hi"}}]}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl := w.(http.Flusher)
	fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n")
	fl.Flush()
	select {
	case <-u.release:
	case <-time.After(20 * time.Second):
	}
	fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"second\"}}]}\n\n")
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func (u *upstream) hitCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}
