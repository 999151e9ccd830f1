package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Load(env(map[string]string{"SENTINEL_FAILSAFE_MODE": "maybe", "APP_PORT": "70000", "BIND_PREFIX_V6": "3",
		"ADMIN_JWT_SECRET": "31-bytes-is-one-byte-too-short!", "ALERT_WEBHOOK_URL": "ftp://x", "ADMIN_TRUSTED_PROXIES": "10.0.0.5/24"}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"DATABASE_URL", "SENTINEL_HMAC_SECRET", "SENTINEL_INTERNAL_TOKEN", "SENTINEL_FAILSAFE_MODE", "APP_PORT", "BIND_PREFIX_V6",
		"ADMIN_PASSWORD", "ADMIN_JWT_SECRET must be at least 32 bytes (got 31)", "alert_webhook_url", "10.0.0.0/24"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestSecretsFromFilesAndRedaction(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load(env(map[string]string{
		"DATABASE_URL_FILE":            write("dsn", "postgres://sentinel:pgpass-XYZ@db:5432/sentinel"),
		"SENTINEL_HMAC_SECRET_FILE":    write("hmac", "hmac-secret-XYZ-0123456789"),
		"SENTINEL_INTERNAL_TOKEN_FILE": write("tok", "internal-token-XYZ-0123"),
		"REDIS_PASSWORD":               "redis-pass-XYZ",
		"ADMIN_PASSWORD_FILE":          write("adminpw", "admin-pass-XYZ"),
		"ADMIN_JWT_SECRET":             "jwt-secret-XYZ-0123456789abcdef0123456789",
		"ALERT_WEBHOOK_URL":            "https://hooks.example/services/webhook-token-XYZ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HMACSecret != "hmac-secret-XYZ-0123456789" || c.InternalToken != "internal-token-XYZ-0123" {
		t.Fatalf("secrets not read from files: %+v", c)
	}
	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("config", "config", c)
	for _, secret := range []string{"pgpass-XYZ", "hmac-secret-XYZ", "internal-token-XYZ", "redis-pass-XYZ", "admin-pass-XYZ", "jwt-secret-XYZ", "webhook-token-XYZ"} {
		if strings.Contains(sb.String(), secret) {
			t.Errorf("startup log shows %s: %s", secret, sb.String())
		}
	}
	if _, err := Load(env(map[string]string{"SENTINEL_HMAC_SECRET": "a", "SENTINEL_HMAC_SECRET_FILE": "/x"})); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("both value and file: %v", err)
	}
}
