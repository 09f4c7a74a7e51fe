package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/herald-push/herald/internal/engine/jetstream"
	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/engine/redis"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/presence"
)

func engineName(spec string) string {
	if spec == "" {
		return "embedded"
	}
	if i := strings.Index(spec, "://"); i > 0 {
		return spec[:i]
	}
	return spec
}

// engine is an open message log, and the presence store when nodes share it.
type engine struct {
	log      hub.Log
	presence presence.Store // nil: this node alone
	close    func() error
}

// openLog opens the message log named by spec. Errors wrapping hub.ErrUnavailable mean the
// engine could not be reached and a later attempt may succeed; others are configuration errors.
func openLog(ctx context.Context, spec, dataDir string, r hub.Retention, logger *slog.Logger) (*engine, error) {
	spec, prefix, err := splitPrefix(spec)
	if err != nil {
		return nil, err
	}
	switch {
	case spec == "memory":
		return &engine{log: memory.New(memory.Config{Retention: r}), close: func() error { return nil }}, nil
	case spec == "", strings.HasPrefix(spec, "nats://"), strings.HasPrefix(spec, "tls://"):
		// Empty: JetStream embedded in this process, stored under the data directory.
		l, err := jetstream.Open(ctx, jetstream.Config{
			URL:       spec,
			Stream:    prefix,
			DataDir:   filepath.Join(dataDir, "jetstream"),
			Retention: r,
			Logger:    logger,
		})
		if err != nil {
			return nil, err
		}
		e := &engine{log: l, close: l.Close}
		if spec != "" {
			e.presence = l
		}
		return e, nil
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"), strings.HasPrefix(spec, "unix://"):
		l, err := redis.Open(ctx, redis.Config{URL: spec, Prefix: prefix, Retention: r, Logger: logger})
		if err != nil {
			return nil, err
		}
		return &engine{log: l, presence: l, close: l.Close}, nil
	}
	return nil, fmt.Errorf("--engine %q: unknown engine (use memory, nats://host:4222 or redis://host:6379/0)", spec)
}

// splitPrefix takes the "prefix" query parameter off an engine URL: the JetStream stream name
// or the Redis key prefix, so that several Herald clusters can share one engine
// (nats://host:4222?prefix=SHOP, redis://host:6379/0?prefix=shop).
func splitPrefix(spec string) (string, string, error) {
	base, query, ok := strings.Cut(spec, "?")
	if !ok {
		return spec, "", nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("--engine: %w", err)
	}
	prefix := q.Get("prefix")
	q.Del("prefix")
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	return base, prefix, nil
}
