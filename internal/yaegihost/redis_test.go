package yaegihost

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// yaegiHMACSecret is the secret secretsEnv gives the plugin.
const yaegiHMACSecret = "yaegi-hmac-secret-0123456789"

// bindInRedis writes entry as the binding of canonicalKey, hashed as the plugin hashes it,
// and returns the hash.
func bindInRedis(tb testing.TB, rdb *redis.Client, canonicalKey, entry string) string {
	tb.Helper()
	hash := identity.Hash([]byte(yaegiHMACSecret), canonicalKey)
	if err := rdb.Set(context.Background(), "sentinel:b:"+hash, entry, 0).Err(); err != nil {
		tb.Fatal(err)
	}
	return hash
}
