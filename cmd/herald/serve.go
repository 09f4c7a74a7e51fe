package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/herald-push/herald/internal/config"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/presence"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/web"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	c, err := config.Load(args, fs, os.LookupEnv)
	if err != nil {
		return err
	}
	logger, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	key, created, err := publisherKey(c.DataDir)
	if err != nil {
		return err
	}
	retention := hub.Retention{PerTopic: c.Retention.PerTopic, MaxAge: c.Retention.MaxAge, MaxBytes: c.Retention.MaxBytes}

	// Listen first: while the engine is unreachable the node is alive but not ready, and a
	// load balancer sends it nothing.
	handler := &swapHandler{}
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second, // slowloris
		MaxHeaderBytes:    c.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	openCtx, stopOpen := context.WithCancel(ctx)
	go func() { // a failed listener must not leave us retrying forever
		select {
		case err := <-serveErr:
			serveErr <- err
			stopOpen()
		case <-openCtx.Done():
		}
	}()
	eng, err := openRetrying(openCtx, func(ctx context.Context) (*engine, error) {
		return openLog(ctx, c.Engine, c.DataDir, retention, logger)
	}, logger)
	stopOpen()
	if err != nil {
		hs.Close()
		if ctx.Err() != nil {
			return nil
		}
		select {
		case err := <-serveErr:
			return err
		default:
		}
		return err
	}
	defer eng.close()

	h := hub.New(hub.Config{
		Log: eng.log, QueueLen: c.Limits.QueueLen, MaxData: c.Limits.MaxData,
		MaxFilters: c.Limits.MaxTopics, Logger: logger,
	})
	tracker := presence.New(presence.Config{Hub: h, Store: eng.presence, Logger: logger})
	srv := server.New(server.Config{
		Hub: h, PublishKeys: append([]string{key}, c.Publish.Keys...),
		Heartbeat: c.SSE.Heartbeat, Retry: c.SSE.Retry,
		MaxBody: c.Limits.MaxBody, MaxBatch: c.Limits.MaxBatch,
		Web: web.Handler(), Presence: tracker, Logger: logger,
	})
	handler.set(srv)

	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	presenceDone := make(chan struct{})
	go func() { tracker.Run(hubCtx); close(presenceDone) }()
	stopAll := func() { stopHub(); <-hubDone; <-presenceDone }

	announce(stdout, ln.Addr().(*net.TCPAddr), key, created, c.DataDir)
	logger.Info("herald started", "addr", ln.Addr().String(), "engine", engineName(c.Engine), "data_dir", c.DataDir)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopAll()
		return err
	}

	// Shutdown order: stop advertising readiness and accepting publishes, end every stream
	// with jittered reconnect advice (clients resume elsewhere or after the restart), let
	// in-flight requests finish, then stop tailing the log and close it (deferred).
	logger.Info("shutting down")
	srv.Drain()
	h.Close()
	sctx, cancel := context.WithTimeout(context.Background(), c.Shutdown.Drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("shutdown", "err", err)
	}
	stopAll()
	logger.Info("stopped")
	return nil
}

func announce(w io.Writer, addr *net.TCPAddr, key string, created bool, dataDir string) {
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	base := fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
	fmt.Fprintf(w, "Herald is listening on %s\n", base)
	fmt.Fprintf(w, "  dashboard and demo: %s/\n", base)
	fmt.Fprintf(w, "  subscribe (SSE):    curl -N '%s/events?topic=demo'\n", base)
	fmt.Fprintf(w, "  publish:            curl -H 'Authorization: Bearer %s' -d topic=demo -d data=hello %s/publish\n", key, base)
	if created {
		fmt.Fprintf(w, "  publisher key generated and stored in %s/%s\n", dataDir, keyFile)
	}
}

func newLogger(c *config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Log.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format must be text or json, not %q", c.Log.Format)
}
