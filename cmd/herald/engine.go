package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

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
	case spec == "":
		// TODO(engine-jetstream): the embedded JetStream log becomes the default.
		return memory.New(memory.Config{Retention: r}), func() error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("--engine %q: unknown engine (use memory or nats://host:port)", spec)
}
