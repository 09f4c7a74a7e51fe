package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// swapHandler serves a placeholder until the real server is ready, so that a node whose
// engine is unreachable at start still answers health checks: alive, not ready.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/healthz":
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, `{"status":"ok"}`)
	case "/readyz":
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"status":"log unavailable"}`)
	default:
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"error":"unavailable","message":"the message log is not reachable yet"}`)
	}
}

// openRetrying opens the engine, retrying with backoff (100ms doubling to 5s) while it is
// unreachable, until ctx ends. Configuration errors fail at once.
// A failure of the listener (serveErr) also ends the wait; its error is returned.
func openRetrying(ctx context.Context, serveErr <-chan error, open func(context.Context) (*engine, error), logger *slog.Logger) (*engine, error) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		e, err := open(octx)
		cancel()
		if err == nil {
			if attempt > 1 {
				logger.Info("message log reachable", "attempts", attempt)
			}
			return e, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, hub.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		logger.Error("message log unreachable; retrying (not ready meanwhile)", "err", err, "attempt", attempt, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-serveErr:
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
