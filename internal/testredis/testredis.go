// Package testredis gives tests the machine's Redis (CI runs one) and a key namespace
// of their own. A test skips when Redis is unreachable, unless CI is set: there it
// fails, so that a missing Redis never passes CI silently.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addr is the test Redis's address (127.0.0.1:6379; FABRIC_TEST_REDIS_ADDR overrides).
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("FABRIC_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s is unreachable and CI is set: %v", addr, err)
		}
		t.Skipf("Redis at %s is unreachable (CI not set): %v", addr, err)
	}
	_ = c.Close()
	return addr
}

// Prefix is a key namespace of this test alone; its keys are deleted when the test
// ends (nothing else is: no FLUSH).
func Prefix(t testing.TB, addr string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "fabric-test:" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}
