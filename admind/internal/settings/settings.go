// Package settings holds the runtime settings an admin edits from the console. PostgreSQL
// keeps them (with admin_audit), and every admind replica reloads them from there within one
// refresh. The plugin's part of them (the failsafe mode, nothing else: the webhook URL is a
// secret) is published to Redis (sentinel:settings). Environment variables give the values
// until an admin saves different ones.
package settings

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/admind/internal/netguard"
)

// Settings are the runtime settings. The JSON names are the wire and storage names.
type Settings struct {
	AlertWebhookURL       string `json:"alert_webhook_url"`
	AlertWebhookFormat    string `json:"alert_webhook_format"` // json | slack | dingtalk | feishu | wecom | telegram | gotify | ntfy
	AlertThresholdCount   int    `json:"alert_threshold_count"`
	AlertThresholdSeconds int    `json:"alert_threshold_seconds"`
	AutoBanOnAlert        bool   `json:"auto_ban_on_alert"` // a key that raises an intercept alert is banned at once
	// E-mail alerts (beside the webhook): to AlertEmailTo (comma-separated; "" off) from
	// SMTPFrom through SMTPAddr (host:port); credentials come from the environment.
	AlertEmailTo       string `json:"alert_email_to"`
	SMTPAddr           string `json:"smtp_addr"`
	SMTPFrom           string `json:"smtp_from"`
	ArchiveDays        int    `json:"archive_days"`       // 0: never archive
	LogRetentionDays   int    `json:"log_retention_days"` // intercept logs older are deleted; 0: kept forever
	FailsafeMode       string `json:"failsafe_mode"`
	BindPrefixV4       int    `json:"bind_prefix_v4"`
	BindPrefixV6       int    `json:"bind_prefix_v6"`
	ClaimLimit         int    `json:"claim_limit"` // new first-use claims per source per window; 0: no limit
	ClaimWindowSeconds int    `json:"claim_window_seconds"`
	ClaimPrefixV4      int    `json:"claim_prefix_v4"` // a source: the client address widened to these
	ClaimPrefixV6      int    `json:"claim_prefix_v6"`
	// The key-scan detector: a source (as for the claim limit) that presents ScanThreshold
	// distinct keys within ScanWindowSeconds raises an alert (0: off), and has its new claims
	// refused for ScanBlockSeconds (0: only the alert).
	ScanThreshold     int `json:"scan_threshold"`
	ScanWindowSeconds int `json:"scan_window_seconds"`
	ScanBlockSeconds  int `json:"scan_block_seconds"`
	// The rule a first use binds with: "single" (the first address) or "learning" (the first
	// LearningSlots addresses within LearningWindowSeconds of the first use). LearningSlots
	// and LearningWindowSeconds are also the defaults when an admin sets a learning rule.
	FirstUseRule          string `json:"first_use_rule"`
	LearningSlots         int    `json:"learning_slots"`
	LearningWindowSeconds int    `json:"learning_window_seconds"`
}

// MaxLearningWindowSeconds bounds a learning rule's window (30 days).
const MaxLearningWindowSeconds = 30 * 86_400

// Fields are the settings' JSON names, in order.
func Fields() []string {
	t := reflect.TypeOf(Settings{})
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
	}
	return out
}

// ValidationError lists every problem with submitted settings, each naming its field. Its
// text is safe to show to the admin.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string { return strings.Join(e.Problems, "; ") }

// Validate reports every problem at once.
func (s Settings) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.AlertWebhookURL != "" {
		u, err := url.Parse(s.AlertWebhookURL)
		switch {
		case len(s.AlertWebhookURL) > 2048:
			bad("alert_webhook_url is longer than 2048 characters")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("alert_webhook_url must be an absolute http:// or https:// URL")
		}
	}
	switch s.AlertWebhookFormat {
	case "json", "slack", "dingtalk", "feishu", "wecom", "ntfy":
	case "telegram":
		if u, err := url.Parse(s.AlertWebhookURL); s.AlertWebhookURL != "" && (err != nil || !strings.HasSuffix(u.Path, "/sendMessage") || u.Query().Get("chat_id") == "") {
			bad("alert_webhook_url for telegram must be https://api.telegram.org/bot<token>/sendMessage?chat_id=<chat id>")
		}
	case "gotify":
		if u, err := url.Parse(s.AlertWebhookURL); s.AlertWebhookURL != "" && (err != nil || !strings.HasSuffix(u.Path, "/message") || u.Query().Get("token") == "") {
			bad("alert_webhook_url for gotify must be https://<gotify server>/message?token=<application token>")
		}
	default:
		bad(`alert_webhook_format must be "json", "slack", "dingtalk", "feishu", "wecom", "telegram", "gotify" or "ntfy", got %q`, s.AlertWebhookFormat)
	}
	if s.AlertEmailTo != "" {
		to, err := mail.ParseAddressList(s.AlertEmailTo)
		switch {
		case len(s.AlertEmailTo) > 1000 || err != nil || len(to) > 10:
			bad("alert_email_to must be at most 10 e-mail addresses, comma-separated")
		}
		if _, _, err := net.SplitHostPort(s.SMTPAddr); err != nil || len(s.SMTPAddr) > 255 {
			bad("smtp_addr must be host:port, such as smtp.example.com:587")
		}
		if a, err := mail.ParseAddress(s.SMTPFrom); err != nil || len(s.SMTPFrom) > 255 || strings.ContainsAny(a.Name, "\r\n") {
			bad("smtp_from must be an e-mail address")
		}
	}
	if s.AlertThresholdCount < 1 || s.AlertThresholdCount > 1_000_000 {
		bad("alert_threshold_count must be in 1-1000000, got %d", s.AlertThresholdCount)
	}
	if s.AlertThresholdSeconds < 1 || s.AlertThresholdSeconds > 86_400 {
		bad("alert_threshold_seconds must be in 1-86400, got %d", s.AlertThresholdSeconds)
	}
	if s.ArchiveDays < 0 || s.ArchiveDays > 3650 {
		bad("archive_days must be in 0-3650 (0 never archives), got %d", s.ArchiveDays)
	}
	if s.LogRetentionDays < 0 || s.LogRetentionDays > 3650 {
		bad("log_retention_days must be in 0-3650 (0 keeps intercept logs forever), got %d", s.LogRetentionDays)
	}
	if s.FailsafeMode != "closed" && s.FailsafeMode != "open" {
		bad(`failsafe_mode must be "closed" or "open", got %q`, s.FailsafeMode)
	}
	if s.BindPrefixV4 < 8 || s.BindPrefixV4 > 32 {
		bad("bind_prefix_v4 must be in 8-32, got %d", s.BindPrefixV4)
	}
	if s.BindPrefixV6 < 16 || s.BindPrefixV6 > 128 {
		bad("bind_prefix_v6 must be in 16-128, got %d", s.BindPrefixV6)
	}
	if s.ClaimLimit < 0 || s.ClaimLimit > 1_000_000 {
		bad("claim_limit must be in 0-1000000 (0: no limit), got %d", s.ClaimLimit)
	}
	if s.ClaimWindowSeconds < 1 || s.ClaimWindowSeconds > 86_400 {
		bad("claim_window_seconds must be in 1-86400, got %d", s.ClaimWindowSeconds)
	}
	if s.ClaimPrefixV4 < 8 || s.ClaimPrefixV4 > 32 {
		bad("claim_prefix_v4 must be in 8-32, got %d", s.ClaimPrefixV4)
	}
	if s.ClaimPrefixV6 < 16 || s.ClaimPrefixV6 > 128 {
		bad("claim_prefix_v6 must be in 16-128, got %d", s.ClaimPrefixV6)
	}
	if s.ScanThreshold < 0 || s.ScanThreshold > 10_000 {
		bad("scan_threshold must be in 0-10000 (0: off), got %d", s.ScanThreshold)
	}
	if s.ScanWindowSeconds < 1 || s.ScanWindowSeconds > 86_400 {
		bad("scan_window_seconds must be in 1-86400, got %d", s.ScanWindowSeconds)
	}
	if s.ScanBlockSeconds < 0 || s.ScanBlockSeconds > 86_400 {
		bad("scan_block_seconds must be in 0-86400 (0: alert only), got %d", s.ScanBlockSeconds)
	}
	if s.FirstUseRule != "single" && s.FirstUseRule != "learning" {
		bad(`first_use_rule must be "single" or "learning", got %q`, s.FirstUseRule)
	}
	if s.LearningSlots < 1 || s.LearningSlots > bindings.MaxRuleEntries {
		bad("learning_slots must be in 1-%d, got %d", bindings.MaxRuleEntries, s.LearningSlots)
	}
	if s.LearningWindowSeconds < 1 || s.LearningWindowSeconds > MaxLearningWindowSeconds {
		bad("learning_window_seconds must be in 1-%d, got %d", MaxLearningWindowSeconds, s.LearningWindowSeconds)
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// Store keeps the settings (PostgreSQL).
type Store interface {
	LoadSettings(ctx context.Context) ([]byte, error)
	SaveSettings(ctx context.Context, js []byte, a audit.Entry) error
}

// Publisher makes the settings visible to the plugin (Redis).
type Publisher interface {
	PublishSettings(ctx context.Context, js []byte, ttl time.Duration) error
}

// RefreshInterval is how often every replica reloads and republishes the settings: a change
// made on one replica, or a Redis restarted empty, is repaired within it.
const RefreshInterval = 5 * time.Second

// publishTTL outlives many refreshes, so the key only disappears if no admind runs.
const publishTTL = 24 * time.Hour

// Service holds the current settings.
type Service struct {
	Store     Store
	Publisher Publisher
	Defaults  Settings
	Log       *slog.Logger
	// AllowInternalWebhook: the webhook URL may name an internal address (netguard).
	AllowInternalWebhook bool

	cur atomic.Pointer[Settings]
}

// Current returns the settings in effect.
func (s *Service) Current() Settings {
	if p := s.cur.Load(); p != nil {
		return *p
	}
	return s.Defaults
}

// Refresh reloads the settings from PostgreSQL and republishes them to Redis.
func (s *Service) Refresh(ctx context.Context) error {
	js, err := s.Store.LoadSettings(ctx)
	if err != nil {
		return err
	}
	cur := s.Defaults
	if js != nil {
		// Saved fields override the defaults; fields added since keep their default.
		if err := json.Unmarshal(js, &cur); err != nil {
			return fmt.Errorf("settings: stored value: %w", err)
		}
		if err := cur.Validate(); err != nil {
			s.Log.Error("stored settings are invalid; using the environment's", "err", err)
			cur = s.Defaults
		}
	}
	s.cur.Store(&cur)
	return s.publish(ctx, cur)
}

// Update validates and saves new settings (with the audit entry), then publishes them.
func (s *Service) Update(ctx context.Context, who audit.Actor, next Settings) (Settings, error) {
	if err := next.Validate(); err != nil {
		return Settings{}, err
	}
	if next.AlertWebhookURL != "" && !s.AllowInternalWebhook {
		if err := netguard.CheckURL(next.AlertWebhookURL); err != nil {
			return Settings{}, &ValidationError{Problems: []string{"alert_webhook_url: " + err.Error()}}
		}
	}
	before := s.Current()
	js, err := json.Marshal(next)
	if err != nil {
		return Settings{}, err
	}
	err = s.Store.SaveSettings(ctx, js, audit.Entry{
		Actor: who, Action: "settings.update", Target: "settings", Before: before.auditView(), After: next.auditView(),
	})
	if err != nil {
		return Settings{}, err
	}
	s.cur.Store(&next)
	if err := s.publish(ctx, next); err != nil {
		// Saved; the next refresh publishes it.
		s.Log.Error("publishing settings failed; retried on the next refresh", "err", err)
	}
	s.Log.Info("settings changed", "actor", who.Name, "before", before.auditView(), "after", next.auditView())
	return next, nil
}

func (s *Service) publish(ctx context.Context, cur Settings) error {
	js, err := json.Marshal(contract.PluginSettings{FailsafeMode: cur.FailsafeMode})
	if err != nil {
		return err
	}
	return s.Publisher.PublishSettings(ctx, js, publishTTL)
}

// auditView hides the webhook URL's path and query, which often carry a chat bot's token.
func (s Settings) auditView() Settings {
	if u, err := url.Parse(s.AlertWebhookURL); err == nil && s.AlertWebhookURL != "" {
		s.AlertWebhookURL = u.Scheme + "://" + u.Host + "/…"
	}
	return s
}
