package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herald-push/herald/internal/config"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/poll"
	"github.com/herald-push/herald/internal/presence"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/ws"
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
	authn, err := authenticator(c, key)
	if err != nil {
		return err
	}
	retention := hub.Retention{PerTopic: c.Retention.PerTopic, MaxAge: c.Retention.MaxAge, MaxBytes: c.Retention.MaxBytes}

	// Listen first: while the engine is unreachable the node is alive but not ready (a load
	// balancer sends it nothing), and it retries the engine with backoff.
	handler := &swapHandler{}
	hs, err := httpServer(c, handler, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	// Read before serving: Serve configures HTTP/2 on first use, which fills in a nil TLSConfig
	// (with h2c on), so reading it afterwards races and may call a plain listener https.
	https := hs.TLSConfig != nil
	go func() {
		if https {
			serveErr <- hs.ServeTLS(ln, "", "")
		} else {
			serveErr <- hs.Serve(ln)
		}
	}()
	eng, err := openRetrying(ctx, serveErr, func(ctx context.Context) (*engine, error) {
		return openLog(ctx, c.Engine, c.DataDir, retention, logger)
	}, logger)
	if err != nil {
		hs.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer eng.close()

	h := hub.New(hub.Config{
		Log: eng.log, QueueLen: c.Limits.QueueLen, MaxData: c.Limits.MaxData,
		MaxFilters: c.Limits.MaxTopics, Logger: logger,
	})
	tracker := presence.New(presence.Config{Hub: h, Store: eng.presence, Logger: logger})
	var pages http.Handler
	if c.Dashboard {
		pages = web.Handler()
	}
	proxies, _ := c.Limits.Proxies() // validated by config.Load
	srv := server.New(server.Config{
		Hub: h, PublishKeys: append([]string{key}, c.Publish.Keys...),
		Heartbeat: c.SSE.Heartbeat, Retry: c.SSE.Retry,
		MaxBody: c.Limits.MaxBody, MaxBatch: c.Limits.MaxBatch,
		Web: pages, Logger: logger, Presence: tracker,
		LogRequests: c.Log.Requests, Metrics: c.Admin.Addr == "",
		Engine: engineName(c.Engine), Version: version,
		WS: &ws.Handler{
			OriginPatterns: c.WS.AllowedOrigins, AllowAnonymousPublish: c.WS.AllowAnonymousPublish,
			Compression: c.WS.Compression, CompressionThreshold: c.WS.CompressionThreshold,
			MaxMessage: c.WS.MaxMessage, MaxSubscriptions: c.WS.MaxSubscriptions,
			PublishRate: c.WS.PublishRate, PublishBurst: c.WS.PublishBurst,
			PingInterval: c.WS.PingInterval, PongTimeout: c.WS.PongTimeout,
		},
		Poll: &poll.Handler{Timeout: c.Poll.Timeout, MaxTimeout: c.Poll.MaxTimeout},
		Auth: authn, Cookie: c.Auth.Cookie, QueryToken: c.Auth.QueryToken,
		Origins: c.CORS.AllowedOrigins, CORSMaxAge: c.CORS.MaxAge,
		Limits: server.Limits{
			ConnsPerIP: c.Limits.ConnsPerIP, ConnsPerIdentity: c.Limits.ConnsPerIdentity,
			TrustedProxies: proxies,
			Handshakes:     c.Limits.Handshakes, HandshakeWait: c.Limits.HandshakeWait,
		},
	})
	hs.RegisterOnShutdown(srv.CloseWebSockets) // Shutdown does not wait for hijacked connections
	handler.set(srv)
	var admin *http.Server
	adminErr := make(chan error, 1)
	if c.Admin.Addr != "" {
		aln, err := net.Listen("tcp", c.Admin.Addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin.addr: %w", err)
		}
		admin = &http.Server{Handler: srv.Admin(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: hs.ErrorLog}
		go func() { adminErr <- admin.Serve(aln) }()
		defer admin.Close()
		logger.Info("admin listener", "addr", aln.Addr().String(), "paths", "/metrics /healthz /readyz /debug/pprof/")
	}
	for _, k := range config.UnknownEnv(os.Environ()) {
		logger.Warn("unknown environment variable ignored (a typo?)", "name", k)
	}

	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	presenceDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	go func() { tracker.Run(hubCtx); close(presenceDone) }()
	stopAll := func() { stopHub(); <-hubDone; <-presenceDone }

	// The engine is open; give the hub a moment to start tailing it, so that "listening" means
	// "subscriptions work" to whoever reads the announcement (people, scripts, tests).
	for deadline := time.Now().Add(5 * time.Second); !h.Ready() && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	announce(stdout, ln.Addr().(*net.TCPAddr), key, created, c.DataDir, https)
	logger.Info("herald started", "addr", ln.Addr().String(), "engine", engineName(c.Engine), "data_dir", c.DataDir,
		"tls", https, "h2c", c.H2C)
	if open := anonymousSubscribe(c); len(open) == 1 && open[0] == "**" && len(c.Auth.AnonymousSubscribe) == 0 {
		logger.Warn("anyone may subscribe to every topic without a token: configure auth.jwt_secret (or jwt_keys, jwks_url) to require tokens, see docs/security.md")
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopAll()
		return err
	case err := <-adminErr:
		hs.Close()
		stopAll()
		return fmt.Errorf("admin listener: %w", err)
	}
	shutdown(c, srv, h, hs, logger)
	stopAll()
	logger.Info("stopped")
	return nil
}

// shutdown stops the server gracefully, in this order:
//
//  1. /readyz answers 503 and new publishes are refused with 503 + Retry-After, so load
//     balancers and publishers move to other nodes; streams carry on for shutdown.delay.
//  2. The listener closes and open streams are ended spread over shutdown.drain, each told to
//     come back after a jittered delay: clients resume from their last id on another node or
//     after the restart, without a reconnect storm.
//  3. In-flight requests (publishes, history) finish: http.Server.Shutdown waits for them, up to
//     shutdown.drain plus a grace period. Then the caller stops tailing the log and closes it.
//
// A second SIGINT/SIGTERM skips the waiting and ends everything at once.
func shutdown(c *config.Config, srv *server.Server, h *hub.Hub, hs *http.Server, logger *slog.Logger) {
	const grace = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), c.Shutdown.Delay+c.Shutdown.Drain+grace)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			logger.Warn("second signal: closing everything now")
			cancel()
		case <-ctx.Done():
		}
	}()

	logger.Info("shutting down", "subscribers", h.Subscribers(), "delay", c.Shutdown.Delay, "drain", c.Shutdown.Drain)
	srv.Drain()
	if c.Shutdown.Delay > 0 {
		t := time.NewTimer(c.Shutdown.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	done := make(chan error, 1)
	go func() { done <- hs.Shutdown(ctx) }()
	start := time.Now()
	h.Drain(ctx, c.Shutdown.Drain)
	logger.Info("streams closed", "took", time.Since(start).Round(time.Millisecond))
	if err := <-done; err != nil {
		logger.Warn("shutdown: requests still running were cut off", "err", err)
		hs.Close()
	}
	h.Close()
}

// httpServer configures the main listener: HTTP/1.1, HTTP/2 over TLS when tls.cert is set,
// and HTTP/2 without TLS when h2c is on.
func httpServer(c *config.Config, handler http.Handler, logger *slog.Logger) (*http.Server, error) {
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second, // slowloris
		MaxHeaderBytes:    c.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// No WriteTimeout: streams live for hours; they set a deadline per write instead.
	}
	var p http.Protocols
	p.SetHTTP1(true)
	if c.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert/tls.key: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		p.SetHTTP2(true)
	}
	if c.H2C {
		p.SetUnencryptedHTTP2(true)
	}
	hs.Protocols = &p
	return hs, nil
}

func announce(w io.Writer, addr *net.TCPAddr, key string, created bool, dataDir string, https bool) {
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	base := fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, fmt.Sprint(addr.Port)))
	// One write, so that a reader who sees the first line sees them all.
	var b strings.Builder
	fmt.Fprintf(&b, "Herald is listening on %s\n", base)
	fmt.Fprintf(&b, "  dashboard and demo: %s/\n", base)
	fmt.Fprintf(&b, "  subscribe (SSE):    curl -N '%s/events?topic=demo'\n", base)
	fmt.Fprintf(&b, "  publish:            curl -H 'Authorization: Bearer %s' -d topic=demo -d data=hello %s/publish\n", key, base)
	if created {
		fmt.Fprintf(&b, "  publisher key generated and stored in %s/%s\n", dataDir, keyFile)
	}
	io.WriteString(w, b.String())
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
