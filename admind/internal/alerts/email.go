package alerts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/netguard"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
)

// Mailer sends alerts by e-mail (SMTP), beside the webhook: to alert_email_to, from
// smtp_from, through smtp_addr (runtime settings). STARTTLS is used whenever the server offers
// it; credentials (SMTP_USERNAME, SMTP_PASSWORD) are sent only over TLS or to localhost
// (net/smtp's PlainAuth refuses otherwise). Internal addresses are refused unless
// ALERT_WEBHOOK_ALLOW_PRIVATE.
type Mailer struct {
	Username, Password string
	AllowInternal      bool
	Timeout            time.Duration
	// TLSConfig, when set, replaces the default (the server's name, system roots): tests.
	TLSConfig *tls.Config
}

// errMailSettings: the e-mail settings themselves are wrong; retrying cannot help.
var errMailSettings = errors.New("e-mail settings")

// permanentMailError reports whether another attempt cannot succeed.
func permanentMailError(err error) bool {
	return errors.Is(err, errMailSettings) || errors.Is(err, netguard.ErrForbidden)
}

// Send mails the alert's text. Errors quote the server's reply, never the password.
func (m *Mailer) Send(ctx context.Context, set settings.Settings, a Alert) error {
	host, _, err := net.SplitHostPort(set.SMTPAddr)
	if err != nil {
		return fmt.Errorf("%w: smtp_addr must be host:port", errMailSettings)
	}
	from, err := mail.ParseAddress(set.SMTPFrom)
	if err != nil {
		return fmt.Errorf("%w: smtp_from is not an e-mail address", errMailSettings)
	}
	to, err := mail.ParseAddressList(set.AlertEmailTo)
	if err != nil {
		return fmt.Errorf("%w: alert_email_to is not a list of e-mail addresses", errMailSettings)
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := netguard.Dialer(timeout, m.AllowInternal).DialContext(ctx, "tcp", set.SMTPAddr)
	if errors.Is(err, netguard.ErrForbidden) {
		return netguard.ErrForbidden
	}
	if err != nil {
		return errors.New("smtp: connection failed")
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	defer func() { _ = c.Close() }()
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := m.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp: STARTTLS: %w", err)
		}
	}
	if m.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("smtp: AUTH: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r.Address); err != nil {
			return fmt.Errorf("smtp: RCPT TO %s: %w", r.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if _, err := w.Write(message(from, to, a)); err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	return c.Quit()
}

// message is the alert as a plain-text e-mail. Every header value is ours or a parsed
// address, so nothing from a request can add a header.
func message(from *mail.Address, to []*mail.Address, a Alert) []byte {
	rcpt := make([]string, len(to))
	for i, r := range to {
		rcpt[i] = r.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: [Key-IP Sentinel] %s\r\nDate: %s\r\nMessage-ID: <%s@key-ip-sentinel>\r\n",
		from.String(), strings.Join(rcpt, ", "), subject(a.Kind), a.At.Format(time.RFC1123Z), a.ID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(Text(a))
	b.WriteString("\r\n")
	return []byte(b.String())
}

func subject(kind string) string {
	switch kind {
	case KindIntercepts:
		return "a key was refused repeatedly"
	case KindKeyScan:
		return "one address presented many keys"
	case KindFailsafe:
		return "failsafe mode used"
	case KindDropped:
		return "alerts dropped"
	case KindTest:
		return "test alert"
	}
	return "alert"
}
