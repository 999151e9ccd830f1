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
)

const (
	Stream = "sentinel:events"
	Group  = "admind"
)

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
	err := c.RDB.XGroupCreateMkStream(ctx, Stream, Group, "0").Err()
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
		Group: Group, Consumer: c.Name, Streams: []string{Stream, from}, Count: c.Batch, Block: block,
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
		Stream: Stream, Group: Group, Consumer: c.Name, MinIdle: c.MinIdle, Start: "0", Count: c.Batch,
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
	var forwarded, refused int64
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if m.Values["type"] == "failsafe" {
			f, r := parseFailsafe(m.Values)
			forwarded, refused = forwarded+f, refused+r
			continue
		}
		ic, ok := parseEvent(m.Values)
		if !ok {
			c.Log.Warn("dropping malformed intercept event", "id", m.ID)
			continue
		}
		list = append(list, ic)
	}
	if err := c.Store.InsertIntercepts(ctx, list); err != nil {
		return err
	}
	if (forwarded > 0 || refused > 0) && c.OnFailsafe != nil {
		c.OnFailsafe(ctx, forwarded, refused)
	}
	if err := c.RDB.XAck(ctx, Stream, Group, ids...).Err(); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	// Acknowledged entries are written; remove them so the stream holds only pending work.
	return c.RDB.XDel(ctx, Stream, ids...).Err()
}

func parseFailsafe(v map[string]any) (forwarded, refused int64) {
	num := func(k string) int64 {
		s, _ := v[k].(string)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	return num("open"), num("closed")
}

// parseEvent reads an intercept entry, checked as admind checks the same report over HTTP.
func parseEvent(v map[string]any) (bindings.Intercept, bool) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	ev := bindings.Event{KeyHash: str("key_hash"), KeyHint: str("key_hint"), IP: str("ip"), Method: str("method"),
		Path: str("path"), UserAgent: str("user_agent"), Reason: str("reason")}
	ip, err := ev.Check(true)
	if err != nil {
		return bindings.Intercept{}, false
	}
	at := time.Now()
	if ms, err := strconv.ParseInt(str("at"), 10, 64); err == nil {
		at = time.UnixMilli(ms)
	}
	return bindings.Intercept{
		KeyHash: ev.KeyHash, KeyHint: ev.KeyHint, IP: ip, Reason: ev.Reason,
		Method: ev.Method, Path: ev.Path, UserAgent: ev.UserAgent, At: at,
	}, true
}
