// Package testredis gives each test its own key prefix on the Redis server
// the test command provides (127.0.0.1:6379), and deletes the test's keys
// when it ends.
//
// IDP_TEST_REDIS overrides the address. When the server does not answer,
// tests are skipped on a developer machine but fail under CI=true.
package testredis

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// DefaultAddr is the server scripts/test.sh starts.
const DefaultAddr = "127.0.0.1:6379"

// Addr returns the test server's address.
func Addr() string {
	if a := os.Getenv("IDP_TEST_REDIS"); a != "" {
		return a
	}
	return DefaultAddr
}

func dial() (redis.Conn, error) {
	return redis.Dial("tcp", Addr(), redis.DialConnectTimeout(5*time.Second),
		redis.DialReadTimeout(10*time.Second), redis.DialWriteTimeout(10*time.Second))
}

// Prefix checks that the server answers and returns a key prefix no other
// test uses. Every key under it is deleted when t ends.
func Prefix(t testing.TB) string {
	t.Helper()
	c, err := dial()
	if err == nil {
		_, err = c.Do("PING")
		c.Close()
	}
	if err != nil {
		msg := fmt.Sprintf("Redis at %s is not available (scripts/test.sh starts one): %v", Addr(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "idptest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		if err := deleteKeys(prefix); err != nil {
			t.Errorf("testredis: deleting keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// Keys returns the keys under prefix.
func Keys(t testing.TB, prefix string) []string {
	t.Helper()
	keys, err := scan(prefix)
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	return keys
}

func scan(prefix string) ([]string, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var keys []string
	cursor := 0
	for {
		v, err := redis.Values(c.Do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", 1000))
		if err != nil {
			return nil, err
		}
		if cursor, err = redis.Int(v[0], nil); err != nil {
			return nil, err
		}
		batch, err := redis.Strings(v[1], nil)
		if err != nil {
			return nil, err
		}
		keys = append(keys, batch...)
		if cursor == 0 {
			return keys, nil
		}
	}
}

func deleteKeys(prefix string) error {
	keys, err := scan(prefix)
	if err != nil || len(keys) == 0 {
		return err
	}
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	_, err = c.Do("DEL", args...)
	return err
}
