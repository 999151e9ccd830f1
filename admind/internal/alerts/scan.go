package alerts

import (
	"context"
	"net/netip"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

// KindKeyScan: one source presented many distinct keys within a window (key scanning, or a
// stolen key list being tried).
const KindKeyScan = "key_scan"

// A source presents a key when admind sees it claim an unbound key or be refused a key bound
// elsewhere. Keys a source uses under its own bindings are decided by the plugin alone and
// never counted: they are that source's keys.

// presented adds keys to the source's set of distinct keys in the window that opened with
// its first key, holding at most threshold of them, and fires once per window when the set
// is full. KEYS: set, fired flag. ARGV: window ms, threshold, key hashes...
var presented = redis.NewScript(`
local win, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV do
  if redis.call('SCARD', KEYS[1]) < threshold and redis.call('SADD', KEYS[1], ARGV[i]) == 1 and redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], win)
  end
end
local n = redis.call('SCARD', KEYS[1])
local fire = 0
if n >= threshold and redis.call('SET', KEYS[2], '1', 'NX', 'PX', win) then fire = 1 end
return {fire, n}`)

// scanKey, scanFiredKey and scanBlockKey are per source (the client address widened to the
// claim prefix, as for the claim limit).
func scanKey(source netip.Prefix) string      { return "sentinel:scan:" + source.String() }
func scanFiredKey(source netip.Prefix) string { return "sentinel:scan:" + source.String() + ":fired" }

// scanBlockKey, while it exists, refuses new claims from the source (scan_block_seconds).
func scanBlockKey(source netip.Prefix) string { return "sentinel:scanblock:" + source.String() }

// Presented counts keys a client address presented (claims and refusals) toward the key-scan
// detector; at scan_threshold distinct keys within scan_window_seconds it raises one alert,
// and with scan_block_seconds refuses the source's new claims that long.
func (e *Evaluator) Presented(ctx context.Context, ip netip.Addr, keyHashes ...string) {
	set := e.Settings()
	if set.ScanThreshold <= 0 || len(keyHashes) == 0 {
		return
	}
	source := bindings.FirstUsePrefix(ip, set.ClaimPrefixV4, set.ClaimPrefixV6)
	window := time.Duration(set.ScanWindowSeconds) * time.Second
	args := []any{window.Milliseconds(), set.ScanThreshold}
	for _, h := range keyHashes {
		args = append(args, h)
	}
	res, err := presented.Run(ctx, e.Redis, []string{scanKey(source), scanFiredKey(source)}, args...).Int64Slice()
	if err != nil || len(res) != 2 {
		e.Log.Warn("key-scan counter failed", "err", err)
		return
	}
	if res[0] != 1 {
		return
	}
	now := e.Now()
	a := Alert{ID: newID(), Kind: KindKeyScan, At: now.UTC(), Source: source.String(), Count: res[1],
		WindowSeconds: set.ScanWindowSeconds, WindowStart: now.UTC()}
	if set.ScanBlockSeconds > 0 {
		block := time.Duration(set.ScanBlockSeconds) * time.Second
		if err := e.Redis.Set(ctx, scanBlockKey(source), "1", block).Err(); err != nil {
			e.Log.Error("key-scan block failed", "source", source.String(), "err", err)
		} else {
			a.ClaimsRefusedSeconds = set.ScanBlockSeconds
		}
	}
	e.Log.Warn("alert: one source presented many keys", "alert_id", a.ID, "source", a.Source, "keys", a.Count,
		"window_s", a.WindowSeconds, "claims_refused_s", a.ClaimsRefusedSeconds)
	e.Notify(a)
}

// presentedByIntercepts counts the keys each address was refused, for the key-scan detector.
func (e *Evaluator) presentedByIntercepts(ctx context.Context, list []bindings.Intercept) {
	byIP := map[netip.Addr][]string{}
	for _, ic := range list {
		byIP[ic.IP] = append(byIP[ic.IP], ic.KeyHash)
	}
	for ip, hashes := range byIP {
		e.Presented(ctx, ip, hashes...)
	}
}

// ClaimBlocked says how long the source of ip is still refused new claims (0: not), for
// bindings.Service. Without scan_block_seconds nothing is blocked and Redis is not asked; a
// Redis failure is not a refusal either, as with the claim limit.
func (e *Evaluator) ClaimBlocked(ctx context.Context, ip netip.Addr) time.Duration {
	set := e.Settings()
	if set.ScanThreshold <= 0 || set.ScanBlockSeconds <= 0 {
		return 0
	}
	d, err := e.Redis.PTTL(ctx, scanBlockKey(bindings.FirstUsePrefix(ip, set.ClaimPrefixV4, set.ClaimPrefixV6))).Result()
	if err != nil {
		e.Log.Warn("key-scan block check failed", "err", err)
		return 0
	}
	return max(d, 0)
}
