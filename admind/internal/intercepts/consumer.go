// Package intercepts moves intercept events from the Redis stream the plugin appends to
// (sentinel:events) into PostgreSQL. A consumer group lets several admind replicas share the
// stream; an event is acknowledged only after its row is written, so a restart loses nothing.
package intercepts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// Group is the consumer group admind's replicas share contract.EventsStream in.
const Group = "admind"

// Writer stores intercepts.
type Writer interface {
	InsertIntercepts(ctx context.Context, list []bindings.Intercept) error
}

// Consumer reads the stream in batches.
type Consumer struct {
	RDB      *redis.Client
	Store    Writer
	Log      *slog.Logger
	Name     string // consumer name, unique per replica
	Batch    int64
	Block    time.Duration
	MinIdle  time.Duration // pending entries of dead consumers older than this are claimed
	Interval time.Duration // pause after an error
	// OnFailsafe sees the plugin's failsafe reports (requests forwarded / refused because
	// neither Redis nor admind could decide).
	OnFailsafe func(ctx context.Context, forwarded, refused int64)
	// OnRejected sees the plugin's count of decide requests admind refused.
	OnRejected func(n int64)
	// OnHiddenClient sees the plugin's count of keyed requests it refused because they came
	// from a relay's address (a network gateway, a trusted proxy that named no client).
	OnHiddenClient func(n int64)
	// OnLimited sees the plugin's count of first uses it refused itself because their source
	// was over its claim limit (plugin/limits.go); admind counted the others as it refused them.
	OnLimited func(n int64)
	// BadRow reports whether a failed insert was PostgreSQL refusing the rows (rather than
	// being unreachable); nil: never. A batch so refused is written row by row, and the rows
	// refused alone are dropped like malformed entries.
	BadRow func(error) bool
	// OnDropped counts entries dropped as malformed or unstorable.
	OnDropped func(n int)
}

// Run consumes until ctx ends.
func (c *Consumer) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.ensureGroup(ctx); err != nil {
			c.pause(ctx, err)
			continue
		}
		// First our own unacknowledged entries (from before a restart), then others' stale
		// ones, then new ones.
		n, err := c.drain(ctx, "0")
		if err == nil && n == 0 {
			n, err = c.claim(ctx)
		}
		if err == nil && n == 0 {
			_, err = c.drain(ctx, ">")
		}
		if err != nil && ctx.Err() == nil {
			c.pause(ctx, err)
		}
	}
}

func (c *Consumer) pause(ctx context.Context, err error) {
	c.Log.Warn("intercept stream", "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(c.Interval):
	}
}

func (c *Consumer) ensureGroup(ctx context.Context) error {
	err := c.RDB.XGroupCreateMkStream(ctx, contract.EventsStream, Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create group: %w", err)
	}
	return nil
}

func (c *Consumer) drain(ctx context.Context, from string) (int, error) {
	block := c.Block
	if from != ">" {
		block = -1 // pending entries: do not block
	}
	res, err := c.RDB.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: Group, Consumer: c.Name, Streams: []string{contract.EventsStream, from}, Count: c.Batch, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	total := 0
	for _, s := range res {
		if err := c.store(ctx, s.Messages); err != nil {
			return total, err
		}
		total += len(s.Messages)
	}
	return total, nil
}

func (c *Consumer) claim(ctx context.Context) (int, error) {
	msgs, _, err := c.RDB.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: contract.EventsStream, Group: Group, Consumer: c.Name, MinIdle: c.MinIdle, Start: "0", Count: c.Batch,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	return len(msgs), c.store(ctx, msgs)
}

func (c *Consumer) store(ctx context.Context, msgs []redis.XMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	list := make([]bindings.Intercept, 0, len(msgs))
	ids := make([]string, 0, len(msgs))
	var counts pluginCounts
	dropped := 0
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if m.Values[contract.FieldType] == contract.EventTypeFailsafe {
			counts.add(parsePluginCounts(m.Values))
			continue
		}
		ic, ok := parseEvent(m.Values, time.Now())
		if !ok {
			c.Log.Warn("dropping malformed intercept event", "id", m.ID)
			dropped++
			continue
		}
		list = append(list, ic)
	}
	n, err := c.insert(ctx, list)
	if err != nil {
		return err
	}
	dropped += n
	if dropped > 0 && c.OnDropped != nil {
		c.OnDropped(dropped)
	}
	if (counts.forwarded > 0 || counts.refused > 0) && c.OnFailsafe != nil {
		c.OnFailsafe(ctx, counts.forwarded, counts.refused)
	}
	if counts.rejected > 0 {
		c.Log.Warn("the plugin reports decide requests admind refused", "count", counts.rejected)
		if c.OnRejected != nil {
			c.OnRejected(counts.rejected)
		}
	}
	if counts.hidden > 0 {
		c.Log.Warn("the plugin refused keyed requests from a relay's address (a gateway or a proxy that named no client); see README, client addresses", "count", counts.hidden)
		if c.OnHiddenClient != nil {
			c.OnHiddenClient(counts.hidden)
		}
	}
	if counts.limited > 0 && c.OnLimited != nil {
		c.OnLimited(counts.limited)
	}
	if err := c.RDB.XAck(ctx, contract.EventsStream, Group, ids...).Err(); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	// Acknowledged entries are written; remove them so the stream holds only pending work.
	return c.RDB.XDel(ctx, contract.EventsStream, ids...).Err()
}

// insert writes list; when PostgreSQL refuses the batch it writes row by row and returns how
// many rows it refused alone (dropped). Any other failure is returned, and nothing is dropped.
func (c *Consumer) insert(ctx context.Context, list []bindings.Intercept) (dropped int, err error) {
	err = c.Store.InsertIntercepts(ctx, list)
	if err == nil || c.BadRow == nil || !c.BadRow(err) {
		return 0, err
	}
	for _, ic := range list {
		if err := c.Store.InsertIntercepts(ctx, []bindings.Intercept{ic}); err != nil {
			if !c.BadRow(err) {
				return 0, err // rows written so far are written again on retry: acceptable for a log
			}
			c.Log.Warn("dropping an intercept event PostgreSQL refused", "err", err)
			dropped++
		}
	}
	return dropped, nil
}

// pluginCounts are the tallies in the plugin's periodic counter event (type "failsafe").
type pluginCounts struct {
	forwarded, refused int64 // failsafe mode: forwarded unbound / answered 503
	rejected           int64 // decide requests admind refused
	hidden             int64 // keyed requests refused as coming from a relay's address
	limited            int64 // first uses refused by the plugin: their source is over its claim limit
}

func (p *pluginCounts) add(q pluginCounts) {
	p.forwarded += q.forwarded
	p.refused += q.refused
	p.rejected += q.rejected
	p.hidden += q.hidden
	p.limited += q.limited
}

func parsePluginCounts(v map[string]any) pluginCounts {
	num := func(k string) int64 {
		s, _ := v[k].(string)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	return pluginCounts{forwarded: num(contract.FieldOpen), refused: num(contract.FieldClosed), rejected: num(contract.FieldRejected), hidden: num(contract.FieldHidden),
		limited: num(contract.FieldLimited)}
}

// earliestEvent is older than any event this project's plugin wrote; an `at` before it, or
// more than maxClockSkew after now, is not one of its events (and may not even be a time
// PostgreSQL can store).
var earliestEvent = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

const maxClockSkew = time.Hour

// parseEvent reads an intercept entry, checked as admind checks the same report over HTTP.
// An entry without `at` is dated now.
func parseEvent(v map[string]any, now time.Time) (bindings.Intercept, bool) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	ev := contract.Event{KeyHash: str(contract.FieldKeyHash), KeyHint: str(contract.FieldKeyHint), IP: str(contract.FieldIP),
		Method: str(contract.FieldMethod), Path: str(contract.FieldPath), UserAgent: str(contract.FieldUserAgent),
		Reason: str(contract.FieldReason)}
	ip, err := ev.Check(true)
	if err != nil {
		return bindings.Intercept{}, false
	}
	switch str(contract.FieldForwarded) {
	case "true":
		ev.Forwarded = true
	case "false", "": // absent: a plugin from before monitor-mode intercepts were marked
	default:
		return bindings.Intercept{}, false
	}
	at := now
	if s := str(contract.FieldAt); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bindings.Intercept{}, false
		}
		at = time.UnixMilli(ms)
		if at.Before(earliestEvent) || at.After(now.Add(maxClockSkew)) {
			return bindings.Intercept{}, false
		}
	}
	return bindings.Intercept{
		KeyHash: ev.KeyHash, KeyHint: ev.KeyHint, IP: ip, Reason: ev.Reason, Outcome: bindings.OutcomeOf(ev.Forwarded),
		Method: ev.Method, Path: ev.Path, UserAgent: ev.UserAgent, At: at,
	}, true
}
