package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/hub/hubtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sharedRedis is the Redis every CI run has; tests skip locally without it.
func sharedRedis(t testing.TB) string {
	return "redis://" + heraldtest.RequireService(t, "Redis", "127.0.0.1:6379") + "/0"
}

// uniquePrefix keeps tests on a shared Redis apart.
func uniquePrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "heraldtest:" + hex.EncodeToString(b[:])
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens a log under a fresh prefix and deletes its keys when the test ends.
func open(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = uniquePrefix()
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	l, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.wipe(ctx)
		l.Close()
	})
	return l
}

func TestConformance(t *testing.T) {
	url := sharedRedis(t)
	hubtest.TestLog(t, func(t *testing.T, r hub.Retention) hub.Log {
		return open(t, Config{URL: url, Retention: r})
	})
}
