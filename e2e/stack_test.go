// Package e2e runs the real stack as processes: PostgreSQL, redis-server, admind (built
// binary), Traefik v3.6.12 with the plugin loaded as a local plugin, and a fake
// OpenAI-compatible upstream. Clients bind their sockets to 127.0.0.2, 127.0.0.3, ... so
// Traefik sees distinct client addresses.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/internal/fakeupstream"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	hmacSecret    = "e2e-hmac-secret-0123456789abcdef"
	internalToken = "e2e-internal-token-0123456789"
	adminPassword = "e2e-admin-password-0123"
	jwtSecret     = "e2e-jwt-secret-0123456789abcdef0123456789"
)

// stack is one running Sentinel deployment.
type stack struct {
	webURL    string // Traefik's public entrypoint
	apiURL    string // Traefik's API (to check the plugin loaded)
	dsn       string
	redis     *testenv.RedisServer
	upstream  *upstream
	logs      []string // files holding every process's output
	admindURL string   // internal listener (the plugin's)
	publicURL string   // admind's public listener: /health, /metrics, /admin/api
	procs     map[string]*exec.Cmd
	exited    map[string]chan struct{}
	dir       string
	admindEnv []string
	opts      stackOptions
	ownPG     *testenv.PostgresCluster // nil unless stackOptions.OwnPostgres
	failover  *testenv.RedisFailover   // nil unless stackOptions.Sentinel
}

// startAdmind (re)starts admind and waits for its /health.
func (s *stack) startAdmind(t *testing.T) {
	t.Helper()
	s.start(t, s.dir, "admind", s.admindEnv, buildAdmind(t))
	waitHTTP(t, s.publicURL+"/health")
}

// stopProc ends a process the stack started (SIGTERM, then waits).
func (s *stack) stopProc(t *testing.T, name string) {
	t.Helper()
	cmd := s.procs[name]
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-s.exited[name]
}

type stackOptions struct {
	FailsafeMode string
	CacheTTL     string
	// OwnPostgres gives the stack a private PostgreSQL cluster it may stop (fault tests).
	OwnPostgres bool
	AdmindEnv   []string // extra admind environment
	// Sentinel runs Redis as a primary, a replica and a Redis Sentinel; the plugin and admind
	// find the primary through the Sentinel.
	Sentinel bool
	// UpstreamURL replaces the fake upstream behind the newapi router (a real New API).
	UpstreamURL string
	// TraefikAllowsEncoded leaves Traefik's encodedCharacters at its defaults (all allowed),
	// so a test sees what the plugin alone lets through.
	TraefikAllowsEncoded bool
	// Mode is the sentinel middleware's mode option ("" leaves it out: enforce).
	Mode string
	// Bench adds make bench's routes (bare, no-op plugin, sentinel, sentinel without its
	// local cache) under /bench/.
	Bench bool
}

var admindBuild struct {
	sync.Once
	bin string
	err error
}

// buildAdmind builds admind once per test binary.
func buildAdmind(t *testing.T) string {
	admindBuild.Do(func() {
		dir, err := os.MkdirTemp("", "sentinel-e2e-admind-")
		if err != nil {
			admindBuild.err = err
			return
		}
		admindBuild.bin = filepath.Join(dir, "admind")
		build := exec.Command("go", "build", "-o", admindBuild.bin, "./admind")
		build.Dir = testenv.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			admindBuild.err = fmt.Errorf("build admind: %v\n%s", err, out)
		}
	})
	if admindBuild.err != nil {
		t.Fatal(admindBuild.err)
	}
	return admindBuild.bin
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.FailsafeMode == "" {
		o.FailsafeMode = "closed"
	}
	if o.CacheTTL == "" {
		o.CacheTTL = "2s"
	}
	testenv.TraefikBin(t) // builds it first if needed, before anything starts
	dir := t.TempDir()
	s := &stack{upstream: newUpstream(t), dir: dir}
	if o.Sentinel {
		s.failover = testenv.RedisWithSentinel(t)
		s.redis = s.failover.Primary
	} else {
		s.redis = testenv.Redis(t)
	}
	if o.OwnPostgres {
		s.ownPG = testenv.OwnPostgres(t)
		s.dsn = s.ownPG.DSN()
	} else {
		s.dsn = testenv.PG(t)
	}

	// admind, built and run as a process; its ports, like Traefik's, are tried again when
	// taken before it listened.
	for attempt := 1; ; attempt++ {
		appPort, internalPort := testenv.FreePort(t), testenv.FreePort(t)
		s.admindURL = "http://127.0.0.1:" + strconv.Itoa(internalPort)
		s.publicURL = "http://127.0.0.1:" + strconv.Itoa(appPort)
		s.admindEnv = s.newAdmindEnv(o, appPort, internalPort)
		s.start(t, s.dir, "admind", s.admindEnv, buildAdmind(t))
		if s.waitListening(t, "admind", s.publicURL+"/health", attempt < 3) {
			break
		}
	}

	s.opts = o
	s.webURL, s.apiURL = s.startTraefik(t, "traefik", dir, s.admindURL, s.publicURL)
	return s
}

// newAdmindEnv is admind's environment for the stack, listening on the given ports.
func (s *stack) newAdmindEnv(o stackOptions, appPort, internalPort int) []string {
	env := append([]string{
		"DATABASE_URL=" + s.dsn,
		"REDIS_ADDR=" + s.redis.Addr,
		"REDIS_DB=" + strconv.Itoa(s.redis.DB),
		"SENTINEL_HMAC_SECRET=" + hmacSecret,
		"SENTINEL_INTERNAL_TOKEN=" + internalToken,
		"LISTEN_HOST=127.0.0.1",
		"APP_PORT=" + strconv.Itoa(appPort),
		"INTERNAL_PORT=" + strconv.Itoa(internalPort),
		"ADMIN_PASSWORD=" + adminPassword,
		"ADMIN_JWT_SECRET=" + jwtSecret,
		// admind publishes the failsafe mode as a runtime setting, which the plugin prefers
		// over its own option once it has read it: both say the same here.
		"SENTINEL_FAILSAFE_MODE=" + o.FailsafeMode,
		// The tests' webhook receivers listen on loopback.
		"ALERT_WEBHOOK_ALLOW_PRIVATE=true",
	}, o.AdmindEnv...)
	if s.failover != nil {
		env = append(env, "REDIS_SENTINELS="+s.failover.SentinelAddr, "REDIS_MASTER_NAME="+s.failover.Name)
	}
	return env
}

// startTraefik runs Traefik with the plugin from this repository, named name (its log is
// dir/<name>.log), with its configuration in dir; its sentinel middleware asks the admind
// at admindURL, and /admin and /health route to publicURL. It returns the public and API URLs
// once the middleware and the router serve.
func (s *stack) startTraefik(t *testing.T, name, dir, admindURL, publicURL string) (webURL, apiURL string) {
	t.Helper()
	o := s.opts
	tokenFile, secretFile := filepath.Join(dir, "internal-token"), filepath.Join(dir, "hmac-secret")
	mustWrite(t, tokenFile, internalToken)
	mustWrite(t, secretFile, hmacSecret)
	vars := map[string]any{
		"DynamicFile":          filepath.Join(dir, "dynamic.yml"),
		"AdmindURL":            admindURL,
		"AdmindPublicURL":      publicURL,
		"InternalTokenFile":    tokenFile,
		"HMACSecretFile":       secretFile,
		"RedisAddr":            s.redis.Addr,
		"RedisDB":              s.redis.DB,
		"FailsafeMode":         o.FailsafeMode,
		"CacheTTL":             o.CacheTTL,
		"UpstreamURL":          s.upstream.url,
		"Bench":                o.Bench,
		"TraefikAllowsEncoded": o.TraefikAllowsEncoded,
		"Mode":                 o.Mode,
	}
	if o.UpstreamURL != "" {
		vars["UpstreamURL"] = o.UpstreamURL
	}
	if s.failover != nil {
		vars["RedisSentinel"], vars["RedisMasterName"] = s.failover.SentinelAddr, s.failover.Name
	}
	if err := testenv.InstallLocalPlugin(dir); err != nil {
		t.Fatal(err)
	}
	if o.Bench {
		if err := testenv.InstallBenchPlugin(dir); err != nil {
			t.Fatal(err)
		}
	}
	// Its ports are picked free a moment before it listens; when something took one meanwhile
	// (seen in .ci/run), Traefik exits and another pair is tried.
	for attempt := 1; ; attempt++ {
		webPort, adminPort := testenv.FreePort(t), testenv.FreePort(t)
		vars["WebAddr"], vars["AdminAddr"] = "127.0.0.1:"+strconv.Itoa(webPort), "127.0.0.1:"+strconv.Itoa(adminPort)
		if err := testenv.WriteTraefikConfig(dir, vars); err != nil {
			t.Fatal(err)
		}
		s.start(t, dir, name, nil, testenv.TraefikBin(t), "--configFile="+filepath.Join(dir, "traefik.yml"))
		webURL = "http://127.0.0.1:" + strconv.Itoa(webPort)
		apiURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
		if s.waitListening(t, name, apiURL+"/ping", attempt < 3) {
			break
		}
	}
	// /ping alone does not prove the plugin loaded: the middleware must be enabled and the
	// router must be serving through it.
	testenv.WaitFor(t, 30*time.Second, "sentinel middleware enabled in Traefik", func() bool {
		var mw struct{ Status string }
		return getJSON(apiURL+"/api/http/middlewares/sentinel@file", &mw) == nil && mw.Status == "enabled"
	})
	testenv.WaitFor(t, 30*time.Second, "newapi router enabled", func() bool {
		var r struct{ Status string }
		return getJSON(apiURL+"/api/http/routers/newapi@file", &r) == nil && r.Status == "enabled"
	})
	return webURL, apiURL
}

// replica is a second admind and a second Traefik (whose plugin asks that admind) on the
// stack's PostgreSQL and Redis: two of everything but the data stores.
type replica struct {
	admindURL, publicURL string // the second admind's internal and public listeners
	webURL, apiURL       string // the second Traefik
}

func (s *stack) startReplica(t *testing.T) replica {
	t.Helper()
	var r replica
	appPort, internalPort := testenv.FreePort(t), testenv.FreePort(t)
	r.admindURL = "http://127.0.0.1:" + strconv.Itoa(internalPort)
	r.publicURL = "http://127.0.0.1:" + strconv.Itoa(appPort)
	// exec keeps the last value of a repeated variable: these override the first admind's.
	env := append(append([]string(nil), s.admindEnv...), "APP_PORT="+strconv.Itoa(appPort), "INTERNAL_PORT="+strconv.Itoa(internalPort))
	s.start(t, s.dir, "admind-2", env, buildAdmind(t))
	waitHTTP(t, r.publicURL+"/health")
	dir := filepath.Join(s.dir, "traefik-2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.webURL, r.apiURL = s.startTraefik(t, "traefik-2", dir, r.admindURL, r.publicURL)
	return r
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
	cmd.SysProcAttr = testenv.DiesWithTest()
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s.logs = append(s.logs, logPath)
	if s.procs == nil {
		s.procs = map[string]*exec.Cmd{}
	}
	s.procs[name] = cmd
	exited := make(chan struct{})
	if s.exited == nil {
		s.exited = map[string]chan struct{}{}
	}
	s.exited[name] = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 60))
			// Errors and panics anywhere in the log, not only in its tail.
			var errs []string
			for _, l := range strings.Split(string(b), "\n") {
				if len(errs) < 20 && (strings.Contains(l, "panic") || strings.Contains(l, "ERR") || strings.Contains(l, `"level":"ERROR"`)) {
					errs = append(errs, l)
				}
			}
			if len(errs) > 0 {
				t.Logf("--- %s errors ---\n%s", name, strings.Join(errs, "\n"))
			}
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

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitListening waits until the process name answers 200 at url. It returns false when the
// process exited because a port it was given was taken and retry allows another try; any
// other exit, or 60 s, fails the test.
func (s *stack) waitListening(t *testing.T, name, url string, retry bool) bool {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-s.exited[name]:
			b, _ := os.ReadFile(filepath.Join(s.procs[name].Dir, name+".log"))
			if retry && strings.Contains(string(b), "address already in use") {
				t.Logf("%s: a port picked for it was taken before it listened; trying others", name)
				return false
			}
			t.Fatalf("%s exited:\n%s", name, tail(string(b), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering at %s within 60s", name, url)
		}
		time.Sleep(50 * time.Millisecond)
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
			// One connection per request: idle keep-alive connections would hold Traefik
			// goroutines that the fault tests count.
			DisableKeepAlives: true,
		},
	}
}

// postFrom sends a chat completion carrying the Authorization value auth from the address
// to the Traefik at base, and returns the status (the body is read and dropped).
func postFrom(base, from, auth string) (int, error) { return postBodyFrom(base, from, auth, "{}") }

// postBodyFrom is postFrom with a JSON body of the caller's.
func postBodyFrom(base, from, auth, body string) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := clientFrom(from).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
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

// upstream runs a fakeupstream.Server whose streams wait for release.
type upstream struct {
	*fakeupstream.Server
	url     string
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{release: make(chan struct{})}
	u.Server = &fakeupstream.Server{Hold: u.release}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: u.Server}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	u.url = "http://" + ln.Addr().String()
	return u
}

// warmUp has n addresses (127.0.8.x) each bind a key of its own, spread over the gateways,
// at once: freshly started processes open their connections (plugin to admind, admind to
// PostgreSQL) on the first burst, and on a loaded 2-core machine that burst alone can push a
// decide past admindTimeout (503 in closed mode). A race tests who wins, not a cold start.
// Own keys: no refusal, so no intercept row or alert to count later.
func warmUp(t *testing.T, via []string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _ = callVia(t, via[i%len(via)], fmt.Sprintf("127.0.8.%d", i+1), "/v1/chat/completions",
				map[string]string{"Authorization": fmt.Sprintf("Bearer sk-warmUp%02d0123456789abcdef", i)})
		}(i)
	}
	wg.Wait()
}
