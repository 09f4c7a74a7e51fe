package jetstream

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

const natsURL = "nats://127.0.0.1:4222"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// opener opens a fresh log of one backend; cfg.Stream and cfg.DataDir are filled in.
type opener func(t testing.TB, cfg Config) *Log

// backends runs fn against the embedded server and against the real NATS at natsURL.
func backends(t *testing.T, fn func(t *testing.T, open opener)) {
	t.Run("embedded", func(t *testing.T) { fn(t, openEmbedded) })
	t.Run("external", func(t *testing.T) {
		requireNATS(t)
		fn(t, openExternal)
	})
}

// requireNATS skips unless the shared NATS answers; under CI=true its absence is a failure.
func requireNATS(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("NATS at %s is required under CI=true: %v", natsURL, err)
	}
	t.Skipf("no NATS at %s (%v): start nats-server -js to run the external tests", natsURL, err)
}

func uniqueStream() string { return "T_" + newEpoch() }

func openEmbedded(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Stream == "" {
		cfg.Stream = uniqueStream()
	}
	cfg.Logger = quiet
	l, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open(embedded): %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func openExternal(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = natsURL
	}
	if cfg.Stream == "" {
		cfg.Stream = uniqueStream()
	}
	cfg.Logger = quiet
	l, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.URL, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range []string{l.stream, l.retainStream} {
			if err := l.js.DeleteStream(ctx, s); err != nil {
				t.Logf("delete stream %s: %v", s, err)
			}
		}
		l.Close()
	})
	return l
}

func msg(topics []string, data string) *hub.Message {
	return &hub.Message{Topics: topics, Data: []byte(data)}
}

func appendOK(t testing.TB, l *Log, msgs ...*hub.Message) []bool {
	t.Helper()
	dup, err := l.Append(testCtx(t), msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return dup
}

func readAll(t testing.TB, l *Log, f *hub.Filter) []*hub.Message {
	t.Helper()
	last, err := l.Last(testCtx(t))
	if err != nil {
		t.Fatalf("Last: %v", err)
	}
	got, err := l.Read(testCtx(t), 0, last, f, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}
