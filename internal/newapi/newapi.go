package newapi

import (
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
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// Instance is a running, bootstrapped New API.
type Instance struct {
	URL string
	DB  string // "sqlite" or "mariadb"
	// Keys are API keys New API issued (48 letters and digits, without "sk-"), all enabled,
	// owned by the root user (an admin, so a channel suffix "sk-KEY-<id>" is accepted).
	Keys []string
	// ChannelID is the one channel, an OpenAI-compatible upstream serving Model.
	ChannelID int
	Model     string
	rootToken string
}

// Options says which database New API runs on and where its channel points.
type Options struct {
	DB          string // "sqlite" (default) or "mariadb" (a throwaway server, testenv.MariaDB)
	UpstreamURL string // the channel's base URL (an OpenAI-compatible server)
	Model       string // the channel's model ("gpt-4o-mini")
	Keys        int    // how many API keys to issue (1)
}

// Start runs New API as a process in a temporary directory (killed at cleanup), waits for
// it, and bootstraps it as ../shared/newapi/README.md says: setup, root login, the channel
// monitor off, one channel, o.Keys API keys. It skips when there is no New API binary.
func Start(t *testing.T, o Options) *Instance {
	t.Helper()
	bin := Binary(t)
	o = o.withDefaults()
	dir := t.TempDir()
	env := []string{}
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "SQL_DSN", "LOG_SQL_DSN", "REDIS_CONN_STRING", "NODE_TYPE", "FRONTEND_BASE_URL", "SQLITE_PATH", "PORT":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "CRITICAL_RATE_LIMIT_ENABLE=false",
		"GLOBAL_API_RATE_LIMIT_ENABLE=false", "GLOBAL_WEB_RATE_LIMIT_ENABLE=false", "SHUTDOWN_TIMEOUT_SECONDS=5")
	switch o.DB {
	case "", "sqlite":
		o.DB = "sqlite"
		env = append(env, "SQLITE_PATH="+filepath.Join(dir, "newapi.db")+"?_busy_timeout=30000")
	case "mariadb":
		env = append(env, "SQL_DSN="+testenv.MariaDB(t, "newapi"))
	default:
		t.Fatalf("newapi: unknown database %q", o.DB)
	}
	// New API listens on every interface, on a port picked free a moment before; its own
	// database connections may take that port as their local port first. Then it exits with
	// "address already in use", and another port is tried.
	var in *Instance
	for attempt := 1; in == nil; attempt++ {
		port := testenv.FreePort(t)
		cmd := exec.Command(bin, "--log-dir", filepath.Join(dir, "logs"))
		cmd.Dir, cmd.Env = dir, append(env[:len(env):len(env)], "PORT="+strconv.Itoa(port))
		proc := testenv.StartProcess(t, "newapi ("+o.DB+")", cmd, filepath.Join(dir, "newapi-"+strconv.Itoa(attempt)+".log"))
		in = waitReady(t, proc, "http://127.0.0.1:"+strconv.Itoa(port), attempt < 3)
		if in != nil {
			in.DB, in.Model = o.DB, o.Model
		}
	}
	in.bootstrap(t, o)
	return in
}

// Attach bootstraps, as Start does, a fresh New API someone else runs (a container), reached
// at url; db names its database for the record.
func Attach(t *testing.T, url, db string, o Options) *Instance {
	t.Helper()
	o = o.withDefaults()
	in := &Instance{URL: url, DB: db, Model: o.Model}
	in.bootstrap(t, o)
	return in
}

func (o Options) withDefaults() Options {
	if o.Model == "" {
		o.Model = "gpt-4o-mini"
	}
	if o.Keys == 0 {
		o.Keys = 1
	}
	return o
}

// waitReady waits for New API's /api/status. It returns nil when the process exited because
// its port was taken and retry allows another try; any other exit, or 120 s, fails the test.
func waitReady(t *testing.T, proc *testenv.Process, url string, retry bool) *Instance {
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(url + "/api/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return &Instance{URL: url}
			}
		}
		select {
		case <-proc.Exited:
			log := testenv.Tail(proc.Log, 40)
			if retry && strings.Contains(log, "address already in use") {
				t.Logf("newapi: its port was taken before it could listen; trying another")
				return nil
			}
			t.Fatalf("newapi exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("newapi not ready within 120s:\n%s", testenv.Tail(proc.Log, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (in *Instance) bootstrap(t *testing.T, o Options) {
	t.Helper()
	const password = "sentinel-conformance-root"
	in.call(t, "POST", "/api/setup", map[string]any{"username": "root", "password": password,
		"confirmPassword": password, "SelfUseModeEnabled": true, "DemoSiteEnabled": false}, nil)
	var login struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	in.call(t, "POST", "/api/user/login", map[string]any{"username": "root", "password": password}, &login)
	if login.Data.AccessToken == "" {
		t.Fatal("newapi: login gave no access token")
	}
	in.rootToken = login.Data.AccessToken
	in.call(t, "PUT", "/api/option/", map[string]any{"key": "performance_setting.monitor_enabled", "value": "false"}, nil)
	in.call(t, "POST", "/api/channel/", map[string]any{"mode": "single", "channel": map[string]any{
		"type": 1, "name": "fake", "key": "sk-x", "base_url": o.UpstreamURL, "models": o.Model, "group": "default", "status": 1}}, nil)
	var channels struct {
		Data struct {
			Items []struct {
				ID int `json:"id"`
			} `json:"items"`
		} `json:"data"`
	}
	in.call(t, "GET", "/api/channel/?p=1&page_size=10", nil, &channels)
	if len(channels.Data.Items) > 0 {
		in.ChannelID = channels.Data.Items[0].ID
	}
	for i := 0; i < o.Keys; i++ {
		in.call(t, "POST", "/api/token/", map[string]any{"name": fmt.Sprintf("key%d", i), "remain_quota": 500000,
			"expired_time": -1, "unlimited_quota": true}, nil)
	}
	var tokens struct {
		Data struct {
			Items []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			} `json:"items"`
		} `json:"data"`
	}
	in.call(t, "GET", "/api/token/?p=1&size=50", nil, &tokens)
	byName := map[string]int{}
	for _, it := range tokens.Data.Items {
		byName[it.Name] = it.ID
	}
	for i := 0; i < o.Keys; i++ {
		id, ok := byName[fmt.Sprintf("key%d", i)]
		if !ok {
			t.Fatalf("newapi: token key%d not listed", i)
		}
		var key struct {
			Data struct {
				Key string `json:"key"`
			} `json:"data"`
		}
		in.call(t, "POST", "/api/token/"+strconv.Itoa(id)+"/key", nil, &key)
		k := strings.TrimPrefix(key.Data.Key, "sk-")
		if len(k) != 48 {
			t.Fatalf("newapi: token key%d: unexpected key form (%d characters)", i, len(k))
		}
		in.Keys = append(in.Keys, k)
	}
}

// call makes an admin API call and fails the test unless New API says "success": true.
func (in *Instance) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, in.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if in.rootToken != "" {
		req.Header.Set("Authorization", "Bearer "+in.rootToken)
		req.Header.Set("New-Api-User", "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("newapi: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ok struct {
		Success bool   `json:"success"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &ok); err != nil || !ok.Success {
		t.Fatalf("newapi: %s %s: %d %s", method, path, resp.StatusCode, truncate(string(raw), 300))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("newapi: %s %s: %v", method, path, err)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
