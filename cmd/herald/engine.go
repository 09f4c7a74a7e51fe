package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/herald-push/herald/internal/engine/jetstream"
	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
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

// openLog opens the message log named by spec. The returned func closes it.
func openLog(ctx context.Context, spec, dataDir string, r hub.Retention, logger *slog.Logger) (hub.Log, func() error, error) {
	switch {
	case spec == "memory":
		return memory.New(memory.Config{Retention: r}), func() error { return nil }, nil
	case spec == "", strings.HasPrefix(spec, "nats://"), strings.HasPrefix(spec, "tls://"):
		// Empty: JetStream embedded in this process, stored under the data directory.
		l, err := jetstream.Open(ctx, jetstream.Config{
			URL:       spec,
			DataDir:   filepath.Join(dataDir, "jetstream"),
			Retention: r,
			Logger:    logger,
		})
		if err != nil {
			return nil, nil, err
		}
		return l, l.Close, nil
	}
	return nil, nil, fmt.Errorf("--engine %q: unknown engine (use memory or nats://host:port)", spec)
}
