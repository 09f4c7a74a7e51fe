package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded runs a nats-server in this process with JetStream on a file store. It opens no
// port: the only client is this process, through nats.InProcessServer.
func startEmbedded(cfg Config, logger *slog.Logger) (*server.Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("jetstream: DataDir is required for the embedded server (or set URL)")
	}
	opts := &server.Options{
		ServerName: "herald-embedded",
		DontListen: true,
		NoSigs:     true, // signals belong to the Herald process
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		SyncAlways: cfg.SyncAlways,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("jetstream: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{logger.With("component", "nats-server")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) { // recovering a large store takes a while
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("jetstream: embedded server in %s not ready", cfg.DataDir)
	}
	return srv, nil
}

// serverLogger sends nats-server's log to slog. Its notices (banner, store recovery) are
// debug-level for Herald; warnings and errors keep their level.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s serverLogger) Warnf(format string, v ...any)   { s.log(slog.LevelWarn, format, v) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.log(slog.LevelError, format, v) }
func (s serverLogger) Errorf(format string, v ...any)  { s.log(slog.LevelError, format, v) }
func (s serverLogger) Debugf(format string, v ...any)  { s.log(slog.LevelDebug, format, v) }
func (s serverLogger) Tracef(format string, v ...any)  {}

func (s serverLogger) log(level slog.Level, format string, v []any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}
