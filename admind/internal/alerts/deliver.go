package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/netguard"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
)

// Notifier delivers alerts to the webhook in the runtime settings. Bodies are signed the
// Standard Webhooks way: headers webhook-id (stable across retries), webhook-timestamp and
// webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>". 5xx, 429 and
// network errors are retried with exponential backoff and jitter; redirects are never followed.
type Notifier struct {
	Settings func() settings.Settings
	Secret   []byte       // empty: deliveries are not signed
	Client   *http.Client // netguard.Client: no redirects; internal addresses refused unless allowed
	// AllowInternal lets the webhook be on an internal address (ALERT_WEBHOOK_ALLOW_PRIVATE).
	AllowInternal bool
	// Mail sends the e-mail alerts, when the settings ask for them; nil: none.
	Mail *Mailer
	Log  *slog.Logger
	// Outcome, when set, sees each attempt's outcome: delivered, retried, failed, dropped.
	Outcome     func(string)
	MaxAttempts int
	BaseDelay   time.Duration // first retry delay; doubles up to MaxDelay
	MaxDelay    time.Duration
	Now         func() time.Time

	queue   chan Alert
	dropped atomic.Int64 // alerts the full queue refused since the last summary
}

// Enqueue hands an alert to the delivery worker; when the queue is full the alert is dropped
// rather than blocking the request path: counted, logged, and summed up in one "N alerts
// dropped" alert that Run delivers after the next queued one.
func (n *Notifier) Enqueue(a Alert) {
	select {
	case n.queue <- a:
	default:
		n.outcome("dropped")
		if n.dropped.Add(1) == 1 {
			n.Log.Error("alerts dropped: delivery queue full; a summary alert follows", "alert_id", a.ID)
		}
	}
}

// Init prepares the queue; call before Enqueue and Run.
func (n *Notifier) Init(size int) { n.queue = make(chan Alert, size) }

// Run delivers queued alerts until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-n.queue:
			n.Deliver(ctx, a)
			// An alert was dropped only while the queue was full, so one is always delivered
			// after it, and its summary follows that.
			if d := n.dropped.Swap(0); d > 0 {
				n.Log.Error("alerts dropped: delivery queue full", "count", d)
				n.Deliver(ctx, Alert{ID: newID(), Kind: KindDropped, At: n.Now().UTC(), Count: d})
			}
		}
	}
}

func (n *Notifier) outcome(o string) {
	if n.Outcome != nil {
		n.Outcome(o)
	}
}

// Deliver sends one alert to each configured channel (the webhook, e-mail), retrying as
// described on Notifier, and reports whether it arrived everywhere.
func (n *Notifier) Deliver(ctx context.Context, a Alert) bool {
	set := n.Settings()
	webhook, email := n.channels(set)
	if !webhook && !email {
		n.Log.Info("alert not delivered: no alert channel configured", "alert_id", a.ID)
		return false
	}
	ok := true
	if webhook {
		body, contentType, err := Render(a, set.AlertWebhookFormat, set.AlertWebhookURL)
		if err != nil {
			n.Log.Error("alert not rendered", "alert_id", a.ID, "err", err)
			ok = false
		} else {
			ok = n.withRetries(ctx, a, "webhook", func() (bool, error) {
				return n.post(ctx, set.AlertWebhookURL, a.ID, contentType, body)
			}) && ok
		}
	}
	if email {
		ok = n.withRetries(ctx, a, "email", func() (bool, error) {
			// An SMTP failure may be passing (a busy server, a greylisting reply); wrong
			// settings or a refused address are not.
			err := n.Mail.Send(ctx, set, a)
			return !permanentMailError(err), err
		}) && ok
	}
	return ok
}

// channels says which alert channels set configures.
func (n *Notifier) channels(set settings.Settings) (webhook, email bool) {
	return set.AlertWebhookURL != "", n.Mail != nil && set.AlertEmailTo != ""
}

// withRetries makes attempts until one succeeds, one fails for good, or MaxAttempts.
func (n *Notifier) withRetries(ctx context.Context, a Alert, channel string, attempt func() (retry bool, err error)) bool {
	delay := n.BaseDelay
	for i := 1; ; i++ {
		retry, err := attempt()
		if err == nil {
			n.outcome("delivered")
			n.Log.Info("alert delivered", "alert_id", a.ID, "channel", channel, "attempt", i)
			return true
		}
		if !retry || i >= n.MaxAttempts {
			n.outcome("failed")
			n.Log.Error("alert delivery failed", "alert_id", a.ID, "channel", channel, "attempt", i, "err", err)
			return false
		}
		n.outcome("retried")
		wait := delay + rand.N(delay/2+1) //nolint:gosec // G404: retry jitter, not a secret
		n.Log.Warn("alert delivery will be retried", "alert_id", a.ID, "channel", channel, "attempt", i, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		if delay *= 2; delay > n.MaxDelay {
			delay = n.MaxDelay
		}
	}
}

// ErrNoChannel: no alert channel is configured.
var ErrNoChannel = errors.New("no alert channel is configured: set a webhook URL or e-mail recipients in the settings")

// Test sends a test alert once, without retries, and says why it did not arrive: the
// console's "send test alert", so that a misconfigured channel fails loudly there rather than
// on the day of a leak. The error quotes the receiver's status and the start of its answer
// (a chat service says what is wrong), never the URL.
func (n *Notifier) Test(ctx context.Context, actor string) error {
	set := n.Settings()
	webhook, email := n.channels(set)
	if !webhook && !email {
		return ErrNoChannel
	}
	a := Alert{ID: newID(), Kind: KindTest, At: n.Now().UTC(), SentBy: actor}
	var errs []error
	if webhook {
		body, contentType, err := Render(a, set.AlertWebhookFormat, set.AlertWebhookURL)
		if err == nil {
			_, err = n.post(ctx, set.AlertWebhookURL, a.ID, contentType, body)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("webhook: %w", err))
		}
	}
	if email {
		if err := n.Mail.Send(ctx, set, a); err != nil {
			errs = append(errs, fmt.Errorf("e-mail: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		n.Log.Warn("test alert not delivered", "alert_id", a.ID, "err", err)
		return err
	}
	n.Log.Info("test alert delivered", "alert_id", a.ID, "actor", actor)
	return nil
}

// post makes one attempt; retry says whether another may succeed. Errors never quote the URL
// (chat webhook URLs carry tokens), but do quote the start of a refusal's body.
func (n *Notifier) post(ctx context.Context, url, id, contentType string, body []byte) (retry bool, err error) {
	ts := strconv.FormatInt(n.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("invalid webhook URL")
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "key-ip-sentinel-admind")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	if len(n.Secret) > 0 {
		req.Header.Set("webhook-signature", "v1,"+Sign(n.Secret, id, ts, body))
	}
	if !n.AllowInternal {
		if err := netguard.CheckURL(url); err != nil {
			return false, err
		}
		if err := netguard.CheckTarget(ctx, req); err != nil {
			return false, err
		}
	}
	resp, err := n.Client.Do(req)
	if errors.Is(err, netguard.ErrForbidden) {
		return false, netguard.ErrForbidden
	}
	if err != nil {
		var uerr interface{ Timeout() bool }
		if errors.As(err, &uerr) && uerr.Timeout() {
			return true, errors.New("timeout")
		}
		return true, errors.New("connection failed")
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("status %d%s", resp.StatusCode, excerpt(answer))
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return false, fmt.Errorf("status %d: redirects are not followed", resp.StatusCode)
	default:
		return false, fmt.Errorf("status %d%s", resp.StatusCode, excerpt(answer))
	}
}

// excerpt is the start of a receiver's answer, printable ASCII only, for an error message.
func excerpt(answer []byte) string {
	const maxLen = 200
	var b strings.Builder
	for _, c := range answer {
		if b.Len() >= maxLen {
			b.WriteString("…")
			break
		}
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
			b.WriteByte(' ')
		}
	}
	if s := strings.TrimSpace(b.String()); s != "" {
		return ": " + s
	}
	return ""
}

// Sign is the Standard Webhooks signature: base64(HMAC-SHA256(secret, id.timestamp.body)).
func Sign(secret []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + timestamp + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Render makes the webhook body and its content type: the alert as JSON, or a text message
// in the shape a chat tool's incoming webhook or a push service's API takes. webhookURL is
// read by the formats that carry a parameter in it (telegram: chat_id).
func Render(a Alert, format, webhookURL string) (body []byte, contentType string, err error) {
	if format == "" || format == "json" {
		body, err = json.Marshal(struct {
			Type string `json:"type"`
			Alert
		}{Type: "sentinel.alert." + a.Kind, Alert: a})
		return body, "application/json", err
	}
	text := Text(a)
	var v any
	switch format {
	case "slack":
		v = map[string]string{"text": text}
	case "dingtalk", "wecom":
		v = map[string]any{"msgtype": "text", "text": map[string]string{"content": text}}
	case "feishu":
		v = map[string]any{"msg_type": "text", "content": map[string]string{"text": text}}
	case "telegram":
		// https://api.telegram.org/bot<token>/sendMessage?chat_id=<chat>: the chat goes in
		// the body too, where the Bot API reads it for certain.
		u, perr := url.Parse(webhookURL)
		if perr != nil {
			return nil, "", errors.New("invalid webhook URL")
		}
		v = map[string]any{"chat_id": u.Query().Get("chat_id"), "text": text, "disable_web_page_preview": true}
	case "gotify":
		// https://gotify.example/message?token=<application token>
		v = map[string]any{"title": "Key-IP Sentinel", "message": text, "priority": 8}
	case "ntfy":
		// https://ntfy.sh/<topic>: the message is the body, as plain text.
		return []byte(text), "text/plain; charset=utf-8", nil
	default:
		return nil, "", fmt.Errorf("unknown webhook format %q", format)
	}
	body, err = json.Marshal(v)
	return body, "application/json", err
}

// Text is the alert as a short human message.
func Text(a Alert) string {
	var b strings.Builder
	switch a.Kind {
	case KindDropped:
		fmt.Fprintf(&b, "[Key-IP Sentinel] %d alerts dropped: more were raised than could be delivered. See the intercept logs.", a.Count)
	case KindTest:
		fmt.Fprintf(&b, "[Key-IP Sentinel] Test alert, sent from the console by %s: alerts reach you here.", a.SentBy)
	case KindKeyScan:
		fmt.Fprintf(&b, "[Key-IP Sentinel] %s presented %d distinct API keys within %d s: key scanning, or a stolen key list being tried.",
			a.Source, a.Count, a.WindowSeconds)
		if a.ClaimsRefusedSeconds > 0 {
			fmt.Fprintf(&b, " New keys from it are refused for %d s.", a.ClaimsRefusedSeconds)
		}
	case KindFailsafe:
		fmt.Fprintf(&b, "[Key-IP Sentinel] Failsafe mode used: Redis and admind could not decide. %d requests forwarded unchecked, %d refused (503).",
			a.FailsafeOpen, a.FailsafeClose)
	default:
		verb := "refused"
		if a.Forwarded {
			verb = "used"
		}
		fmt.Fprintf(&b, "[Key-IP Sentinel] Key %s was %s %d times within %d s", a.KeyHint, verb, a.Count, a.WindowSeconds)
		if len(a.IPs) > 0 {
			fmt.Fprintf(&b, " from %s", strings.Join(a.IPs, ", "))
		}
		if a.Forwarded {
			b.WriteString(", which its binding does not allow; monitor mode forwarded the requests")
		}
		if a.Binding != nil {
			rule := string(a.Binding.Mode)
			if len(a.Binding.CIDRs) > 0 {
				rule += " " + strings.Join(a.Binding.CIDRs, ", ")
			}
			fmt.Fprintf(&b, ". Binding: %s (%s)", rule, a.Binding.Status)
		}
		if a.AutoBanned {
			b.WriteString(". The key was banned automatically (auto_ban_on_alert); unban it in the console")
		}
		b.WriteString(".")
	}
	fmt.Fprintf(&b, " Time: %s. Alert %s.", a.At.Format(time.RFC3339), a.ID)
	return b.String()
}
