// Command demo runs the whole stack locally as processes, without Docker: PostgreSQL,
// redis-server, admind, Traefik v3.6.12 with the plugin, and a fake OpenAI-compatible upstream
// (or DEMO_UPSTREAM). Ctrl-C stops everything. `make demo` runs it; e2e/demo_test.go follows
// what it prints.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/fakeupstream"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// proc is a process the demo started.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{} // closed once it has exited
}

// procs are the processes the demo started; exits receives each one that exits.
type procs struct {
	list  []*proc
	exits chan *proc
}

func (p *procs) start(dir, name string, env []string, bin string, args ...string) error {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	// A process group of its own, so that a terminal's Ctrl-C reaches the demo alone and it
	// stops the stack in order; killed by the kernel if the demo dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, log: f.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(pr.done)
		p.exits <- pr
	}()
	p.list = append(p.list, pr)
	step("started %s (log: %s)", name, f.Name())
	return nil
}

// stop stops the processes, last started first.
func (p *procs) stop() {
	for i := len(p.list) - 1; i >= 0; i-- {
		pr := p.list[i]
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pr.done:
		case <-time.After(5 * time.Second):
			_ = pr.cmd.Process.Kill()
			<-pr.done
		}
	}
}

// exited is the error for a process that exited while the demo needed it.
func (pr *proc) exited() error {
	return fmt.Errorf("%s exited (%v); the end of %s:\n%s", pr.name, pr.cmd.ProcessState, pr.log, testenv.Tail(pr.log, 15))
}

func step(format string, args ...any) { fmt.Printf("demo: "+format+"\n", args...) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitFor waits until ok, and gives up early when one of ps has exited.
func waitFor(ps *procs, what string, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		select {
		case pr := <-ps.exits:
			return pr.exited()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := testenv.RepoRoot()
	state := filepath.Join(root, ".demo")
	if dir := os.Getenv("DEMO_STATE"); dir != "" { // e2e/demo_test.go runs one elsewhere
		// Never emptied here: a directory named by hand may hold anything.
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			return fmt.Errorf("DEMO_STATE %s is not empty", dir)
		}
		state = dir
	} else {
		_ = os.RemoveAll(state)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	httpPort := envOr("DEMO_HTTP_PORT", "8016")
	// Before the builds: Traefik would only fail on a taken port once everything else runs.
	ln, err := net.Listen("tcp", "127.0.0.1:"+httpPort)
	if err != nil {
		return fmt.Errorf("127.0.0.1:%s is taken (another demo still running? DEMO_HTTP_PORT picks another port): %w", httpPort, err)
	}
	ln.Close()

	step("building Traefik v3.6.12 if not cached (the first build takes 15-25 minutes)")
	tb := exec.Command(filepath.Join(root, "scripts", "traefik-bin.sh"))
	tb.Stderr = os.Stderr
	out, err := tb.Output()
	if err != nil {
		return fmt.Errorf("traefik build: %w", err)
	}
	traefikBin := strings.TrimSpace(string(out))

	step("building admind")
	admindBin := filepath.Join(state, "admind")
	build := exec.Command("go", "build", "-o", admindBin, "./admind")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return err
	}

	ps := &procs{exits: make(chan *proc, 8)}
	defer ps.stop()

	pgBin, err := testenv.PGBinDir()
	if err != nil {
		return err
	}
	pgDir := filepath.Join(state, "pg")
	if err := os.MkdirAll(pgDir, 0o700); err != nil {
		return err
	}
	pgPort, err := testenv.StartPostgresCluster(pgBin, pgDir)
	if err != nil {
		return err
	}
	defer testenv.StopPostgresCluster(pgBin, pgDir)
	step("PostgreSQL on 127.0.0.1:%d", pgPort)

	redisPort, _ := testenv.PickPort()
	if err := ps.start(state, "redis", nil, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"); err != nil {
		return fmt.Errorf("%w (apt-get install redis-server)", err)
	}

	upstreamURL := os.Getenv("DEMO_UPSTREAM")
	if upstreamURL == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: &fakeupstream.Server{}}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		upstreamURL = "http://" + ln.Addr().String()
		step("fake OpenAI-compatible upstream on %s", upstreamURL)
	}

	hmacSecret, token, jwtSecret := randomSecret(), randomSecret(), randomSecret()
	adminPassword := envOr("ADMIN_PASSWORD", "sentinel-demo")
	secretFile, tokenFile := filepath.Join(state, "hmac-secret"), filepath.Join(state, "internal-token")
	_ = os.WriteFile(secretFile, []byte(hmacSecret), 0o600)
	_ = os.WriteFile(tokenFile, []byte(token), 0o600)
	appPort, _ := testenv.PickPort()
	internalPort, _ := testenv.PickPort()
	err = ps.start(state, "admind", []string{
		fmt.Sprintf("DATABASE_URL=postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pgPort),
		"REDIS_ADDR=127.0.0.1:" + strconv.Itoa(redisPort),
		"SENTINEL_HMAC_SECRET_FILE=" + secretFile, "SENTINEL_INTERNAL_TOKEN_FILE=" + tokenFile,
		"LISTEN_HOST=127.0.0.1", "APP_PORT=" + strconv.Itoa(appPort), "INTERNAL_PORT=" + strconv.Itoa(internalPort),
		"ADMIN_PASSWORD=" + adminPassword, "ADMIN_JWT_SECRET=" + jwtSecret,
	}, admindBin)
	if err != nil {
		return err
	}
	if err := waitFor(ps, "admind", 60*time.Second, func() bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", appPort)) }); err != nil {
		return err
	}

	apiPort, _ := testenv.PickPort()
	vars := map[string]any{
		"WebAddr": "127.0.0.1:" + httpPort, "AdminAddr": "127.0.0.1:" + strconv.Itoa(apiPort),
		"DynamicFile": filepath.Join(state, "dynamic.yml"), "AdmindURL": "http://127.0.0.1:" + strconv.Itoa(internalPort),
		"AdmindPublicURL":   "http://127.0.0.1:" + strconv.Itoa(appPort),
		"InternalTokenFile": tokenFile, "HMACSecretFile": secretFile, "RedisAddr": "127.0.0.1:" + strconv.Itoa(redisPort),
		"RedisDB": 0, "FailsafeMode": envOr("SENTINEL_FAILSAFE_MODE", "closed"), "CacheTTL": "2s", "UpstreamURL": upstreamURL,
	}
	if err := testenv.WriteTraefikConfig(state, vars); err != nil {
		return err
	}
	if err := testenv.InstallLocalPlugin(state); err != nil {
		return err
	}
	if err := ps.start(state, "traefik", nil, traefikBin, "--configFile="+filepath.Join(state, "traefik.yml")); err != nil {
		return err
	}
	err = waitFor(ps, "the sentinel middleware in Traefik", 60*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/http/middlewares/sentinel@file", apiPort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var mw struct{ Status string }
		return json.NewDecoder(resp.Body).Decode(&mw) == nil && mw.Status == "enabled"
	})
	if err != nil {
		return err
	}

	public := "http://127.0.0.1:" + httpPort
	// The fake upstream accepts any key. Behind New API a first use binds the key only when
	// New API answers it with a success: a made-up key binds nothing, and /v1/models succeeds
	// for every key New API issued.
	key, keyNote := "sk-demoKey0123456789abcdef", ""
	if os.Getenv("DEMO_UPSTREAM") != "" {
		key, keyNote = "$KEY", "Set KEY to a key your New API issued (KEY=sk-...): a key it refuses binds nothing.\n"
	}
	fmt.Printf(`
Key-IP Sentinel demo is running (state and logs in %[1]s).
  model API (through Traefik + sentinel): %[2]s/v1/...
  admin console:                          %[2]s/admin/ui/   (login: admin / %[3]s)
  admin API:                              %[2]s/admin/api/
  health:                                 %[2]s/health
  metrics (admind only, not routed):      http://127.0.0.1:%[4]d/metrics

%[5]sBind a key to 127.0.0.1 (its first use, answered with a success, binds it):
  curl -s %[2]s/v1/models -H "Authorization: Bearer %[6]s"
The same key from another address is intercepted (403):
  curl -s --interface 127.0.0.2 %[2]s/v1/models -H "Authorization: Bearer %[6]s"

Log in to the admin API and list the bindings:
  TOKEN=$(curl -s %[2]s/admin/api/login -H 'Content-Type: application/json' -d '{"username":"admin","password":"%[3]s"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -s %[2]s/admin/api/bindings -H "Authorization: Bearer $TOKEN"

Press Ctrl-C to stop everything.
`, state, public, adminPassword, appPort, keyNote, key)
	select {
	case <-ctx.Done():
		step("stopping")
		return nil
	case pr := <-ps.exits:
		return pr.exited()
	}
}
