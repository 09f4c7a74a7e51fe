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

	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/web"
)

type serveConfig struct {
	addr       string
	dataDir    string
	engine     string
	heartbeat  time.Duration
	retry      time.Duration
	perTopic   int
	maxAge     time.Duration
	maxBytes   int64
	queueLen   int
	publishKey string
	drain      time.Duration
	logFormat  string
	logLevel   string
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := newFlags("serve", stderr)
	fs.StringVar(&c.addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.dataDir, "data-dir", "herald-data", "directory for the message log and the publisher key (created if missing)")
	fs.StringVar(&c.engine, "engine", "", `message log: empty for the embedded durable log, "memory", or nats://host:4222`)
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Second, "interval of SSE heartbeat comments (keep below proxy read timeouts)")
	fs.DurationVar(&c.retry, "retry", 2*time.Second, "reconnection delay advised to SSE clients")
	fs.IntVar(&c.perTopic, "retention-per-topic", 1000, "messages of history kept per topic (0: no limit)")
	fs.DurationVar(&c.maxAge, "retention-max-age", 24*time.Hour, "age after which history is removed (0: no limit)")
	fs.Int64Var(&c.maxBytes, "retention-max-bytes", 1<<30, "bytes of history kept in all (0: no limit)")
	fs.IntVar(&c.queueLen, "queue-len", 1024, "live messages a subscriber may have waiting before it is disconnected to resume from history")
	fs.StringVar(&c.publishKey, "publish-key", "", "an additional publisher key (the generated one in the data dir always works)")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "how long in-flight publishes may take to finish at shutdown")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	key, created, err := publisherKey(c.dataDir)
	if err != nil {
		return err
	}
	retention := hub.Retention{PerTopic: c.perTopic, MaxAge: c.maxAge, MaxBytes: c.maxBytes}
	log, closeLog, err := openLog(ctx, c.engine, c.dataDir, retention, logger)
	if err != nil {
		return err
	}
	defer closeLog()

	h := hub.New(hub.Config{Log: log, QueueLen: c.queueLen, Logger: logger})
	keys := []string{key}
	if c.publishKey != "" {
		keys = append(keys, c.publishKey)
	}
	srv := server.New(server.Config{
		Hub: h, PublishKeys: keys, Heartbeat: c.heartbeat, Retry: c.retry,
		Web: web.Handler(), Logger: logger,
	})
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second, // slowloris
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}

	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	announce(stdout, ln.Addr().(*net.TCPAddr), key, created, c.dataDir)
	logger.Info("herald started", "addr", ln.Addr().String(), "engine", engineName(c.engine), "data_dir", c.dataDir)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopHub()
		<-hubDone
		return err
	}

	// Shutdown order: stop advertising readiness and accepting publishes, end every stream
	// with jittered reconnect advice (clients resume elsewhere or after the restart), let
	// in-flight requests finish, then stop tailing the log and close it (deferred).
	logger.Info("shutting down")
	srv.Drain()
	h.Close()
	sctx, cancel := context.WithTimeout(context.Background(), c.drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("shutdown", "err", err)
	}
	stopHub()
	<-hubDone
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

func newLogger(c serveConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", c.logFormat)
}
