package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/admind/internal/netguard"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const hash = "abababababababababababababababababababababababababababababababab"

// clock is an injectable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newEvaluator(t *testing.T, clk *clock, count, seconds int) (*Evaluator, *[]Alert) {
	t.Helper()
	rdb := testenv.Redis(t).Client(t)
	var mu sync.Mutex
	fired := &[]Alert{}
	set := settings.Settings{AlertThresholdCount: count, AlertThresholdSeconds: seconds}
	return &Evaluator{
		Redis: rdb, Settings: func() settings.Settings { return set }, Now: clk.Now, Log: quiet,
		Binding: func(context.Context, string) (bindings.Binding, error) {
			return bindings.Binding{ID: 7, KeyHint: "sk-abcd…wxyz", Mode: bindings.ModeSingle, Status: bindings.StatusActive,
				CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, nil
		},
		Notify: func(a Alert) { mu.Lock(); *fired = append(*fired, a); mu.Unlock() },
	}, fired
}

func intercept(ip string) []bindings.Intercept {
	return []bindings.Intercept{{KeyHash: hash, KeyHint: "sk-abcd…wxyz", IP: netip.MustParseAddr(ip), Reason: contract.ReasonIPNotAllowed}}
}

// class G, docs/testing.md: N-1 intercepts in the window raise nothing, the Nth exactly one alert, more
// within the window nothing; the window's edges decide, measured by an injected clock.
func TestAlertWindow(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	e, fired := newEvaluator(t, clk, 3, 60)
	ctx := context.Background()
	step := func(ip string, advance time.Duration, wantAlerts int) {
		t.Helper()
		clk.add(advance)
		e.Intercepts(ctx, intercept(ip))
		if len(*fired) != wantAlerts {
			t.Fatalf("after an intercept from %s at +%v: %d alerts, want %d", ip, clk.Now().Sub(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)), len(*fired), wantAlerts)
		}
	}
	step("127.0.0.3", 0, 0)
	step("127.0.0.4", 10*time.Second, 0) // N-1
	step("127.0.0.5", 49*time.Second, 1) // N at +59 s, inside the 60 s window
	a := (*fired)[0]
	if a.Kind != KindIntercepts || a.Count != 3 || a.KeyHint != "sk-abcd…wxyz" || a.KeyHash != hash || a.WindowSeconds != 60 ||
		strings.Join(a.IPs, ",") != "127.0.0.3,127.0.0.4,127.0.0.5" || a.Binding == nil || a.Binding.CIDRs[0] != "127.0.0.2/32" ||
		!a.WindowStart.Equal(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)) || a.ID == "" {
		t.Fatalf("alert: %+v", a)
	}
	step("127.0.0.6", 999*time.Millisecond, 1) // +59.999 s: still the same window, no second alert
	step("127.0.0.6", 1*time.Millisecond, 1)   // +60 s: a new window starts with this one
	step("127.0.0.6", 30*time.Second, 1)
	step("127.0.0.6", 29*time.Second, 2) // third in the new window
}

// Replicas share the counter: many concurrent reports at the threshold make one alert.
func TestAlertOncePerWindowAcrossReplicas(t *testing.T) {
	clk := &clock{now: time.Now()}
	e, fired := newEvaluator(t, clk, 10, 300)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Intercepts(context.Background(), intercept("127.0.0.9"))
		}()
	}
	wg.Wait()
	if len(*fired) != 1 || (*fired)[0].Count < 10 {
		t.Fatalf("%d alerts for 50 intercepts over a threshold of 10: %+v", len(*fired), *fired)
	}
}

func TestFailsafeAlertOncePerWindow(t *testing.T) {
	clk := &clock{now: time.Now()}
	e, fired := newEvaluator(t, clk, 10, 300)
	e.Failsafe(context.Background(), 4, 0)
	e.Failsafe(context.Background(), 2, 1)
	if len(*fired) != 1 || (*fired)[0].Kind != KindFailsafe || (*fired)[0].FailsafeOpen != 4 {
		t.Fatalf("failsafe alerts: %+v", *fired)
	}
}

// receiver is a webhook endpoint that checks signatures and can fail on purpose.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	fail     int // answer 500 to this many attempts first
	attempts []http.Header
	bodies   [][]byte
	badSig   atomic.Int64
}

func newReceiver(t *testing.T, secret []byte, fail int) *receiver {
	r := &receiver{fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		if !hmac.Equal([]byte(req.Header.Get("webhook-signature")), []byte(want)) {
			r.badSig.Add(1)
		}
		r.mu.Lock()
		r.attempts = append(r.attempts, req.Header.Clone())
		r.bodies = append(r.bodies, body)
		failNow := len(r.attempts) <= r.fail
		r.mu.Unlock()
		if failNow {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func newNotifier(url, format string, secret []byte) (*Notifier, *sync.Map) {
	outcomes := &sync.Map{}
	return &Notifier{
		Settings: func() settings.Settings { return settings.Settings{AlertWebhookURL: url, AlertWebhookFormat: format} },
		// The receivers are on loopback.
		Secret: secret, Client: netguard.Client(300*time.Millisecond, true), AllowInternal: true, Log: quiet,
		Outcome: func(o string) {
			n, _ := outcomes.LoadOrStore(o, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		},
		MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, Now: time.Now,
	}, outcomes
}

func outcome(m *sync.Map, o string) int64 {
	if n, ok := m.Load(o); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// class G, docs/testing.md: JSON body, signed over id.timestamp.body, webhook-id stable across retries;
// a 500 then a 200 is one delivery after a retry.
func TestWebhookRetriesThenDeliversOnce(t *testing.T) {
	secret := []byte("webhook-secret-0123456789")
	r := newReceiver(t, secret, 1)
	n, outcomes := newNotifier(r.URL, "json", secret)
	a := Alert{ID: "alert_test1", Kind: KindIntercepts, At: time.Now().UTC(), KeyHint: "sk-abcd…wxyz", KeyHash: hash, Count: 5,
		WindowSeconds: 300, IPs: []string{"127.0.0.3"}}
	if !n.Deliver(context.Background(), a) {
		t.Fatal("not delivered")
	}
	if len(r.attempts) != 2 || r.badSig.Load() != 0 {
		t.Fatalf("attempts %d, bad signatures %d", len(r.attempts), r.badSig.Load())
	}
	if r.attempts[0].Get("webhook-id") != "alert_test1" || r.attempts[1].Get("webhook-id") != "alert_test1" {
		t.Fatal("webhook-id changed across retries")
	}
	var got struct {
		Type    string   `json:"type"`
		ID      string   `json:"id"`
		KeyHint string   `json:"key_hint"`
		Count   int64    `json:"count"`
		IPs     []string `json:"ips"`
	}
	if err := json.Unmarshal(r.bodies[1], &got); err != nil || got.Type != "sentinel.alert.intercepts" || got.KeyHint != "sk-abcd…wxyz" || got.Count != 5 || got.IPs[0] != "127.0.0.3" {
		t.Fatalf("body %s: %v", r.bodies[1], err)
	}
	if outcome(outcomes, "retried") != 1 || outcome(outcomes, "delivered") != 1 {
		t.Fatal("outcomes not reported")
	}
}

func TestWebhookFailures(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the redirect was followed")
	}))
	defer target.Close()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Add(1)
		switch req.URL.Path {
		case "/redirect":
			http.Redirect(w, req, target.URL, http.StatusFound)
		case "/bad":
			w.WriteHeader(http.StatusBadRequest)
		case "/slow":
			time.Sleep(time.Second)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	tests := []struct {
		path     string
		attempts int64
	}{
		{"/redirect", 1}, // never followed, not retried
		{"/bad", 1},      // 4xx: the receiver refuses this body; retrying will not help
		{"/down", 4},     // 5xx: retried up to MaxAttempts
		{"/slow", 4},     // timeouts: retried
	}
	for _, tt := range tests {
		hits.Store(0)
		n, outcomes := newNotifier(srv.URL+tt.path, "json", nil)
		if n.Deliver(context.Background(), Alert{ID: "x", Kind: KindIntercepts}) {
			t.Fatalf("%s: reported delivered", tt.path)
		}
		if hits.Load() != tt.attempts || outcome(outcomes, "failed") != 1 {
			t.Errorf("%s: %d attempts, want %d", tt.path, hits.Load(), tt.attempts)
		}
	}
}

func TestChatFormats(t *testing.T) {
	a := Alert{ID: "alert_1", Kind: KindIntercepts, KeyHint: "sk-abcd…wxyz", Count: 5, WindowSeconds: 60, IPs: []string{"127.0.0.3"},
		Binding: &bindings.AuditView{Mode: bindings.ModeSingle, CIDRs: []string{"127.0.0.2/32"}, Status: bindings.StatusActive}}
	want := map[string]string{
		"slack":    `{"text":"[Key-IP Sentinel] Key sk-abcd…wxyz was refused 5 times within 60 s from 127.0.0.3. Binding: single 127.0.0.2/32 (active).`,
		"dingtalk": `{"msgtype":"text","text":{"content":"[Key-IP Sentinel] Key sk-abcd`,
		"wecom":    `{"msgtype":"text","text":{"content":"[Key-IP Sentinel] Key sk-abcd`,
		"feishu":   `{"content":{"text":"[Key-IP Sentinel] Key sk-abcd`,
	}
	for format, prefix := range want {
		b, _, err := Render(a, format, "")
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			t.Errorf("%s: %s %v", format, b, err)
		}
	}
	a.Forwarded = true
	if got, want := Text(a), "[Key-IP Sentinel] Key sk-abcd…wxyz was used 5 times within 60 s from 127.0.0.3, which its binding does not allow; monitor mode forwarded the requests. Binding: single 127.0.0.2/32 (active)."; !strings.HasPrefix(got, want) {
		t.Errorf("monitor mode's alert:\n%s\nwant it to start\n%s", got, want)
	}
}

// A flood of alerts overflows the queue: the overflow is counted, and one "N alerts dropped"
// alert is delivered with the queued ones, so nothing is lost silently.
func TestDroppedAlertsAreSummarised(t *testing.T) {
	r := newReceiver(t, nil, 0)
	n, outcomes := newNotifier(r.URL, "json", nil)
	n.Init(3)
	for i := 0; i < 10; i++ {
		n.Enqueue(Alert{ID: "alert_" + strconv.Itoa(i), Kind: KindIntercepts, At: time.Now().UTC(), KeyHint: "sk-…", Count: 1})
	}
	if d := outcome(outcomes, "dropped"); d != 7 {
		t.Fatalf("%d dropped, want 7", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	testenv.WaitFor(t, 5*time.Second, "4 deliveries", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.bodies) == 4 })
	cancel()
	<-done
	summaries := 0
	for _, b := range r.bodies {
		var got struct {
			Type  string `json:"type"`
			Count int64  `json:"count"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Type == "sentinel.alert.dropped" {
			summaries++
			if got.Count != 7 {
				t.Fatalf("summary %s", b)
			}
		}
	}
	if summaries != 1 {
		t.Fatalf("%d summaries among %d deliveries", summaries, len(r.bodies))
	}
	if text := Text(Alert{Kind: KindDropped, Count: 7}); !strings.Contains(text, "7 alerts dropped") {
		t.Fatalf("summary text %q", text)
	}
}

// Unless the operator allows it, a webhook on an internal address gets nothing: refused
// before sending, not retried.
func TestWebhookToAnInternalAddressIsRefused(t *testing.T) {
	r := newReceiver(t, nil, 0)
	n, outcomes := newNotifier(r.URL, "json", nil)
	n.Client, n.AllowInternal = netguard.Client(300*time.Millisecond, false), false
	if n.Deliver(context.Background(), Alert{ID: "alert_internal", Kind: KindIntercepts, At: time.Now().UTC()}) {
		t.Fatal("delivered to loopback")
	}
	if len(r.attempts) != 0 || outcome(outcomes, "failed") != 1 || outcome(outcomes, "retried") != 0 {
		t.Fatalf("%d requests arrived; outcomes failed %d retried %d", len(r.attempts), outcome(outcomes, "failed"), outcome(outcomes, "retried"))
	}
}

// Telegram, Gotify and ntfy, each against a local receiver that checks what the real service
// reads: the path and query the operator's URL gives, the content type and the body's fields.
func TestPushServiceFormats(t *testing.T) {
	type request struct {
		path, query, contentType string
		body                     []byte
	}
	tests := []struct {
		format, path string
		check        func(r request) error
	}{
		{format: "telegram", path: "/botTOKEN/sendMessage?chat_id=-100123", check: func(r request) error {
			var v struct {
				ChatID string `json:"chat_id"`
				Text   string `json:"text"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil || r.path != "/botTOKEN/sendMessage" || v.ChatID != "-100123" ||
				!strings.HasPrefix(r.contentType, "application/json") || !strings.Contains(v.Text, "Key sk-abcd…wxyz was refused 5 times") {
				return fmt.Errorf("%+v %s %v", r, r.body, err)
			}
			return nil
		}},
		{format: "gotify", path: "/message?token=APPTOKEN", check: func(r request) error {
			var v struct {
				Title    string `json:"title"`
				Message  string `json:"message"`
				Priority int    `json:"priority"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil || r.path != "/message" || r.query != "token=APPTOKEN" ||
				v.Title != "Key-IP Sentinel" || v.Priority != 8 || !strings.Contains(v.Message, "refused 5 times") {
				return fmt.Errorf("%+v %s %v", r, r.body, err)
			}
			return nil
		}},
		{format: "ntfy", path: "/sentinel-alerts", check: func(r request) error {
			if r.path != "/sentinel-alerts" || !strings.HasPrefix(r.contentType, "text/plain") || !strings.HasPrefix(string(r.body), "[Key-IP Sentinel] Key sk-abcd…wxyz") {
				return fmt.Errorf("%+v %s", r, r.body)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			got := make(chan request, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- request{path: r.URL.Path, query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type"), body: body}
			}))
			defer srv.Close()
			n, _ := newNotifier(srv.URL+tt.path, tt.format, nil)
			a := Alert{ID: "alert_push", Kind: KindIntercepts, At: time.Now().UTC(), KeyHint: "sk-abcd…wxyz", KeyHash: hash, Count: 5, WindowSeconds: 60}
			if !n.Deliver(context.Background(), a) {
				t.Fatal("not delivered")
			}
			if err := tt.check(<-got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The console's test alert: one attempt, and the reason it failed, quoting the receiver.
func TestTestAlert(t *testing.T) {
	fail := atomic.Bool{}
	fail.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}\n"))
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "Test alert, sent from the console by admin") {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	n, _ := newNotifier("", "telegram", nil)
	if err := n.Test(context.Background(), "admin"); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("no channel: %v", err)
	}
	n, outcomes := newNotifier(srv.URL+"/botTOKEN/sendMessage?chat_id=1", "telegram", nil)
	err := n.Test(context.Background(), "admin")
	if err == nil || !strings.Contains(err.Error(), "status 401") || !strings.Contains(err.Error(), `"description":"Unauthorized"`) || strings.Contains(err.Error(), "TOKEN") {
		t.Fatalf("refused: %v", err)
	}
	fail.Store(false)
	if err := n.Test(context.Background(), "admin"); err != nil {
		t.Fatalf("delivered: %v", err)
	}
	if outcome(outcomes, "retried") != 0 {
		t.Fatal("a test alert was retried")
	}
}

func TestExcerpt(t *testing.T) {
	if got := excerpt([]byte("\x00bad\r\n\tnews\xff")); got != ": bad news" {
		t.Errorf("%q", got)
	}
	if got := excerpt([]byte(strings.Repeat("a", 300))); len(got) != 2+200+len("…") {
		t.Errorf("%d", len(got))
	}
	if excerpt(nil) != "" {
		t.Error("empty")
	}
}

// fakeSMTP is a minimal SMTP server on loopback: it answers the commands net/smtp sends,
// refuses RCPT with rcptReply when set, and hands each message's envelope and data over.
type smtpMessage struct {
	from string
	to   []string
	data string
}

func fakeSMTP(t *testing.T, rcptReply string) (addr string, got chan smtpMessage) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan smtpMessage, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				tp := textproto.NewConn(conn)
				var m smtpMessage
				_ = tp.PrintfLine("220 fake.smtp ESMTP")
				for {
					line, err := tp.ReadLine()
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
					switch {
					case cmd == "EHLO" || cmd == "HELO":
						_ = tp.PrintfLine("250-fake.smtp\r\n250 8BITMIME")
					case strings.HasPrefix(strings.ToUpper(line), "MAIL FROM:"):
						m.from = strings.Fields(line[len("MAIL FROM:"):])[0]
						_ = tp.PrintfLine("250 ok")
					case strings.HasPrefix(strings.ToUpper(line), "RCPT TO:"):
						if rcptReply != "" {
							_ = tp.PrintfLine("%s", rcptReply)
							continue
						}
						m.to = append(m.to, line[len("RCPT TO:"):])
						_ = tp.PrintfLine("250 ok")
					case cmd == "DATA":
						_ = tp.PrintfLine("354 go ahead")
						b, err := tp.ReadDotBytes()
						if err != nil {
							return
						}
						m.data = string(b)
						_ = tp.PrintfLine("250 queued")
						got <- m
					case cmd == "QUIT":
						_ = tp.PrintfLine("221 bye")
						return
					default:
						_ = tp.PrintfLine("250 ok")
					}
				}
			}(conn)
		}
	}()
	return ln.Addr().String(), got
}

// E-mail alerts, beside the webhook: the envelope and the message as the settings say, a
// refusal shown by the test alert, and an internal server refused unless allowed.
func TestEmailAlerts(t *testing.T) {
	addr, got := fakeSMTP(t, "")
	set := settings.Settings{AlertEmailTo: "ops@example.com, Security <sec@example.com>", SMTPAddr: addr, SMTPFrom: "Sentinel <sentinel@example.com>"}
	n, outcomes := newNotifier("", "json", nil)
	n.Settings = func() settings.Settings { return set }
	n.Mail = &Mailer{AllowInternal: true, Timeout: 2 * time.Second}
	a := Alert{ID: "alert_mail", Kind: KindIntercepts, At: time.Now().UTC(), KeyHint: "sk-abcd…wxyz", KeyHash: hash, Count: 5, WindowSeconds: 60}
	if !n.Deliver(context.Background(), a) {
		t.Fatal("not delivered")
	}
	m := <-got
	if m.from != "<sentinel@example.com>" || strings.Join(m.to, ",") != "<ops@example.com>,<sec@example.com>" {
		t.Fatalf("envelope %+v", m)
	}
	for _, want := range []string{"Subject: [Key-IP Sentinel] a key was refused repeatedly\n", "To: <ops@example.com>, \"Security\" <sec@example.com>\n",
		"Message-ID: <alert_mail@key-ip-sentinel>\n", "Key sk-abcd…wxyz was refused 5 times within 60 s"} {
		if !strings.Contains(m.data, want) {
			t.Errorf("message lacks %q:\n%s", want, m.data)
		}
	}
	if outcome(outcomes, "delivered") != 1 {
		t.Error("outcome not reported")
	}

	refusing, _ := fakeSMTP(t, "550 5.1.1 <ops@example.com>: no such user")
	set.SMTPAddr = refusing
	if err := n.Test(context.Background(), "admin"); err == nil || !strings.Contains(err.Error(), "e-mail: smtp: RCPT TO ops@example.com: 550") || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("refused recipient: %v", err)
	}
	n.Mail.AllowInternal = false
	set.SMTPAddr = addr
	if err := n.Test(context.Background(), "admin"); !errors.Is(err, netguard.ErrForbidden) {
		t.Fatalf("loopback SMTP server without ALERT_WEBHOOK_ALLOW_PRIVATE: %v", err)
	}
	// A refused address is final: not retried.
	if n.Deliver(context.Background(), a) || outcome(outcomes, "retried") != 0 {
		t.Fatalf("delivered to a refused address, or retried it %d times", outcome(outcomes, "retried"))
	}
}
