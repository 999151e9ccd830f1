// Package alerts raises an alert when a key is intercepted ALERT_THRESHOLD_COUNT times within
// ALERT_THRESHOLD_SECONDS (and when the plugin had to fall back to its failsafe mode), and
// delivers it to the configured webhook: signed, retried, exactly once per window.
package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
)

// Kinds of alert.
const (
	KindIntercepts = "intercepts" // one key refused (or in monitor mode seen) too often from other addresses
	KindFailsafe   = "failsafe"   // the plugin decided requests without Redis and admind
	KindDropped    = "dropped"    // Count alerts did not fit the delivery queue
	KindTest       = "test"       // sent from the console to check the channel
)

// Alert is what a webhook receives (rendered per format). It never holds a raw key.
type Alert struct {
	ID            string    `json:"id"` // webhook-id: the same on every retry
	Kind          string    `json:"kind"`
	At            time.Time `json:"time"`
	KeyHint       string    `json:"key_hint,omitempty"`
	KeyHash       string    `json:"key_hash,omitempty"`
	Count         int64     `json:"count"`
	WindowSeconds int       `json:"window_seconds"`
	WindowStart   time.Time `json:"window_start"`
	IPs           []string  `json:"ips,omitempty"`
	// Source (key_scan): the client address, widened to the claim prefix, that presented
	// Count distinct keys; ClaimsRefusedSeconds: how long its new claims are refused.
	Source               string `json:"source,omitempty"`
	ClaimsRefusedSeconds int    `json:"claims_refused_seconds,omitempty"`
	// SentBy (test): the admin who sent the test alert.
	SentBy  string              `json:"sent_by,omitempty"`
	Binding *bindings.AuditView `json:"binding,omitempty"`
	// Forwarded (intercepts): the requests that raised it were forwarded, not refused: the
	// plugin runs in monitor mode (they are counted apart from refusals). Such an alert never
	// bans the key automatically, since monitor mode is there to find who would be refused
	// before anyone is.
	Forwarded bool `json:"forwarded,omitempty"`
	// AutoBanned: the key was banned by this alert (the auto_ban_on_alert setting).
	AutoBanned    bool  `json:"auto_banned,omitempty"`
	FailsafeOpen  int64 `json:"failsafe_forwarded,omitempty"`
	FailsafeClose int64 `json:"failsafe_refused,omitempty"`
}

// maxIPs bounds the addresses an alert lists.
const maxIPs = 20

// window counts events in a window that starts at the first event after a quiet one; the
// caller's clock decides (tests inject it). The first call that reaches the threshold in a
// window returns fire=1, and only that one, whichever replica makes it.
// KEYS: state hash, address set. ARGV: now ms, window ms, n, threshold, addresses...
var window = redis.NewScript(`
local now, win, n, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local start = tonumber(redis.call('HGET', KEYS[1], 'start') or '-1')
if start < 0 or now - start >= win then
  redis.call('DEL', KEYS[1], KEYS[2])
  start = now
  redis.call('HSET', KEYS[1], 'start', now)
end
local count = redis.call('HINCRBY', KEYS[1], 'count', n)
for i = 5, #ARGV do
  if redis.call('SCARD', KEYS[2]) < ` + fmt.Sprint(maxIPs) + ` then redis.call('SADD', KEYS[2], ARGV[i]) end
end
redis.call('PEXPIRE', KEYS[1], win * 2)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], win * 2) end
local fire = 0
if count >= threshold and redis.call('HSETNX', KEYS[1], 'fired', '1') == 1 then fire = 1 end
local out = {fire, count, start}
if fire == 1 then
  for _, ip in ipairs(redis.call('SMEMBERS', KEYS[2])) do table.insert(out, ip) end
end
return out`)

// Evaluator counts intercepts per key and hands alerts to Notify.
type Evaluator struct {
	Redis    *redis.Client
	Settings func() settings.Settings
	// Binding looks up the rule to show in the alert (PostgreSQL).
	Binding func(ctx context.Context, keyHash string) (bindings.Binding, error)
	// Ban bans a binding on behalf of admind itself (actor "system", in admin_audit), for the
	// auto_ban_on_alert setting.
	Ban    func(ctx context.Context, id int64) (bindings.Binding, error)
	Notify func(Alert)
	Now    func() time.Time
	Log    *slog.Logger

	queue    chan []bindings.Intercept
	presentQ chan presentedKey
}

type presentedKey struct {
	ip      netip.Addr
	keyHash string
}

// Init prepares the queues Submit and SubmitPresented feed; call before them and Run.
func (e *Evaluator) Init(size int) {
	e.queue = make(chan []bindings.Intercept, size)
	e.presentQ = make(chan presentedKey, size)
}

// SubmitPresented queues a key a claim presented, for the key-scan detector, without
// waiting on Redis. A full queue drops it (logged).
func (e *Evaluator) SubmitPresented(ip netip.Addr, keyHash string) {
	select {
	case e.presentQ <- presentedKey{ip: ip, keyHash: keyHash}:
	default:
		e.Log.Error("key-scan queue full: a presented key not counted")
	}
}

// Submit queues written intercepts for counting without waiting on Redis: the decide path
// must not slow down when Redis does. A full queue drops the batch (logged).
func (e *Evaluator) Submit(list []bindings.Intercept) {
	select {
	case e.queue <- list:
	default:
		e.Log.Error("alert counting queue full: intercepts not counted for alerts", "intercepts", len(list))
	}
}

// Run counts submitted intercepts until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case list := <-e.queue:
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			e.Intercepts(cctx, list)
			cancel()
		case p := <-e.presentQ:
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			e.Presented(cctx, p.ip, p.keyHash)
			cancel()
		}
	}
}

// Intercepts counts newly written intercepts; call it after they are stored. Refused and
// forwarded (monitor mode) intercepts of a key count in windows of their own: an alert says
// which it counted, and auto_ban_on_alert acts on refusals alone, so that intercepts seen in
// monitor mode just before the switch to enforce mode cannot tip a ban.
func (e *Evaluator) Intercepts(ctx context.Context, list []bindings.Intercept) {
	e.presentedByIntercepts(ctx, list)
	type counted struct {
		hash      string
		forwarded bool
	}
	type group struct {
		hint string
		n    int64
		ips  map[string]bool
	}
	groups := map[counted]*group{}
	for _, ic := range list {
		c := counted{hash: ic.KeyHash, forwarded: ic.Outcome == bindings.OutcomeForwarded}
		g := groups[c]
		if g == nil {
			g = &group{hint: ic.KeyHint, ips: map[string]bool{}}
			groups[c] = g
		}
		g.n++
		if len(g.ips) < maxIPs {
			g.ips[ic.IP.String()] = true
		}
	}
	set := e.Settings()
	for c, g := range groups {
		ips := make([]string, 0, len(g.ips))
		for ip := range g.ips {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		counter := "sentinel:alert:" + c.hash
		if c.forwarded {
			counter = "sentinel:alert:forwarded:" + c.hash
		}
		a, fire, err := e.count(ctx, counter, g.n, int64(set.AlertThresholdCount), set.AlertThresholdSeconds, ips)
		if err != nil {
			e.Log.Warn("alert counter failed", "key_hint", g.hint, "err", err)
			continue
		}
		if !fire {
			continue
		}
		a.Kind, a.KeyHint, a.KeyHash, a.Forwarded = KindIntercepts, g.hint, c.hash, c.forwarded
		if b, err := e.Binding(ctx, c.hash); err == nil {
			if set.AutoBanOnAlert && !a.Forwarded && b.Status == bindings.StatusActive {
				b, a.AutoBanned = e.autoBan(ctx, b)
			}
			v := b.View()
			a.Binding = &v
		}
		e.Log.Warn("alert: key intercepted repeatedly", "alert_id", a.ID, "key_hint", g.hint, "count", a.Count, "window_s", a.WindowSeconds,
			"forwarded", a.Forwarded, "auto_banned", a.AutoBanned)
		e.Notify(a)
	}
}

// autoBan bans b for the auto_ban_on_alert setting; on failure the alert still goes out, and
// says the key is not banned.
func (e *Evaluator) autoBan(ctx context.Context, b bindings.Binding) (bindings.Binding, bool) {
	banned, err := e.Ban(ctx, b.ID)
	if err != nil {
		e.Log.Error("auto ban failed", "key_hint", b.KeyHint, "binding_id", b.ID, "err", err)
		return b, false
	}
	return banned, true
}

// Failsafe reports requests the plugin decided by its failsafe mode (neither Redis nor
// admind could). The first report in a window raises one alert.
func (e *Evaluator) Failsafe(ctx context.Context, forwarded, refused int64) {
	set := e.Settings()
	a, fire, err := e.count(ctx, "sentinel:alert:failsafe", forwarded+refused, 1, set.AlertThresholdSeconds, nil)
	if err != nil {
		e.Log.Warn("failsafe alert counter failed", "err", err)
		return
	}
	e.Log.Warn("plugin used its failsafe mode", "forwarded", forwarded, "refused", refused)
	if fire {
		a.Kind, a.FailsafeOpen, a.FailsafeClose = KindFailsafe, forwarded, refused
		e.Notify(a)
	}
}

func (e *Evaluator) count(ctx context.Context, key string, n, threshold int64, windowSeconds int, ips []string) (Alert, bool, error) {
	now := e.Now()
	args := []any{now.UnixMilli(), int64(windowSeconds) * 1000, n, threshold}
	for _, ip := range ips {
		args = append(args, ip)
	}
	res, err := window.Run(ctx, e.Redis, []string{key, key + ":ips"}, args...).Slice()
	if err != nil {
		return Alert{}, false, err
	}
	if len(res) < 3 {
		return Alert{}, false, fmt.Errorf("alerts: unexpected reply %v", res)
	}
	fire, _ := res[0].(int64)
	count, _ := res[1].(int64)
	start, _ := res[2].(int64)
	a := Alert{ID: newID(), At: now.UTC(), Count: count, WindowSeconds: windowSeconds, WindowStart: time.UnixMilli(start).UTC()}
	for _, v := range res[3:] {
		if s, ok := v.(string); ok {
			a.IPs = append(a.IPs, s)
		}
	}
	sort.Strings(a.IPs)
	return a, fire == 1, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "alert_" + hex.EncodeToString(b[:])
}
