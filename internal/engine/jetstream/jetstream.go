// Package jetstream is the hub.Log engine backed by NATS JetStream: an embedded nats-server
// writing to a local directory, or an external NATS (cluster) shared by several Herald nodes.
//
// The log is one stream: its sequence is the message Seq, its limits enforce hub.Retention, its
// dedup window enforces idempotency keys. Retained values live in a second stream holding one
// message per topic. Topics map to subjects losslessly (see subject.go), so JetStream filters by
// topic and pattern; results are still filtered exactly with the hub's own matching.
//
// The package owns no goroutine beyond a call: Tail runs in its caller's goroutine.
// docs/engines/jetstream.md describes the layout and the durability each setting gives.
package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-push/herald/internal/hub"
)

// Config says where the log lives and how much of it to keep.
type Config struct {
	// URL of an external NATS, e.g. "nats://127.0.0.1:4222". Empty means an embedded
	// nats-server, in this process and without a network listener, storing under DataDir.
	URL string

	// DataDir is the embedded server's JetStream store directory; required when URL is empty.
	DataDir string

	// Stream names the log stream; "" means "HERALD". It is also the subject prefix, and
	// retained values go to Stream+"_RETAIN". Letters, digits, '-' and '_' only.
	Stream string

	Retention hub.Retention // enforced by JetStream limits

	Replicas int // stream replicas on a NATS cluster; 0 means 1

	// DuplicateWindow is how long an IdempotencyKey is remembered; 0 means 2 minutes.
	DuplicateWindow time.Duration

	// SyncAlways makes the embedded server fsync every write before acknowledging it, so an
	// acknowledged message survives power loss. Without it, an acknowledged message has been
	// written to the operating system (it survives kill -9 of this process) and is fsynced
	// within JetStream's sync interval (2 minutes). Ignored for an external NATS, whose own
	// configuration decides.
	SyncAlways bool

	// AckTimeout bounds the wait for the store's acknowledgement of a publish; 0 means 30s.
	// A store that failed to write (full disk) never answers: the timeout ends the wait.
	AckTimeout time.Duration

	Logger *slog.Logger // nil means slog.Default()
}

// Log is a hub.Log stored in JetStream. Its methods are safe for concurrent use.
type Log struct {
	cfg    Config
	logger *slog.Logger
	srv    *server.Server // the embedded server, or nil
	nc     *nats.Conn
	js     jetstream.JetStream

	stream       string // log stream name
	retainStream string
	topicBase    string           // <prefix>.t
	multiSubject string           // <prefix>.m
	retainBase   string           // <prefix>.r
	epoch        atomic.Value     // string; changes when the stream is recreated (see recreate)
	logS         jetstream.Stream // handles for info and direct gets
	retainS      jetstream.Stream

	epochCheck time.Duration // how often Tail verifies the epoch while idle

	pubOpts []jetstream.PublishOpt

	// broken is 1 once the embedded store reported a write error: Append checks the store
	// first. A plain int32 (atomic functions) because tests copy a Log.
	broken int32

	// unverified is 1 after a disconnection from NATS: the server may have come back without
	// the stream, and another node may have recreated it with a new epoch. Append checks the
	// epoch before minting ids until it matches; Last adopts the new one (see read.go).
	unverified int32

	presence *presenceKV // see presence.go; a pointer, so that copies of a Log share it
}

var _ hub.Log = (*Log)(nil)

const epochKey = "herald_epoch"

// Open connects to (or starts) NATS and creates the streams unless they exist. An existing log
// stream keeps its epoch; a new one gets a fresh epoch.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Stream == "" {
		cfg.Stream = "HERALD"
	}
	if !validStreamName(cfg.Stream) {
		return nil, fmt.Errorf("jetstream: stream name %q: use letters, digits, '-' and '_'", cfg.Stream)
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	l := &Log{
		cfg:          cfg,
		logger:       cfg.Logger,
		stream:       cfg.Stream,
		retainStream: cfg.Stream + "_RETAIN",
		topicBase:    cfg.Stream + ".t",
		multiSubject: cfg.Stream + ".m",
		retainBase:   cfg.Stream + ".r",
		epochCheck:   5 * time.Second,
		presence:     &presenceKV{},
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.logger = l.logger.With("engine", "jetstream", "stream", cfg.Stream)

	if err := l.connect(); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.setup(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func validStreamName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) && s[i] != '_' {
			return false
		}
	}
	return s != ""
}

func (l *Log) connect() error {
	opts := []nats.Option{
		nats.Name("herald"),
		nats.MaxReconnects(-1), // a node outlives NATS restarts; calls fail with ErrUnavailable meanwhile
		nats.ReconnectWait(250 * time.Millisecond),
		// No buffering while reconnecting: a publish then fails at once (503) instead of
		// failing on timeout and being stored later anyway, which would turn "not
		// acknowledged" into "stored after all".
		nats.ReconnectBufSize(-1),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			atomic.StoreInt32(&l.unverified, 1)
			if err != nil {
				l.logger.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.logger.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}
	url := l.cfg.URL
	if url == "" {
		srv, err := startEmbedded(l.cfg, l.logger)
		if err != nil {
			return err
		}
		l.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("jetstream: connect %s: %w", url, fmt.Errorf("%w: %w", hub.ErrUnavailable, err))
	}
	l.nc = nc
	// Acks time out so that an abandoned publish cannot pin memory forever; a stalled
	// publisher (too many acks pending) waits at most stallWait and then fails as unavailable.
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncTimeout(l.cfg.AckTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	l.js = js
	// No retries on "no responders": a retried message could land after the next one of its
	// batch, breaking order. The caller retries the whole batch with its idempotency keys.
	l.pubOpts = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0), jetstream.WithStallWait(stallWait)}
	return nil
}

const (
	maxPending = 16384
	stallWait  = 5 * time.Second
)

// Close closes the connection and stops the embedded server, if any. Pending calls fail.
func (l *Log) Close() error {
	if l.nc != nil {
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
	return nil
}

// Epoch names the lifetime of the log stream.
func (l *Log) Epoch() string { e, _ := l.epoch.Load().(string); return e }

// setup creates or adopts both streams and learns the epoch.
func (l *Log) setup(ctx context.Context) error {
	if err := l.ensureLog(ctx); err != nil {
		return err
	}
	// Retained values of another epoch name Seqs that no longer exist: drop them.
	if err := l.syncRetain(ctx); err != nil {
		return err
	}
	var err error
	if l.logS, err = l.js.Stream(ctx, l.stream); err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", l.stream, mapErr(err))
	}
	if l.retainS, err = l.js.Stream(ctx, l.retainStream); err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", l.retainStream, mapErr(err))
	}
	return nil
}

// ensureLog creates or adopts the log stream and sets the epoch.
func (l *Log) ensureLog(ctx context.Context) error {
	r := l.cfg.Retention
	want := jetstream.StreamConfig{
		Name:              l.stream,
		Subjects:          []string{l.topicBase + ".>", l.multiSubject},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: limit(int64(r.PerTopic)),
		MaxMsgs:           limit(r.MaxMsgs),
		MaxBytes:          limit(r.MaxBytes),
		MaxAge:            r.MaxAge,
		Duplicates:        l.cfg.DuplicateWindow,
		Replicas:          l.cfg.Replicas,
		AllowDirect:       true,
	}
	if r.MaxAge > 0 && want.Duplicates > r.MaxAge {
		want.Duplicates = r.MaxAge // JetStream requires the window to fit in MaxAge
	}
	epoch, err := l.ensure(ctx, want, func(info *jetstream.StreamInfo, epoch string) bool {
		c := info.Config
		return c.MaxMsgsPerSubject != want.MaxMsgsPerSubject || c.MaxMsgs != want.MaxMsgs ||
			c.MaxBytes != want.MaxBytes || c.MaxAge != want.MaxAge || c.Duplicates != want.Duplicates ||
			c.Replicas != want.Replicas
	})
	if err != nil {
		return err
	}
	l.epoch.Store(epoch)
	return nil
}

// syncRetain creates the retain stream, or empties it if it belongs to another epoch.
func (l *Log) syncRetain(ctx context.Context) error {
	rs, err := l.ensureRetain(ctx)
	if err != nil {
		return err
	}
	if got := streamEpoch(rs.Config); got != l.Epoch() {
		return l.purgeRetained(ctx)
	}
	return nil
}

func (l *Log) retainConfig(epoch string) jetstream.StreamConfig {
	return withEpoch(jetstream.StreamConfig{
		Name:              l.retainStream,
		Subjects:          []string{l.retainBase + ".>"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		Replicas:          l.cfg.Replicas,
		AllowDirect:       true,
	}, epoch)
}

func (l *Log) ensureRetain(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := l.js.Stream(ctx, l.retainStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = l.js.CreateStream(ctx, l.retainConfig(l.Epoch()))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = l.js.Stream(ctx, l.retainStream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", l.retainStream, mapErr(err))
	}
	return s.CachedInfo(), nil
}

func (l *Log) purgeRetained(ctx context.Context) error {
	l.logger.Info("dropping retained values of another epoch", "epoch", l.Epoch())
	s, err := l.js.Stream(ctx, l.retainStream)
	if err == nil {
		err = s.Purge(ctx)
	}
	if err == nil {
		_, err = l.js.UpdateStream(ctx, l.retainConfig(l.Epoch()))
	}
	if err != nil {
		return fmt.Errorf("jetstream: reset %s: %w", l.retainStream, mapErr(err))
	}
	return nil
}

// ensure creates the stream with a new epoch, or adopts the existing one and its epoch,
// updating its limits when stale says so.
func (l *Log) ensure(ctx context.Context, want jetstream.StreamConfig, stale func(*jetstream.StreamInfo, string) bool) (string, error) {
	s, err := l.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		epoch := newEpoch()
		s, err = l.js.CreateStream(ctx, withEpoch(want, epoch))
		if err == nil {
			l.logger.Info("created stream", "epoch", epoch)
			return epoch, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another node won the race
			s, err = l.js.Stream(ctx, want.Name)
		}
	}
	if err != nil {
		return "", fmt.Errorf("jetstream: stream %s: %w", want.Name, mapErr(err))
	}
	info := s.CachedInfo()
	epoch := streamEpoch(info.Config)
	if epoch != "" && !stale(info, epoch) {
		return epoch, nil
	}
	if epoch == "" { // made outside Herald: this is the start of its life as a Herald log
		epoch = newEpoch()
	}
	// Keep whatever the operator configured that we do not manage (placement, subjects...).
	upd := info.Config
	upd.MaxMsgsPerSubject, upd.MaxMsgs, upd.MaxBytes = want.MaxMsgsPerSubject, want.MaxMsgs, want.MaxBytes
	upd.MaxAge, upd.Duplicates, upd.Replicas = want.MaxAge, want.Duplicates, want.Replicas
	upd = withEpoch(upd, epoch)
	if _, err := l.js.UpdateStream(ctx, upd); err != nil {
		return "", fmt.Errorf("jetstream: update stream %s: %w", want.Name, mapErr(err))
	}
	// Two nodes claiming an unmarked stream at once: whichever update landed last wins, for both.
	s, err = l.js.Stream(ctx, want.Name)
	if err != nil {
		return "", fmt.Errorf("jetstream: stream %s: %w", want.Name, mapErr(err))
	}
	return streamEpoch(s.CachedInfo().Config), nil
}

// The epoch goes in the stream's Metadata and, for NATS servers before 2.10 that drop
// Metadata, in its Description.
const epochDescPrefix = "herald log, epoch "

func withEpoch(c jetstream.StreamConfig, epoch string) jetstream.StreamConfig {
	md := make(map[string]string, len(c.Metadata)+1)
	for k, v := range c.Metadata {
		md[k] = v
	}
	md[epochKey] = epoch
	c.Metadata = md
	c.Description = epochDescPrefix + epoch
	return c
}

func streamEpoch(c jetstream.StreamConfig) string {
	if e := c.Metadata[epochKey]; e != "" {
		return e
	}
	if e, ok := strings.CutPrefix(c.Description, epochDescPrefix); ok {
		return e
	}
	return ""
}

// newEpoch returns a random lowercase base-36 id: short, URL-safe and free of '-', which
// separates epoch and sequence in client-facing ids.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand never fails
	// 48 random bits: about 10 characters.
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:])>>16, 36)
}

func limit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// multiFilter reports whether the connected server takes several filter subjects per
// consumer (NATS 2.10 and later).
func (l *Log) multiFilter() bool {
	v := l.nc.ConnectedServerVersion()
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > 2 || ma == 2 && mi >= 10
}
