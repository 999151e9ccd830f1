// Package deploycheck statically checks the deployment files against the code they drive:
// docker-compose.yml (loaded with compose-go, the loader Docker Compose uses), .env.example,
// the Traefik static and dynamic configs, and the New API label examples. There is no Docker
// engine on CI machines, so this is what proves the deployment is consistent: every admind
// variable exists and the set loads as admind's config, every plugin option parses as
// Traefik would hand it to New, every router names entrypoints and middlewares that exist.
package deploycheck

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-viper/mapstructure/v2"
	"gopkg.in/yaml.v3"

	"github.com/key-ip-sentinel/sentinel/admind/internal/config"
	"github.com/key-ip-sentinel/sentinel/plugin"
)

// ModulePath is the plugin's module, as Traefik's localPlugins must name it.
const ModulePath = "github.com/key-ip-sentinel/sentinel"

type checker struct {
	root string
	errs []error
	tmp  string // dummy secret files live here
	// From the compose file: what the Traefik container has.
	traefikSecrets map[string]bool
	entryPoints    map[string]bool
	fileMiddleware map[string]bool
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// Check checks the files under root and returns every problem found.
func Check(root string) []error {
	tmp, err := os.MkdirTemp("", "deploycheck-")
	if err != nil {
		return []error{err}
	}
	defer os.RemoveAll(tmp)
	c := &checker{root: root, tmp: tmp, traefikSecrets: map[string]bool{}, entryPoints: map[string]bool{}, fileMiddleware: map[string]bool{}}
	p := c.compose()
	c.envExample()
	if p != nil {
		c.services(p)
		c.admindEnv(p)
		c.traefikStatic(p)
	}
	for _, f := range []string{"traefik/dynamic/sentinel.yml", "traefik/dynamic/admin.yml", "traefik/examples/newapi-file-provider.yml"} {
		c.dynamicFile(f)
	}
	c.patternA()
	c.patternB()
	return c.errs
}

func (c *checker) compose() *types.Project {
	opts, err := cli.NewProjectOptions([]string{filepath.Join(c.root, "docker-compose.yml")},
		cli.WithWorkingDirectory(c.root), cli.WithEnvFiles(filepath.Join(c.root, ".env.example")), cli.WithDotEnv,
		cli.WithName("key-ip-sentinel"))
	if err != nil {
		c.fail("docker-compose.yml: %v", err)
		return nil
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		c.fail("docker-compose.yml does not load: %v", err)
		return nil
	}
	return p
}

var varRef = regexp.MustCompile(`\$\{([A-Z0-9_]+)`)

// envExample: every ${VAR} in the compose file is documented in .env.example and the other
// way round.
func (c *checker) envExample() {
	compose, err1 := os.ReadFile(filepath.Join(c.root, "docker-compose.yml"))
	example, err2 := os.ReadFile(filepath.Join(c.root, ".env.example"))
	if err1 != nil || err2 != nil {
		c.fail(".env.example: %v %v", err1, err2)
		return
	}
	used := map[string]bool{}
	for _, m := range varRef.FindAllStringSubmatch(string(compose), -1) {
		used[m[1]] = true
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(example), "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			documented[k] = true
		}
	}
	for _, k := range sortedKeys(used) {
		if !documented[k] {
			c.fail("docker-compose.yml uses ${%s}, which .env.example does not document", k)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !used[k] {
			c.fail(".env.example sets %s, which docker-compose.yml does not use", k)
		}
	}
}

func (c *checker) services(p *types.Project) {
	for _, name := range []string{"traefik", "admind", "redis", "postgres"} {
		if _, ok := p.Services[name]; !ok {
			c.fail("docker-compose.yml: service %s is missing", name)
		}
	}
	if n, ok := p.Networks["shared_network"]; !ok || !bool(n.External) {
		c.fail("docker-compose.yml: the network shared_network must be external (New API joins it)")
	}
	for name, s := range p.Services {
		if name != "traefik" && s.HealthCheck == nil {
			c.fail("service %s has no health check", name)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				c.fail("service %s depends on %s without condition: service_healthy", name, dep)
			}
		}
		if name != "traefik" && len(s.Ports) > 0 {
			c.fail("service %s publishes ports; only Traefik may face the network", name)
		}
		for k := range s.Labels {
			c.noSecretInLabel(name, k)
		}
	}
	t, ok := p.Services["traefik"]
	if !ok {
		return
	}
	if !strings.HasPrefix(t.Image, "traefik:v3.6") {
		c.fail("traefik image %q is not pinned to the v3.6 line", t.Image)
	}
	if _, ok := t.Networks["shared_network"]; !ok {
		c.fail("traefik is not on shared_network: it cannot reach New API")
	}
	published := false
	for _, port := range t.Ports {
		if port.Published == "8016" && port.Target == 8016 {
			published = true
		}
	}
	if !published {
		c.fail("traefik must publish its entrypoint on 8016 by default")
	}
	for _, s := range t.Secrets {
		c.traefikSecrets[s.Source] = true
	}
	// The plugin's manifest, go.mod and package, mounted one by one: Traefik faces the
	// internet, and a mount of the whole directory would hand it ./secrets/ as well.
	mounted := map[string]string{}
	for _, v := range t.Volumes {
		mounted[v.Target] = v.Source
		if rel, err := filepath.Rel(c.root, v.Source); err == nil && (rel == "." || rel == "secrets" || strings.HasPrefix(rel, "secrets"+string(filepath.Separator))) {
			c.fail("traefik mounts %s: that holds the secrets; mount the plugin's files one by one", v.Source)
		}
	}
	pluginDir := "/plugins-local/src/" + ModulePath
	for _, f := range []string{".traefik.yml", "go.mod", "plugin"} {
		if src, ok := mounted[pluginDir+"/"+f]; !ok || filepath.Clean(src) != filepath.Join(c.root, f) {
			c.fail("traefik must mount ./%s at %s/%s (got %q)", f, pluginDir, f, src)
		}
	}
}

// noSecretInLabel: labels are visible to anyone who can list containers.
func (c *checker) noSecretInLabel(where, k string) {
	lk := strings.ToLower(k)
	for _, word := range []string{"password", "token", "secret", "key"} {
		if strings.Contains(lk, word) && !strings.HasSuffix(lk, "file") && !strings.HasSuffix(lk, "env") && !strings.HasSuffix(lk, "paths") {
			c.fail("%s: label %s looks like a secret; use a file (…File option) instead", where, k)
		}
	}
}

// admindEnv: every variable given to admind is one admind reads, secrets come from declared
// Docker secrets, and the whole set loads as admind's configuration.
func (c *checker) admindEnv(p *types.Project) {
	s, ok := p.Services["admind"]
	if !ok {
		return
	}
	known := map[string]bool{}
	_, _ = config.Load(func(k string) string { known[k] = true; return "" })
	secrets := map[string]bool{}
	for _, sec := range s.Secrets {
		secrets[sec.Source] = true
		if _, ok := p.Secrets[sec.Source]; !ok {
			c.fail("admind uses secret %s, which is not declared", sec.Source)
		}
	}
	env := map[string]string{}
	for k, v := range s.Environment {
		if !known[k] {
			c.fail("admind: environment variable %s is not one admind reads", k)
			continue
		}
		if v == nil {
			continue
		}
		env[k] = *v
		if strings.HasSuffix(k, "_FILE") {
			name, ok := strings.CutPrefix(*v, "/run/secrets/")
			if !ok || !secrets[name] {
				c.fail("admind: %s=%s is not a secret mounted into admind", k, *v)
				continue
			}
			env[k] = c.dummySecret(name)
		}
	}
	if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
		c.fail("admind's environment in docker-compose.yml does not load: %v", err)
	}
}

// dummySecret writes a stand-in for a Docker secret and returns its path.
func (c *checker) dummySecret(name string) string {
	path := filepath.Join(c.tmp, name)
	v := "dummy-secret-value-0123456789abcdef0123456789"
	if name == "database_url" {
		v = "postgres://sentinel:x@postgres:5432/sentinel"
	}
	_ = os.WriteFile(path, []byte(v), 0o600)
	return path
}

func (c *checker) readYAML(rel string) map[string]any {
	b, err := os.ReadFile(filepath.Join(c.root, rel))
	if err != nil {
		c.fail("%s: %v", rel, err)
		return nil
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		c.fail("%s: %v", rel, err)
		return nil
	}
	return m
}

// traefikLogs refuses a Traefik static configuration whose logs would hold raw keys. It reads
// the options as Traefik v3.6.12 does (pkg/observability/types/logs.go,
// pkg/middlewares/accesslog, pkg/middlewares/recovery), which runs confirmed:
//   - "accessLog:" with no value leaves the access log off; any value turns it on;
//   - the access log writes RequestPath, query (?key=) included, unless fields.names drops it,
//     or else fields.defaultMode does;
//   - it writes each request header headers.names keeps, and every header when
//     headers.defaultMode is keep (left out, it is drop). Carriers (Authorization,
//     X-Api-Key, …) and New API's session cookie are headers, so this file keeps none;
//   - at DEBUG and TRACE the recovery middleware logs the URL, query included, of every
//     aborted request: a client cancelling a stream, an upstream hanging up mid-answer.
func (c *checker) traefikLogs(rel string, st map[string]any) {
	level, _ := get(st, "log", "level").(string)
	switch strings.ToUpper(level) {
	case "DEBUG", "TRACE":
		c.fail("%s: log.level %s logs the URL, ?key= included, of every aborted request: use INFO or above", rel, level)
	}
	al := get(st, "accessLog")
	if al == nil {
		return
	}
	mode, _ := get(al, "fields", "names", "RequestPath").(string)
	if mode != "keep" && mode != "drop" {
		mode, _ = get(al, "fields", "defaultMode").(string)
	}
	if mode != "drop" {
		c.fail("%s: the access log must drop RequestPath (?key= carries raw keys)", rel)
	}
	if get(al, "fields", "headers", "defaultMode") == "keep" {
		c.fail("%s: the access log keeps every request header (fields.headers.defaultMode): headers carry raw keys", rel)
	}
	headers, _ := get(al, "fields", "headers", "names").(map[string]any)
	for h, m := range headers {
		if m == "keep" {
			c.fail("%s: the access log keeps request header %s: headers carry raw keys and New API's session", rel, h)
		}
	}
}

// get walks nested maps. Traefik matches option names case-insensitively (its loader,
// paerser, compares them with strings.EqualFold), so a name spelled otherwise is found too;
// the exact spelling wins when both are there.
func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		v, ok := mm[p]
		if !ok {
			for k, kv := range mm {
				if strings.EqualFold(k, p) {
					v = kv
					break
				}
			}
		}
		m = v
	}
	return m
}

func (c *checker) traefikStatic(p *types.Project) {
	const rel = "traefik/static.yml"
	st := c.readYAML(rel)
	if st == nil {
		return
	}
	eps, _ := get(st, "entryPoints").(map[string]any)
	for name := range eps {
		c.entryPoints[name] = true
	}
	if get(st, "entryPoints", "web", "address") != ":8016" {
		c.fail("%s: entrypoint web must listen on :8016 (the port compose publishes)", rel)
	}
	if get(st, "experimental", "abortOnPluginFailure") != true {
		c.fail("%s: experimental.abortOnPluginFailure must be true: a plugin that fails to load must not leave New API unprotected", rel)
	}
	if get(st, "experimental", "localPlugins", "sentinel", "moduleName") != ModulePath {
		c.fail("%s: experimental.localPlugins.sentinel.moduleName must be %s", rel, ModulePath)
	}
	if get(st, "providers", "docker", "exposedByDefault") != false {
		c.fail("%s: providers.docker.exposedByDefault must be false", rel)
	}
	if get(st, "providers", "docker", "network") != "shared_network" {
		c.fail("%s: providers.docker.network must be shared_network", rel)
	}
	dir, _ := get(st, "providers", "file", "directory").(string)
	found := false
	if t, ok := p.Services["traefik"]; ok {
		for _, v := range t.Volumes {
			if v.Target == dir && filepath.Clean(v.Source) == filepath.Join(c.root, "traefik/dynamic") {
				found = true
			}
		}
	}
	if !found {
		c.fail("%s: the file provider reads %q, which compose does not mount from traefik/dynamic", rel, dir)
	}
	c.traefikLogs(rel, st)
	// The file provider's middlewares are known before routers are checked.
	entries, _ := os.ReadDir(filepath.Join(c.root, "traefik/dynamic"))
	for _, e := range entries {
		m := c.readYAML(filepath.Join("traefik/dynamic", e.Name()))
		mws, _ := get(m, "http", "middlewares").(map[string]any)
		for name := range mws {
			c.fileMiddleware[name] = true
		}
	}
}

// dynamicFile checks routers and the sentinel middleware options of one file-provider file.
func (c *checker) dynamicFile(rel string) {
	m := c.readYAML(rel)
	if m == nil {
		return
	}
	mws, _ := get(m, "http", "middlewares").(map[string]any)
	for name := range mws {
		if opts, ok := get(mws, name, "plugin", "sentinel").(map[string]any); ok {
			c.pluginOptions(rel+": middleware "+name, opts)
		}
	}
	services, _ := get(m, "http", "services").(map[string]any)
	routers, _ := get(m, "http", "routers").(map[string]any)
	for name := range routers {
		where := rel + ": router " + name
		for _, ep := range list(get(routers, name, "entryPoints")) {
			if !c.entryPoints[ep] {
				c.fail("%s: entrypoint %s does not exist in traefik/static.yml", where, ep)
			}
		}
		for _, mw := range list(get(routers, name, "middlewares")) {
			c.middlewareRef(where, mw, "@file", mws)
		}
		if svc, _ := get(routers, name, "service").(string); svc != "" && !strings.Contains(svc, "@") {
			if _, ok := services[svc]; !ok {
				c.fail("%s: service %s is not defined", where, svc)
			}
		}
	}
}

// middlewareRef checks a router's middleware exists: name@file in traefik/dynamic, a bare
// name in the same provider (local), name@docker among the same container's labels.
func (c *checker) middlewareRef(where, ref, provider string, local map[string]any) {
	name, prov, hasProv := strings.Cut(ref, "@")
	if !hasProv {
		prov = strings.TrimPrefix(provider, "@")
	}
	switch prov {
	case "file":
		if !c.fileMiddleware[name] && (provider != "@file" || local[name] == nil) {
			c.fail("%s: middleware %s does not exist in traefik/dynamic", where, ref)
		}
	case "docker":
		if local[name] == nil {
			c.fail("%s: middleware %s is not defined by these labels", where, ref)
		}
	default:
		c.fail("%s: middleware %s: unknown provider", where, ref)
	}
	if name == "" {
		c.fail("%s: empty middleware reference", where)
	}
}

func list(v any) []string {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case string:
		return strings.Split(x, ",")
	}
	return nil
}

// pluginOptions decodes options the way Traefik hands them to the plugin (mapstructure,
// weakly typed, "a,b" strings to lists, names case-insensitive, unknown names dropped
// silently — so they are reported here), then calls New.
func (c *checker) pluginOptions(where string, opts map[string]any) {
	fields := map[string]bool{}
	t := reflect.TypeOf(plugin.Config{})
	for i := 0; i < t.NumField(); i++ {
		fields[strings.ToLower(t.Field(i).Name)] = true
	}
	resolved := map[string]any{}
	for k, v := range opts {
		if !fields[strings.ToLower(k)] {
			c.fail("%s: %s is not a sentinel option (Traefik would drop it silently)", where, k)
			continue
		}
		if strings.EqualFold(k, "missingSecrets") && fmt.Sprint(v) != "fail" {
			c.fail("%s: missingSecrets=%v: a deployment keeps the default (fail), so a missing secret stops the router instead of refusing every request", where, v)
			continue
		}
		if s, ok := v.(string); ok && strings.HasSuffix(strings.ToLower(k), "file") {
			name, ok := strings.CutPrefix(s, "/run/secrets/")
			if !ok || !c.traefikSecrets[name] {
				c.fail("%s: %s=%s is not a secret mounted into the Traefik container", where, k, s)
				continue
			}
			v = c.dummySecret(name)
		}
		resolved[k] = v
	}
	cfg := plugin.CreateConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.StringToSliceHookFunc(","), WeaklyTypedInput: true, Result: cfg,
	})
	if err == nil {
		err = dec.Decode(resolved)
	}
	if err != nil {
		c.fail("%s: options do not decode: %v", where, err)
		return
	}
	if _, err := plugin.New(context.Background(), http.NotFoundHandler(), cfg, "deploycheck"); err != nil {
		c.fail("%s: the plugin refuses these options: %v", where, err)
	}
}

// labels checks a New API container's labels (Pattern A or B).
func (c *checker) labels(where string, labels map[string]string) {
	for k := range labels {
		c.noSecretInLabel(where, k)
	}
	if labels["traefik.enable"] != "true" {
		c.fail("%s: traefik.enable=true is missing (exposedByDefault is false)", where)
	}
	if labels["traefik.docker.network"] != "shared_network" {
		c.fail("%s: traefik.docker.network must be shared_network", where)
	}
	// Label-defined middlewares (sentinel@docker) and their plugin options.
	local := map[string]any{}
	opts := map[string]map[string]any{}
	routers := map[string]bool{}
	for k, v := range labels {
		parts := strings.Split(k, ".")
		switch {
		case len(parts) >= 6 && parts[1] == "http" && parts[2] == "middlewares" && parts[4] == "plugin" && parts[5] == "sentinel" && len(parts) == 7:
			if opts[parts[3]] == nil {
				opts[parts[3]] = map[string]any{}
			}
			opts[parts[3]][parts[6]] = v
			local[parts[3]] = true
		case len(parts) >= 4 && parts[1] == "http" && parts[2] == "middlewares":
			local[parts[3]] = true
		case len(parts) >= 4 && parts[1] == "http" && parts[2] == "routers":
			routers[parts[3]] = true
		default:
			if strings.HasPrefix(k, "traefik.") && !strings.HasPrefix(k, "traefik.http.services.") && k != "traefik.enable" && k != "traefik.docker.network" {
				c.fail("%s: unexpected label %s", where, k)
			}
		}
	}
	for name, o := range opts {
		c.pluginOptions(where+": middleware "+name, o)
	}
	if len(routers) == 0 {
		c.fail("%s: no router labels", where)
	}
	for r := range routers {
		prefix := "traefik.http.routers." + r + "."
		for _, ep := range strings.Split(labels[prefix+"entrypoints"], ",") {
			if !c.entryPoints[ep] {
				c.fail("%s: router %s: entrypoint %q does not exist in traefik/static.yml", where, r, ep)
			}
		}
		mws := labels[prefix+"middlewares"]
		if !strings.Contains(mws, "sentinel") {
			c.fail("%s: router %s does not attach the sentinel middleware", where, r)
		}
		for _, mw := range strings.Split(mws, ",") {
			c.middlewareRef(where+": router "+r, strings.TrimSpace(mw), "@docker", local)
		}
		if labels[prefix+"rule"] == "" {
			c.fail("%s: router %s has no rule", where, r)
		}
	}
}

func (c *checker) patternA() {
	const rel = "traefik/examples/newapi-compose.yml"
	opts, err := cli.NewProjectOptions([]string{filepath.Join(c.root, rel)}, cli.WithName("new-api"), cli.WithWorkingDirectory(filepath.Join(c.root, "traefik/examples")))
	if err != nil {
		c.fail("%s: %v", rel, err)
		return
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		c.fail("%s does not load: %v", rel, err)
		return
	}
	for name, s := range p.Services {
		if _, ok := s.Networks["shared_network"]; !ok {
			c.fail("%s: service %s is not on shared_network", rel, name)
		}
		if len(s.Ports) > 0 {
			c.fail("%s: service %s publishes a port: clients could bypass Sentinel", rel, name)
		}
		c.labels(rel+": service "+name, s.Labels)
	}
}

var labelArg = regexp.MustCompile(`--label '([^']*)'`)

func (c *checker) patternB() {
	const rel = "traefik/examples/newapi-docker-run.sh"
	b, err := os.ReadFile(filepath.Join(c.root, rel))
	if err != nil {
		c.fail("%s: %v", rel, err)
		return
	}
	labels := map[string]string{}
	for _, m := range labelArg.FindAllStringSubmatch(string(b), -1) {
		k, v, _ := strings.Cut(m[1], "=")
		labels[k] = v
	}
	if !strings.Contains(string(b), "--network shared_network") {
		c.fail("%s: the container must join shared_network", rel)
	}
	if regexp.MustCompile(`\s(-p|--publish)\s`).Match(b) {
		c.fail("%s: publishes a port: clients could bypass Sentinel", rel)
	}
	c.labels(rel, labels)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
