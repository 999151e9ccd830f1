package main

import (
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisXAdd builds an intercept event as the plugin writes it.
type redisXAdd struct {
	hash, ip, ua string
}

func (e redisXAdd) args() *redis.XAddArgs {
	return &redis.XAddArgs{Stream: "sentinel:events", Values: []string{
		"key_hash", e.hash, "key_hint", "sk-…", "ip", e.ip, "reason", "ip_not_allowed",
		"method", "POST", "path", "/v1/chat/completions", "user_agent", e.ua,
		"at", strconv.FormatInt(time.Now().UnixMilli(), 10),
	}}
}
