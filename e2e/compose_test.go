//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/fakeupstream"
	"github.com/key-ip-sentinel/sentinel/internal/newapi"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// The compose deployment run for real (make compose-test): the repository's
// docker-compose.yml, Dockerfile and traefik/examples/newapi-compose.yml, unchanged, brought up
// with Docker Compose v2 as README "Deploy with compose" and "Connect New API" (pattern A)
// say, against a Docker engine on this machine. Images are the local stand-ins of
// scripts/standin-images.sh (e2e/compose/standins/README.md says how each differs from the
// official one); New API is the real one, from ../shared/newapi.
//
// Clients are this test process, entering network namespaces: "the internet" is a namespace
// joined to the host by a veth pair (documentation addresses 198.51.100.0/24 and
// 2001:db8:51::/64) that reaches the published port over IPv4 and IPv6, as a remote client
// would; a container on shared_network is another. New API's upstream channel is a listener
// of this process inside a container on shared_network.
const (
	ctProject   = "key-ip-sentinel" // docker-compose.yml's name
	ctNewAPI    = "sentinel-ct-newapi"
	ctNetns     = "sentinel-ct"
	ctHostV4    = "198.51.100.1"
	ctClientV4  = "198.51.100.2"
	ctHostV6    = "2001:db8:51::1"
	ctClientV6  = "2001:db8:51::2"
	ctPort      = "18016"
	ctTraefikIn = "/plugins-local/src/github.com/key-ip-sentinel/sentinel"
)

type composeRun struct {
	dir, naDir string
	hmac       []byte
	adminPW    string
	keys       []string
	hold       chan struct{}
	inet4      string // the published port, as the internet namespace reaches it
	inet6      string
	internet   *http.Client
}

func TestCompose(t *testing.T) {
	if os.Getenv("SENTINEL_COMPOSE") == "" {
		t.Skip("make compose-test runs this: it needs a Docker engine (scripts/docker-engine.sh) and the stand-in images (scripts/standin-images.sh)")
	}
	c := startCompose(t)

	t.Run("traefik sees only the plugin and its three secrets", func(t *testing.T) {
		if got := c.compose(t, "exec", "-T", "traefik", "ls", "-A", "/run/secrets"); got != "redis_password\nsentinel_hmac_secret\nsentinel_internal_token" {
			t.Fatalf("/run/secrets in traefik holds:\n%s", got)
		}
		if got := c.compose(t, "exec", "-T", "traefik", "ls", "-A", ctTraefikIn); got != ".traefik.yml\ngo.mod\nplugin" {
			t.Fatalf("the plugin mount holds:\n%s", got)
		}
	})

	t.Run("first use binds the IPv4 client, the IPv6 one is refused and logged", func(t *testing.T) {
		if code, body := c.chat(t, c.internet, c.inet4, c.keys[0]); code != 200 || !strings.Contains(body, "hello from the fake upstream") {
			t.Fatalf("first use: %d %s", code, body)
		}
		c.wantBinding(t, c.keys[0], ctClientV4+"/32")
		if code, body := c.chat(t, c.internet, c.inet6, c.keys[0]); code != 403 || !strings.Contains(body, "ip_not_allowed") {
			t.Fatalf("from IPv6: %d %s", code, body)
		}
		c.wantIntercept(t, c.keys[0], ctClientV6)
	})

	t.Run("an IPv6 client binds at its own address", func(t *testing.T) {
		if code, body := c.chat(t, c.internet, c.inet6, c.keys[1]); code != 200 {
			t.Fatalf("first use over IPv6: %d %s", code, body)
		}
		c.wantBinding(t, c.keys[1], "2001:db8:51::/64")
		if code, _ := c.chat(t, c.internet, c.inet4, c.keys[1]); code != 403 {
			t.Fatalf("the IPv6 client's key from IPv4: %d", code)
		}
	})

	t.Run("a container on shared_network is seen at its address", func(t *testing.T) {
		ip, ns := c.container(t, "sentinel-ct-client", "")
		client := netnsClient(ns)
		traefik := "http://" + c.containerIP(t, ctProject+"-traefik-1", "shared_network") + ":8016"
		if code, body := c.chat(t, client, traefik, c.keys[2]); code != 200 {
			t.Fatalf("first use from the container: %d %s", code, body)
		}
		c.wantBinding(t, c.keys[2], ip+"/32")
		if code, _ := c.chat(t, client, traefik, c.keys[0]); code != 403 {
			t.Fatalf("another client's key from the container: %d", code)
		}
	})

	t.Run("a same-host client through localhost is a relay, never bound", func(t *testing.T) {
		// The engine's userland proxy carries connections to localhost: Traefik sees the
		// sentinel network's gateway, which the plugin detects and refuses.
		local := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for _, base := range []string{"http://127.0.0.1:" + ctPort, "http://[::1]:" + ctPort} {
			if code, body := c.chat(t, local, base, c.keys[3]); code != 403 || !strings.Contains(body, "client_address_hidden") {
				t.Fatalf("%s: %d %s", base, code, body)
			}
		}
		if n := c.psql(t, "SELECT count(*) FROM token_bindings WHERE key_hash = '"+c.hash(t, c.keys[3])+"'"); n != "0" {
			t.Fatalf("a relay's request left %s bindings", n)
		}
		metrics := "http://" + c.containerIP(t, ctProject+"-admind-1", ctProject+"_sentinel") + ":8080/metrics"
		testenv.WaitFor(t, 30*time.Second, "sentinel_hidden_client_requests_total >= 2", func() bool {
			return metricValue(metrics, "sentinel_hidden_client_requests_total") >= 2
		})
		if code, _ := c.chat(t, c.internet, c.inet4, c.keys[3]); code != 200 {
			t.Fatalf("the key, later, from its client: %d", code)
		}
		c.wantBinding(t, c.keys[3], ctClientV4+"/32")
	})

	t.Run("SSE streams through Traefik, the plugin and New API", func(t *testing.T) {
		c.stream(t)
	})

	t.Run("console and login", func(t *testing.T) {
		c.console(t)
	})

	t.Run("restarts under load give no wrong answer", func(t *testing.T) {
		owner := c.load(t, c.inet4, c.keys[0])
		attacker := c.load(t, c.inet6, c.keys[0])
		for _, svc := range []string{"admind", "redis", "postgres", "traefik"} {
			c.compose(t, "restart", svc)
			c.waitServing(t, c.keys[0])
			t.Logf("restarted %s", svc)
		}
		o, a := owner.stop(), attacker.stop()
		t.Logf("owner (bound, IPv4): %v; attacker (IPv6): %v", o, a)
		for code, n := range a {
			if code >= 200 && code < 300 && n > 0 {
				t.Errorf("the attacker got %d answers %d", n, code)
			}
		}
		if o[403] > 0 || o[200] == 0 {
			t.Errorf("the owner got %d refusals and %d successes", o[403], o[200])
		}
	})

	t.Run("down and up keep the bindings", func(t *testing.T) {
		before := c.psql(t, "SELECT count(*) FROM token_bindings")
		c.compose(t, "down")
		c.compose(t, "up", "-d", "--wait")
		c.waitServing(t, c.keys[0])
		if after := c.psql(t, "SELECT count(*) FROM token_bindings"); after != before {
			t.Fatalf("bindings: %s before down, %s after up", before, after)
		}
		if code, _ := c.chat(t, c.internet, c.inet6, c.keys[0]); code != 403 {
			t.Fatalf("after down/up, the bound key from another address: %d", code)
		}
	})

	t.Run("the image build needs the CA input behind this machine's proxy", func(t *testing.T) {
		ca := buildCA(t)
		if ca == "" {
			t.Skip("no TLS-intercepting proxy's CA on this machine (SENTINEL_BUILD_CA_FILE, /usr/local/share/ca-certificates)")
		}
		// The build above passed EXTRA_CA_CERTS and succeeded; without it, npm ci fails on
		// the proxy's certificate (npm 10 says only "Exit handler never called!").
		out, err := c.cmd(t, c.dir, 5*time.Minute, "docker", "build", "--no-cache", "--target", "web", "-t", "sentinel-ct-noca", ".")
		_ = exec.Command("docker", "rmi", "-f", "sentinel-ct-noca").Run()
		if err == nil {
			t.Fatalf("the console built without the proxy's CA: is there no intercepting proxy?\n%s", tail(out, 20))
		}
		if !strings.Contains(out, "npm ci") || !strings.Contains(out, "npm error") {
			t.Fatalf("the build without the CA failed, not in npm ci:\n%s", tail(out, 20))
		}
	})
}

// startCompose brings the deployment up in a copy of the repository and registers its
// teardown.
func startCompose(t *testing.T) *composeRun {
	root := testenv.RepoRoot()
	c := &composeRun{dir: filepath.Join(t.TempDir(), "key-ip-sentinel"), naDir: t.TempDir(), hold: make(chan struct{})}
	if _, err := c.cmd(t, root, time.Minute, "docker", "info"); err != nil {
		t.Fatal("no Docker engine answers (make compose-test starts one with scripts/docker-engine.sh)")
	}
	for _, image := range []string{"golang:1.26-bookworm", "node:22-bookworm-slim", "gcr.io/distroless/static-debian12:nonroot",
		"traefik:v3.6.12", "redis:7-alpine", "postgres:16", "calciumion/new-api:latest", "sentinel-standin/bookworm:minbase"} {
		if _, err := c.cmd(t, root, time.Minute, "docker", "image", "inspect", image); err != nil {
			t.Fatalf("image %s missing: scripts/standin-images.sh builds it (New API's needs ../shared/newapi or NEWAPI_BIN)", image)
		}
	}
	c.must(t, root, time.Minute, "bash", "-c", `mkdir -p "$0" && git ls-files -co --exclude-standard | grep -v -e '^web/node_modules/' -e '^web/dist/' -e '^secrets/' -e '^\.env$' | tar -cf - -T - | tar -C "$0" -xf -`, c.dir)

	// The operator's steps, README "Deploy with compose".
	env, err := os.ReadFile(filepath.Join(c.dir, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, []byte("\nSENTINEL_HTTP_PORT="+ctPort+"\nSENTINEL_CONSOLE_HOSTS="+ctHostV4+":"+ctPort+"\n")...)
	if err := os.WriteFile(filepath.Join(c.dir, ".env"), env, 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(t, c.dir, time.Minute, "scripts/make-secrets.sh")
	c.hmac = []byte(strings.TrimSpace(readFile(t, filepath.Join(c.dir, "secrets", "sentinel_hmac_secret"))))
	c.adminPW = strings.TrimSpace(readFile(t, filepath.Join(c.dir, "secrets", "admin_password")))
	if _, err := c.cmd(t, root, time.Minute, "docker", "network", "inspect", "shared_network"); err != nil {
		c.must(t, root, time.Minute, "docker", "network", "create", "shared_network")
		t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", "shared_network").Run() })
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.cmd(t, c.dir, time.Minute, "docker", "compose", "logs", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
			out, _ = c.cmd(t, c.naDir, time.Minute, "docker", "compose", "-p", ctNewAPI, "logs", "--tail", "40")
			t.Logf("New API's compose logs:\n%s", out)
		}
		_, _ = c.cmd(t, c.naDir, 3*time.Minute, "docker", "compose", "-p", ctNewAPI, "down", "-v")
		_, _ = c.cmd(t, c.dir, 3*time.Minute, "docker", "compose", "down", "-v")
		_ = exec.Command("docker", "rm", "-f", "sentinel-ct-upstream", "sentinel-ct-client").Run()
	})
	build := []string{"compose", "build"}
	if ca := buildCA(t); ca != "" {
		build = append(build, "--build-arg", "EXTRA_CA_CERTS="+ca)
	}
	c.must(t, c.dir, 20*time.Minute, "docker", build...)
	c.must(t, c.dir, 5*time.Minute, "docker", "compose", "up", "-d", "--wait")

	// New API's upstream: this process, listening inside a container on shared_network.
	_, upstreamNS := c.container(t, "sentinel-ct-upstream", "upstream")
	ln, err := testenv.NetnsListen(upstreamNS, ":8000")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &fakeupstream.Server{Hold: c.hold, Lookahead: 1}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// New API, pattern A: its own project with traefik/examples/newapi-compose.yml, unchanged.
	for src, dst := range map[string]string{
		filepath.Join(root, "e2e", "compose", "newapi", "docker-compose.yml"): "docker-compose.yml",
		filepath.Join(c.dir, "traefik", "examples", "newapi-compose.yml"):     "newapi-compose.yml",
	} {
		if err := os.WriteFile(filepath.Join(c.naDir, dst), []byte(readFile(t, src)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.must(t, c.naDir, 5*time.Minute, "docker", "compose", "-p", ctNewAPI, "-f", "docker-compose.yml", "-f", "newapi-compose.yml", "up", "-d", "--wait")
	na := newapi.Attach(t, "http://"+c.containerIP(t, ctNewAPI+"-new-api-1", "shared_network")+":3000", "sqlite",
		newapi.Options{UpstreamURL: "http://upstream:8000", Keys: 4})
	c.keys = na.Keys

	c.internet = netnsClient(startInternet(t))
	c.inet4 = "http://" + ctHostV4 + ":" + ctPort
	c.inet6 = "http://[" + ctHostV6 + "]:" + ctPort
	testenv.WaitFor(t, 2*time.Minute, "Traefik routing to New API", func() bool {
		resp, err := c.internet.Get(c.inet4 + "/api/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return c
}

// startInternet makes the namespace that stands for the internet and returns its path.
func startInternet(t *testing.T) string {
	_ = exec.Command("ip", "netns", "del", ctNetns).Run()
	script := strings.Join([]string{
		"ip netns add " + ctNetns,
		"ip link add sct-host type veth peer name sct-inet",
		"ip link set sct-inet netns " + ctNetns,
		"ip addr add " + ctHostV4 + "/24 dev sct-host",
		"ip -6 addr add " + ctHostV6 + "/64 dev sct-host nodad",
		"ip link set sct-host up",
		"ip -n " + ctNetns + " addr add " + ctClientV4 + "/24 dev sct-inet",
		"ip -n " + ctNetns + " -6 addr add " + ctClientV6 + "/64 dev sct-inet nodad",
		"ip -n " + ctNetns + " link set sct-inet up",
		"ip -n " + ctNetns + " link set lo up",
		"ip -n " + ctNetns + " route add default via " + ctHostV4,
		"ip -n " + ctNetns + " -6 route add default via " + ctHostV6,
	}, " && ")
	if out, err := exec.Command("bash", "-c", "set -e; "+script).CombinedOutput(); err != nil {
		t.Fatalf("network namespace: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ctNetns).Run() })
	return "/var/run/netns/" + ctNetns
}

func netnsClient(ns string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: testenv.NetnsDialer(ns), DisableKeepAlives: true, DisableCompression: true}}
}

// container starts a sleeping container on shared_network (with a network alias, if any)
// and returns its address there and its network namespace.
func (c *composeRun) container(t *testing.T, name, alias string) (ip, netns string) {
	_ = exec.Command("docker", "rm", "-f", name).Run()
	args := []string{"run", "-d", "--name", name, "--network", "shared_network"}
	if alias != "" {
		args = append(args, "--network-alias", alias)
	}
	c.must(t, "", time.Minute, "docker", append(args, "sentinel-standin/bookworm:minbase", "sleep", "infinity")...)
	pid := c.must(t, "", time.Minute, "docker", "inspect", "-f", "{{.State.Pid}}", name)
	return c.containerIP(t, name, "shared_network"), "/proc/" + pid + "/ns/net"
}

func (c *composeRun) containerIP(t *testing.T, name, network string) string {
	return c.must(t, "", time.Minute, "docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, name)
}

// chatRequest is a chat completion New API can serve (its channel's model), with key, to the
// gateway at base.
func chatRequest(base, key string, stream bool) *http.Request {
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":` + strconv.FormatBool(stream) + `}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-"+key)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// chat sends chatRequest through client and returns the status and body.
func (c *composeRun) chat(t *testing.T, client *http.Client, base, key string) (int, string) {
	t.Helper()
	resp, err := client.Do(chatRequest(base, key, false))
	if err != nil {
		t.Fatalf("POST %s: %v", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *composeRun) stream(t *testing.T) {
	resp, err := c.internet.Do(chatRequest(c.inet4, c.keys[0], true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	sc := bufio.NewScanner(resp.Body)
	first := false
	for !first && sc.Scan() {
		first = strings.Contains(sc.Text(), "first")
	}
	if !first {
		t.Fatal("the first chunk never arrived")
	}
	// The upstream holds the rest until now: the first chunk was not buffered on the way.
	close(c.hold)
	var rest []string
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			rest = append(rest, l)
		}
	}
	if len(rest) < 2 || !strings.Contains(strings.Join(rest, "\n"), "second") || rest[len(rest)-1] != "data: [DONE]" {
		t.Fatalf("the rest of the stream: %q", rest)
	}
}

func (c *composeRun) console(t *testing.T) {
	resp, err := c.internet.Get(c.inet4 + "/admin/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<div id=\"app\"") {
		t.Fatalf("console: %d %.200s", resp.StatusCode, page)
	}
	js, _ := json.Marshal(map[string]string{"username": "admin", "password": c.adminPW})
	resp, err = c.internet.Post(c.inet4+"/admin/api/login", "application/json", bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || login.Token == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, c.inet4+"/admin/api/bindings", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, err = c.internet.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(list), ctClientV4) {
		t.Fatalf("bindings: %d %.300s", resp.StatusCode, list)
	}
}

// loadRun sends chat completions in a loop from one client until stop, tallying statuses
// (0: no answer).
type loadRun struct {
	mu     sync.Mutex
	counts map[int]int
	done   chan struct{}
	wg     sync.WaitGroup
}

func (c *composeRun) load(t *testing.T, base, key string) *loadRun {
	l := &loadRun{counts: map[int]int{}, done: make(chan struct{})}
	client := netnsClient("/var/run/netns/" + ctNetns)
	client.Timeout = 10 * time.Second
	for w := 0; w < 4; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				code := 0
				if resp, err := client.Do(chatRequest(base, key, false)); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				} else {
					time.Sleep(50 * time.Millisecond)
				}
				l.mu.Lock()
				l.counts[code]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *loadRun) stop() map[int]int {
	close(l.done)
	l.wg.Wait()
	return l.counts
}

// waitServing waits until the bound client gets 200 again.
func (c *composeRun) waitServing(t *testing.T, key string) {
	testenv.WaitFor(t, 2*time.Minute, "the bound client served again", func() bool {
		resp, err := c.internet.Do(chatRequest(c.inet4, key, false))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (c *composeRun) hash(t *testing.T, key string) string {
	h, ok := identity.HashRawKey(c.hmac, key)
	if !ok {
		t.Fatalf("not a key: %q", key)
	}
	return h
}

func (c *composeRun) wantBinding(t *testing.T, key, cidr string) {
	t.Helper()
	if got := c.psql(t, "SELECT array_to_string(cidrs, ',') FROM token_bindings WHERE key_hash = '"+c.hash(t, key)+"'"); got != cidr {
		t.Fatalf("binding: %q, want %q", got, cidr)
	}
}

func (c *composeRun) wantIntercept(t *testing.T, key, ip string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "an intercept row from "+ip, func() bool {
		return c.psql(t, "SELECT count(*) FROM intercept_logs WHERE key_hash = '"+c.hash(t, key)+"' AND ip = '"+ip+"'") != "0"
	})
}

func (c *composeRun) psql(t *testing.T, sql string) string {
	t.Helper()
	return c.compose(t, "exec", "-T", "postgres", "psql", "-U", "sentinel", "-d", "sentinel", "-At", "-c", sql)
}

func (c *composeRun) compose(t *testing.T, args ...string) string {
	t.Helper()
	return c.must(t, c.dir, 5*time.Minute, "docker", append([]string{"compose"}, args...)...)
}

func (c *composeRun) must(t *testing.T, dir string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := c.cmd(t, dir, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 40))
	}
	return strings.TrimSpace(out)
}

func (c *composeRun) cmd(t *testing.T, dir string, timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("timed out after %s", timeout)
	}
}

// buildCA is the CA bundle the image build must trust: SENTINEL_BUILD_CA_FILE, else the
// certificates this machine added to its trust store (a TLS-intercepting proxy's).
func buildCA(t *testing.T) string {
	if f := os.Getenv("SENTINEL_BUILD_CA_FILE"); f != "" {
		return readFile(t, f)
	}
	files, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	var b strings.Builder
	for _, f := range files {
		b.WriteString(readFile(t, f))
		b.WriteString("\n")
	}
	return strings.TrimSpace(b.String())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue reads one unlabelled counter from a Prometheus text page (-1: unreadable).
func metricValue(url, name string) float64 {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
