// Package config reads admind's configuration from the environment in one place and
// reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// Config is admind's effective configuration.
type Config struct {
	DatabaseURL string
	RedisAddr   string
	// RedisSentinels, when set, replace RedisAddr: the Sentinels name the primary of
	// RedisMasterName, and the client follows failovers.
	RedisSentinels  []string
	RedisMasterName string
	RedisPassword   string
	RedisDB         int
	HMACSecret      string
	InternalToken   string
	FailsafeMode    string

	ListenHost   string // empty: all interfaces
	AppPort      int    // public: /health, /ready, /metrics, /admin/api
	InternalPort int    // plugin-only: /internal/v1/*

	AdminUsername  string
	AdminPassword  string
	AdminJWTSecret string
	AdminTokenTTL  time.Duration
	// AdminTrustedProxies are the peers (Traefik) whose X-Forwarded-For names the admin's
	// address, for the login lockout and the audit log.
	AdminTrustedProxies []netip.Prefix
	// ConsoleHosts are the Host names (optionally host:port) the console and admin API answer
	// on; any other Host, New API's above all, gets 421 (httpapi.ConsoleHosts).
	ConsoleHosts []string

	AlertWebhookURL    string
	AlertWebhookFormat string
	AlertWebhookSecret string // signs webhook bodies (Standard Webhooks); never a runtime setting
	// E-mail alerts: the SMTP credentials (never runtime settings) and the defaults of the
	// runtime settings alert_email_to, smtp_addr, smtp_from.
	SMTPUsername, SMTPPassword       string
	AlertEmailTo, SMTPAddr, SMTPFrom string
	// AlertWebhookAllowPrivate lets the webhook be on a loopback, private or link-local
	// address (netguard); an operator's choice, never a runtime setting an admin token changes.
	AlertWebhookAllowPrivate bool
	AlertThresholdCount      int
	AlertThresholdSeconds    int
	AutoBanOnAlert           bool
	ArchiveDays              int
	LogRetentionDays         int
	ArchiveInterval          time.Duration // how often the archive job (one replica at a time) and intercept-log retention run

	BindPrefixV4 int
	BindPrefixV6 int
	// New first-use claims one source may make per window (0: no limit); a source is the
	// client address widened to ClaimPrefixV4 / ClaimPrefixV6.
	ClaimLimit         int
	ClaimWindowSeconds int
	ClaimPrefixV4      int
	ClaimPrefixV6      int
	// The key-scan detector's defaults (runtime settings scan_*).
	ScanThreshold     int
	ScanWindowSeconds int
	ScanBlockSeconds  int
	// The learning rule's defaults (runtime settings first_use_rule, learning_*).
	FirstUseRule          string
	LearningSlots         int
	LearningWindowSeconds int
	RedisEntryTTL         time.Duration // BINDING_CACHE_TTL: lifetime of a binding entry in Redis
	DBMaxConns            int
	DBMinConns            int // PostgreSQL connections kept open while idle (DB_MIN_CONNS)
	LogLevel              slog.Level
}

// Load reads the configuration. Every secret may also come from <NAME>_FILE.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		DatabaseURL:           r.secret("DATABASE_URL"),
		RedisAddr:             r.str("REDIS_ADDR", "127.0.0.1:6379"),
		RedisMasterName:       r.str("REDIS_MASTER_NAME", ""),
		RedisPassword:         r.secret("REDIS_PASSWORD"),
		RedisDB:               r.intIn("REDIS_DB", 0, 0, 15),
		HMACSecret:            r.secret("SENTINEL_HMAC_SECRET"),
		InternalToken:         r.secret("SENTINEL_INTERNAL_TOKEN"),
		FailsafeMode:          r.str("SENTINEL_FAILSAFE_MODE", "closed"),
		ListenHost:            r.str("LISTEN_HOST", ""),
		AppPort:               r.intIn("APP_PORT", 8080, 1, 65535),
		InternalPort:          r.intIn("INTERNAL_PORT", 9090, 1, 65535),
		BindPrefixV4:          r.intIn("BIND_PREFIX_V4", 32, 8, 32),
		BindPrefixV6:          r.intIn("BIND_PREFIX_V6", 64, 16, 128),
		ClaimLimit:            r.intIn("CLAIM_LIMIT", 30, 0, 1_000_000),
		ScanThreshold:         r.intIn("SCAN_THRESHOLD", 50, 0, 10_000),
		ScanWindowSeconds:     r.intIn("SCAN_WINDOW_SECONDS", 600, 1, 86_400),
		ScanBlockSeconds:      r.intIn("SCAN_BLOCK_SECONDS", 0, 0, 86_400),
		FirstUseRule:          r.str("FIRST_USE_RULE", "single"),
		LearningSlots:         r.intIn("LEARNING_SLOTS", 3, 1, bindings.MaxRuleEntries),
		LearningWindowSeconds: r.intIn("LEARNING_WINDOW_SECONDS", 86_400, 1, settings.MaxLearningWindowSeconds),
		ClaimWindowSeconds:    r.intIn("CLAIM_WINDOW_SECONDS", 60, 1, 86_400),
		ClaimPrefixV4:         r.intIn("CLAIM_PREFIX_V4", 32, 8, 32),
		ClaimPrefixV6:         r.intIn("CLAIM_PREFIX_V6", 64, 16, 128),
		RedisEntryTTL:         r.duration("BINDING_CACHE_TTL", time.Hour),
		DBMaxConns:            r.intIn("DB_MAX_CONNS", 20, 1, 1000),

		AdminUsername:  r.str("ADMIN_USERNAME", "admin"),
		AdminPassword:  r.secret("ADMIN_PASSWORD"),
		AdminJWTSecret: r.secret("ADMIN_JWT_SECRET"),
		AdminTokenTTL:  r.duration("ADMIN_TOKEN_TTL", time.Hour),

		AlertWebhookURL:          r.secret("ALERT_WEBHOOK_URL"),
		AlertWebhookFormat:       r.str("ALERT_WEBHOOK_FORMAT", "json"),
		AlertWebhookSecret:       r.secret("ALERT_WEBHOOK_SECRET"),
		SMTPUsername:             r.str("SMTP_USERNAME", ""),
		SMTPPassword:             r.secret("SMTP_PASSWORD"),
		AlertEmailTo:             r.str("ALERT_EMAIL_TO", ""),
		SMTPAddr:                 r.str("SMTP_ADDR", ""),
		SMTPFrom:                 r.str("SMTP_FROM", ""),
		AlertWebhookAllowPrivate: r.boolean("ALERT_WEBHOOK_ALLOW_PRIVATE"),
		AutoBanOnAlert:           r.boolean("AUTO_BAN_ON_ALERT"),
		AlertThresholdCount:      r.intIn("ALERT_THRESHOLD_COUNT", 5, 1, 1_000_000),
		AlertThresholdSeconds:    r.intIn("ALERT_THRESHOLD_SECONDS", 300, 1, 86_400),
		ArchiveDays:              r.intIn("ARCHIVE_DAYS", 30, 0, 3650),
		LogRetentionDays:         r.intIn("LOG_RETENTION_DAYS", 90, 0, 3650),
		ArchiveInterval:          r.duration("ARCHIVE_INTERVAL", time.Hour),
	}
	for _, a := range strings.Split(r.str("REDIS_SENTINELS", ""), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.RedisSentinels = append(c.RedisSentinels, a)
		}
	}
	if len(c.RedisSentinels) > 0 && c.RedisMasterName == "" {
		r.fail("REDIS_MASTER_NAME is required with REDIS_SENTINELS")
	}
	proxies, err := identity.ParseAddressList("ADMIN_TRUSTED_PROXIES", strings.Split(r.str("ADMIN_TRUSTED_PROXIES", ""), ","))
	if err != nil {
		r.fail("%v", err)
	}
	// Kept open while idle: after a quiet spell (every key in the plugins' caches), a burst of
	// first uses opening connections at once held decides near admindTimeout (bench storm p99
	// 0.7-1.0 s, some 503s; 0.17-0.50 s with half the pool kept open).
	c.DBMinConns = r.intIn("DB_MIN_CONNS", c.DBMaxConns/2, 0, c.DBMaxConns)
	c.AdminTrustedProxies = proxies
	for _, h := range strings.Split(r.str("CONSOLE_HOSTS", "localhost,127.0.0.1,[::1]"), ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h == "" {
			continue
		} else if strings.ContainsAny(h, "/ *") {
			r.fail("CONSOLE_HOSTS: %q is not a host name or host:port", h)
		} else {
			c.ConsoleHosts = append(c.ConsoleHosts, h)
		}
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = r.secret("PG_DSN")
	}
	if c.DatabaseURL == "" {
		r.fail("DATABASE_URL (or PG_DSN) is required")
	}
	if len(c.HMACSecret) < 16 {
		r.fail("SENTINEL_HMAC_SECRET must be at least 16 bytes (the plugin uses the same secret)")
	}
	if len(c.InternalToken) < 16 {
		r.fail("SENTINEL_INTERNAL_TOKEN must be at least 16 bytes")
	}
	if c.FailsafeMode != "closed" && c.FailsafeMode != "open" {
		r.fail(`SENTINEL_FAILSAFE_MODE must be "closed" or "open", got %q`, c.FailsafeMode)
	}
	if c.FirstUseRule != "single" && c.FirstUseRule != "learning" {
		r.fail(`FIRST_USE_RULE must be "single" or "learning", got %q`, c.FirstUseRule)
	}
	if c.AlertWebhookSecret != "" && len(c.AlertWebhookSecret) < 16 {
		r.fail("ALERT_WEBHOOK_SECRET must be at least 16 bytes")
	}
	if len(c.AdminPassword) < 8 {
		r.fail("ADMIN_PASSWORD must be at least 8 bytes")
	}
	if len(c.AdminJWTSecret) < 32 {
		r.fail("ADMIN_JWT_SECRET must be at least 32 bytes (got %d); generate one with: openssl rand -hex 32", len(c.AdminJWTSecret))
	}
	if c.AdminTokenTTL > 24*time.Hour {
		r.fail("ADMIN_TOKEN_TTL must be at most 24h, got %s", c.AdminTokenTTL)
	}
	if err := c.Settings().Validate(); err != nil {
		r.fail("runtime setting defaults: %v", err)
	}
	if c.AppPort == c.InternalPort {
		r.fail("APP_PORT and INTERNAL_PORT must differ: the internal API must not be on the public listener")
	}
	if err := c.LogLevel.UnmarshalText([]byte(r.str("LOG_LEVEL", "info"))); err != nil {
		r.fail("LOG_LEVEL must be debug, info, warn or error")
	}
	if len(r.errs) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.Join(r.errs...))
	}
	return c, nil
}

// Settings are the runtime settings the environment gives until an admin saves others.
func (c Config) Settings() settings.Settings {
	return settings.Settings{
		AlertWebhookURL:       c.AlertWebhookURL,
		AlertWebhookFormat:    c.AlertWebhookFormat,
		AlertThresholdCount:   c.AlertThresholdCount,
		AlertThresholdSeconds: c.AlertThresholdSeconds,
		AutoBanOnAlert:        c.AutoBanOnAlert,
		AlertEmailTo:          c.AlertEmailTo,
		SMTPAddr:              c.SMTPAddr,
		SMTPFrom:              c.SMTPFrom,
		ArchiveDays:           c.ArchiveDays,
		LogRetentionDays:      c.LogRetentionDays,
		FailsafeMode:          c.FailsafeMode,
		BindPrefixV4:          c.BindPrefixV4,
		BindPrefixV6:          c.BindPrefixV6,
		ClaimLimit:            c.ClaimLimit,
		ClaimWindowSeconds:    c.ClaimWindowSeconds,
		ClaimPrefixV4:         c.ClaimPrefixV4,
		ClaimPrefixV6:         c.ClaimPrefixV6,
		ScanThreshold:         c.ScanThreshold,
		ScanWindowSeconds:     c.ScanWindowSeconds,
		ScanBlockSeconds:      c.ScanBlockSeconds,
		FirstUseRule:          c.FirstUseRule,
		LearningSlots:         c.LearningSlots,
		LearningWindowSeconds: c.LearningWindowSeconds,
	}
}

// LogValue is the configuration with secrets redacted, for the startup log.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("redis_addr", c.RedisAddr),
		slog.String("redis_password", redacted(c.RedisPassword)),
		slog.Int("redis_db", c.RedisDB),
		slog.String("hmac_secret", redacted(c.HMACSecret)),
		slog.String("internal_token", redacted(c.InternalToken)),
		slog.String("failsafe_mode", c.FailsafeMode),
		slog.String("listen_host", c.ListenHost),
		slog.Int("app_port", c.AppPort),
		slog.Int("internal_port", c.InternalPort),
		slog.Int("bind_prefix_v4", c.BindPrefixV4),
		slog.Int("bind_prefix_v6", c.BindPrefixV6),
		slog.Int("claim_limit", c.ClaimLimit),
		slog.Int("scan_threshold", c.ScanThreshold),
		slog.Int("scan_window_seconds", c.ScanWindowSeconds),
		slog.Int("scan_block_seconds", c.ScanBlockSeconds),
		slog.String("first_use_rule", c.FirstUseRule),
		slog.Int("learning_slots", c.LearningSlots),
		slog.Int("learning_window_seconds", c.LearningWindowSeconds),
		slog.Int("claim_window_seconds", c.ClaimWindowSeconds),
		slog.Int("claim_prefix_v4", c.ClaimPrefixV4),
		slog.Int("claim_prefix_v6", c.ClaimPrefixV6),
		slog.Duration("binding_cache_ttl", c.RedisEntryTTL),
		slog.Int("db_max_conns", c.DBMaxConns),
		slog.Int("db_min_conns", c.DBMinConns),
		slog.String("admin_username", c.AdminUsername),
		slog.String("admin_password", redacted(c.AdminPassword)),
		slog.String("admin_jwt_secret", redacted(c.AdminJWTSecret)),
		slog.Duration("admin_token_ttl", c.AdminTokenTTL),
		slog.Any("admin_trusted_proxies", c.AdminTrustedProxies),
		slog.Any("console_hosts", c.ConsoleHosts),
		slog.String("alert_webhook_url", redacted(c.AlertWebhookURL)),
		slog.String("alert_webhook_format", c.AlertWebhookFormat),
		slog.String("alert_webhook_secret", redacted(c.AlertWebhookSecret)),
		slog.String("alert_email_to", c.AlertEmailTo),
		slog.String("smtp_addr", c.SMTPAddr),
		slog.String("smtp_from", c.SMTPFrom),
		slog.String("smtp_username", c.SMTPUsername),
		slog.String("smtp_password", redacted(c.SMTPPassword)),
		slog.Bool("alert_webhook_allow_private", c.AlertWebhookAllowPrivate),
		slog.Int("alert_threshold_count", c.AlertThresholdCount),
		slog.Int("alert_threshold_seconds", c.AlertThresholdSeconds),
		slog.Bool("auto_ban_on_alert", c.AutoBanOnAlert),
		slog.Int("archive_days", c.ArchiveDays),
		slog.Int("log_retention_days", c.LogRetentionDays),
	)
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// redactURL hides the password in a postgres:// URL or a key=value DSN.
func redactURL(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			creds := rest[:at]
			if colon := strings.Index(creds, ":"); colon >= 0 {
				return dsn[:i+3] + creds[:colon] + ":[redacted]" + rest[at:]
			}
		}
		return dsn
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=[redacted]"
		}
	}
	return strings.Join(fields, " ")
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// secret reads NAME, or the file named by NAME_FILE (not both).
func (r *reader) secret(name string) string {
	v, file := r.getenv(name), r.getenv(name+"_FILE")
	if v != "" && file != "" {
		r.fail("%s and %s_FILE are both set; choose one", name, name)
		return ""
	}
	if file == "" {
		return strings.TrimSpace(v)
	}
	b, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the secret file (<NAME>_FILE)
	if err != nil {
		r.fail("%s_FILE: %v", name, err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// boolean reads true or false (empty: false).
func (r *reader) boolean(name string) bool {
	switch v := strings.ToLower(strings.TrimSpace(r.getenv(name))); v {
	case "", "false", "0":
		return false
	case "true", "1":
		return true
	default:
		r.fail("%s must be true or false, got %q", name, v)
		return false
	}
}

func (r *reader) intIn(name string, def, lo, hi int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail("%s must be an integer in %d-%d, got %q", name, lo, hi, v)
		return def
	}
	return n
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail("%s must be a positive duration such as 30s, got %q", name, v)
		return def
	}
	return d
}
