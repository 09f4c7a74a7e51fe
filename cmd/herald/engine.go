package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
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
	spec, params, err := splitParams(spec)
	if err != nil {
		return nil, err
	}
	prefix := params.prefix
	switch {
	case spec == "memory":
		return &engine{log: memory.New(memory.Config{Retention: r}), close: func() error { return nil }}, nil
	case spec == "", strings.HasPrefix(spec, "nats://"), strings.HasPrefix(spec, "tls://"):
		// Empty: JetStream embedded in this process, stored under the data directory.
		l, err := jetstream.Open(ctx, jetstream.Config{
			URL:       spec,
			Stream:    prefix,
			Replicas:  params.replicas,
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

// engineParams are the Herald parameters of an engine URL, taken off before the URL reaches
// the engine's client.
type engineParams struct {
	prefix   string // JetStream stream name or Redis key prefix: several clusters, one engine
	replicas int    // JetStream stream replicas on a NATS cluster (R3 in production)
}

// splitParams takes Herald's query parameters off an engine URL:
// nats://host:4222?prefix=SHOP&replicas=3, redis://host:6379/0?prefix=shop.
func splitParams(spec string) (string, engineParams, error) {
	var p engineParams
	base, query, ok := strings.Cut(spec, "?")
	if !ok {
		return spec, p, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", p, fmt.Errorf("--engine: %w", err)
	}
	p.prefix = q.Get("prefix")
	if r := q.Get("replicas"); r != "" {
		if p.replicas, err = strconv.Atoi(r); err != nil || p.replicas < 1 || p.replicas > 5 {
			return "", p, fmt.Errorf("--engine: replicas must be 1 to 5, not %q", r)
		}
		if !strings.HasPrefix(base, "nats://") && !strings.HasPrefix(base, "tls://") {
			return "", p, fmt.Errorf("--engine: replicas applies to an external NATS only")
		}
	}
	q.Del("prefix")
	q.Del("replicas")
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	return base, p, nil
}
