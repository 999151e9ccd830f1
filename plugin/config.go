package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// Config is the middleware's options as Traefik decodes them (mapstructure, case-insensitive
// field names; durations are strings; lists arrive as "a,b" from labels). Every option is
// checked once in New; nothing is parsed per request.
//
// Secrets are never taken inline: Traefik shows plugin options in its API and dashboard, so
// each secret names a file or an environment variable instead.
type Config struct {
	// AdmindURL is the base URL of admind's internal listener, e.g. http://admind:9090.
	AdmindURL string
	// AdmindTimeout bounds one call to admind ("1s").
	AdmindTimeout string
	// InternalTokenFile / InternalTokenEnv: the bearer token for admind's internal API.
	InternalTokenFile string
	InternalTokenEnv  string
	// HMACSecretFile / HMACSecretEnv: the secret keys are hashed with (same as admind's).
	HMACSecretFile string
	HMACSecretEnv  string

	// RedisAddr is host:port of Redis; empty means "no Redis, always ask admind".
	RedisAddr         string
	RedisPasswordFile string
	RedisPasswordEnv  string
	RedisDB           int
	// RedisTimeout bounds dialing and each round trip ("100ms").
	RedisTimeout string
	// RedisPoolSize is the number of idle connections kept.
	RedisPoolSize int
	// RedisRetryInterval: after a Redis failure, Redis is skipped for this long ("1s") so a
	// dead or hung Redis costs one timeout per interval, not one per request.
	RedisRetryInterval string
	// RedisSentinels, instead of RedisAddr: Redis Sentinels (host:port) asked which server is
	// the primary named RedisMasterName; after a failure the plugin asks them again.
	RedisSentinels  []string
	RedisMasterName string

	// TrustedProxies are CIDRs (or single addresses) whose X-Forwarded-For is believed.
	TrustedProxies []string
	// RelayAddresses are CIDRs (or single addresses) that relay connections without naming
	// the client: a NAT or port-forwarding gateway, a userland proxy. A keyed request whose
	// client address is one of them is refused (403 client_address_hidden), never bound: a
	// binding to a relay would let through everyone behind it. A trusted proxy that sends no
	// X-Forwarded-For is treated the same way.
	RelayAddresses []string
	// DetectGateways adds the default gateways of the network Traefik runs in (from
	// /proc/net/route and /proc/net/ipv6_route) to RelayAddresses: in a Docker container,
	// the address the engine's userland proxy connects from. Default true.
	DetectGateways bool

	// FailsafeMode decides what happens when neither cache nor admind can decide:
	// "closed" answers 503, "open" forwards the request unbound.
	FailsafeMode string
	// Mode is "enforce" (refuse) or "monitor" (decide and record, never block).
	Mode string

	// CacheTTL bounds how stale a locally cached decision may get while the binding generation
	// in Redis cannot be read ("2s"; see runtime.go).
	CacheTTL string
	// CacheSize bounds the local cache (entries).
	CacheSize int

	// RequireKey refuses requests that carry no API key (401) instead of passing them on.
	RequireKey bool

	// DashboardRoutes are gin route patterns ("/api/user/self", "/api/user/:id") where New
	// API reads Authorization as a dashboard login (JWT or access token), not as an API key.
	// Empty means New API's own table (newapi_routes.go). See routes.go.
	DashboardRoutes []string
	// KeyRoutes are gin route patterns where New API reads an API key; a path matching one
	// is checked even when it matches a dashboard route too. Empty means New API's table.
	KeyRoutes []string
	// AllowEncodedSlash lets paths spell "/" or "\" as %2F or %5C through; by default they
	// are refused (400), as New API's router would split them differently.
	AllowEncodedSlash bool

	// MissingSecrets is what New does when a secret's file or environment variable cannot be
	// read: "fail" (the default: New fails, so Traefik builds no router with this middleware
	// and serves nothing unprotected) or "refuse" (New succeeds and the middleware answers
	// every request 503 sentinel_unconfigured). "refuse" exists for checks that run without
	// the secrets, such as the Traefik Plugin Catalog's; a deployment keeps "fail".
	MissingSecrets string
}

// CreateConfig returns the defaults; Traefik decodes the user's options on top of them.
func CreateConfig() *Config {
	return &Config{
		AdmindTimeout:      "1s",
		RedisTimeout:       "100ms",
		RedisPoolSize:      64,
		RedisRetryInterval: "1s",
		FailsafeMode:       "closed",
		Mode:               "enforce",
		CacheTTL:           "2s",
		CacheSize:          100000,
		DetectGateways:     true,
		MissingSecrets:     "fail",
	}
}

// options is Config after validation: what the middleware was configured with (admind's
// runtime settings are another thing, read from Redis by runtime.go).
type options struct {
	decideURL     string
	interceptURL  string
	confirmURL    string
	releaseURL    string
	admindTimeout time.Duration
	internalToken string
	hmacSecret    []byte

	redis redisOptions

	trustedProxies []netip.Prefix
	relays         []netip.Prefix // RelayAddresses and, when detected, the default gateways
	failOpen       bool
	monitor        bool
	cacheTTL       time.Duration
	cacheSize      int
	requireKey     bool

	dashboardRoutes   *routeSet
	keyRoutes         *routeSet
	routeVerdicts     *routeVerdicts // what the two tables said, by path
	allowEncodedSlash bool

	// secretsMissing, with missingSecrets "refuse": why the secrets could not be read. The
	// middleware then refuses every request (unconfigured).
	secretsMissing error
}

const maxCacheSize = 10000000

// parseConfig validates every option and reports all problems at once.
func parseConfig(c *Config) (*options, error) {
	s := &options{}
	var errs, missing []error
	bad := func(format string, args ...interface{}) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	// A secret whose file or variable cannot be read is missing rather than misconfigured:
	// missingSecrets decides whether that fails New.
	absent := func(format string, args ...interface{}) {
		missing = append(missing, fmt.Errorf(format, args...))
	}

	u, err := url.Parse(c.AdmindURL)
	if c.AdmindURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("admindURL must be an http(s) URL such as http://admind:9090, got %q", c.AdmindURL)
	} else {
		base := strings.TrimRight(c.AdmindURL, "/")
		s.decideURL = base + pathDecide
		s.interceptURL = base + pathIntercepts
		s.confirmURL = base + pathConfirm
		s.releaseURL = base + pathRelease
	}
	s.admindTimeout = parsePositiveDuration("admindTimeout", c.AdmindTimeout, bad)

	s.internalToken = readSecret("internalToken", c.InternalTokenFile, c.InternalTokenEnv, true, bad, absent)
	secret := readSecret("hmacSecret", c.HMACSecretFile, c.HMACSecretEnv, true, bad, absent)
	if secret != "" && len(secret) < 16 {
		bad("hmacSecret must be at least 16 bytes, got %d", len(secret))
	}
	s.hmacSecret = []byte(secret)

	s.redis.addr = c.RedisAddr
	if c.RedisAddr != "" {
		if _, err := netip.ParseAddrPort(c.RedisAddr); err != nil && !looksLikeHostPort(c.RedisAddr) {
			bad("redisAddr must be host:port, got %q", c.RedisAddr)
		}
	}
	for _, a := range c.RedisSentinels {
		if a = strings.TrimSpace(a); a == "" {
			continue
		} else if _, err := netip.ParseAddrPort(a); err != nil && !looksLikeHostPort(a) {
			bad("redisSentinels must be host:port entries, got %q", a)
		} else {
			s.redis.sentinels = append(s.redis.sentinels, a)
		}
	}
	s.redis.masterName = strings.TrimSpace(c.RedisMasterName)
	switch {
	case len(s.redis.sentinels) > 0 && c.RedisAddr != "":
		bad("set redisAddr or redisSentinels, not both")
	case len(s.redis.sentinels) > 0 && s.redis.masterName == "":
		bad("redisMasterName is required with redisSentinels")
	}
	s.redis.password = readSecret("redisPassword", c.RedisPasswordFile, c.RedisPasswordEnv, false, bad, absent)
	if c.RedisDB < 0 || c.RedisDB > 15 {
		bad("redisDB must be 0-15, got %d", c.RedisDB)
	}
	s.redis.db = c.RedisDB
	s.redis.timeout = parsePositiveDuration("redisTimeout", c.RedisTimeout, bad)
	s.redis.retryInterval = parsePositiveDuration("redisRetryInterval", c.RedisRetryInterval, bad)
	if c.RedisPoolSize < 1 || c.RedisPoolSize > 4096 {
		bad("redisPoolSize must be 1-4096, got %d", c.RedisPoolSize)
	}
	s.redis.poolSize = c.RedisPoolSize

	s.trustedProxies, err = identity.ParseAddressList("trustedProxies", c.TrustedProxies)
	if err != nil {
		errs = append(errs, err)
	}
	s.relays, err = identity.ParseAddressList("relayAddresses", c.RelayAddresses)
	if err != nil {
		errs = append(errs, err)
	}
	if c.DetectGateways {
		s.relays = append(s.relays, defaultGateways()...)
	}

	switch c.FailsafeMode {
	case "closed":
	case "open":
		s.failOpen = true
	default:
		bad(`failsafeMode must be "closed" or "open", got %q`, c.FailsafeMode)
	}
	switch c.Mode {
	case "enforce":
	case "monitor":
		s.monitor = true
	default:
		bad(`mode must be "enforce" or "monitor", got %q`, c.Mode)
	}

	s.cacheTTL = parsePositiveDuration("cacheTTL", c.CacheTTL, bad)
	if c.CacheSize < 1 || c.CacheSize > maxCacheSize {
		bad("cacheSize must be 1-%d, got %d", maxCacheSize, c.CacheSize)
	}
	s.cacheSize = c.CacheSize
	s.requireKey = c.RequireKey

	// Defaults are applied here, not in CreateConfig: Traefik decodes a user's list over the
	// default one element by element, so a shorter list would keep the default's tail.
	dashboard, keys := c.DashboardRoutes, c.KeyRoutes
	if len(dashboard) == 0 {
		dashboard = newAPIDashboardRoutes
	}
	if len(keys) == 0 {
		keys = newAPIKeyRoutes
	}
	s.dashboardRoutes = parseRoutes("dashboardRoutes", dashboard, bad)
	s.keyRoutes = parseRoutes("keyRoutes", keys, bad)
	s.routeVerdicts = newRouteVerdicts()
	s.allowEncodedSlash = c.AllowEncodedSlash

	refuseWithoutSecrets := false
	switch c.MissingSecrets {
	case "fail":
	case "refuse":
		refuseWithoutSecrets = true
	default:
		bad(`missingSecrets must be "fail" or "refuse", got %q`, c.MissingSecrets)
	}
	if !refuseWithoutSecrets {
		errs = append(errs, missing...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sentinel: invalid configuration: %w", errors.Join(errs...))
	}
	if len(missing) > 0 {
		s.secretsMissing = errors.Join(missing...)
	}
	return s, nil
}

func parsePositiveDuration(name, value string, bad func(string, ...interface{})) time.Duration {
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		bad("%s must be a positive duration such as \"500ms\", got %q", name, value)
		return 0
	}
	return d
}

// readSecret takes a secret from exactly one of a file or an environment variable. bad hears
// of a misconfiguration, absent of a file or variable that cannot be read.
func readSecret(name, file, env string, required bool, bad, absent func(string, ...interface{})) string {
	switch {
	case file != "" && env != "":
		bad("%sFile and %sEnv are both set; choose one", name, name)
	case file != "":
		b, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the secret file
		if err != nil {
			absent("%sFile: cannot read %q: %v", name, file, err)
			return ""
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			absent("%sFile %q is empty", name, file)
		}
		return v
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			absent("%sEnv: environment variable %s is empty or unset", name, env)
		}
		return v
	case required:
		bad("%s is required: set %sFile (a path) or %sEnv (an environment variable name)", name, name, name)
	}
	return ""
}

func looksLikeHostPort(s string) bool {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return false
	}
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return !strings.ContainsAny(s[:i], " /")
}

// cacheRegistryKey identifies the local cache a middleware named name shares with the
// instances Traefik rebuilt before it. Cached bindings carry hashes made with the secret, so
// the secret is part of it; a cache is kept fresh by the Redis it is filled from (redisKey),
// so that Redis is too; the hot path's entries hold for the trusted proxies and relays they
// were recorded under, so those are too.
func (o *options) cacheRegistryKey(name, redisKey string) string {
	return name + "|" + fingerprint(string(o.hmacSecret)) + "|" + strconv.Itoa(o.cacheSize) + "|" +
		o.cacheTTL.String() + "|" + redisKey + "|" + fmt.Sprint(o.trustedProxies) + "|" + fmt.Sprint(o.relays)
}

// fingerprint identifies a secret in a registry key without keeping it readable.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:8])
}
