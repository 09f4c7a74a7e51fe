// Package redis is the hub.Log engine backed by Redis (5.0 or later; 7 tested), for Herald
// nodes that share one Redis instead of NATS.
//
// The log is one Redis stream whose entry ids are "<seq>-0": a Lua script takes the next
// sequence from a counter and adds the entry in one atomic step, so Seq is dense, ordered and
// the same on every node. Retained values live in a hash, idempotency keys in keys with an
// expiry, and the epoch in a key created on first use: a wiped Redis has no epoch, gets a new
// one, and resuming clients get a gap notice instead of someone else's messages.
//
// Each node tails the stream with one blocking XREAD loop (Tail), never one per client, and
// never Redis pub/sub, which may drop messages: the stream is the only feed, so a node that
// reconnects continues from its last id with nothing lost.
//
// docs/engines/redis.md describes the keys, what Redis enforces, and durability.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/internal/hub"
)

// Config says where the log lives and how much of it to keep.
type Config struct {
	URL string // e.g. "redis://127.0.0.1:6379/0"; see redis.ParseURL for options

	// Prefix starts every key; "" means "herald". Several logs can share one Redis under
	// different prefixes. Letters, digits, '-', '_', '.' and ':' only.
	Prefix string

	Retention hub.Retention

	// DuplicateWindow is how long an IdempotencyKey is remembered; 0 means 2 minutes.
	DuplicateWindow time.Duration

	// CheckInterval is how often an idle Tail checks that Redis kept its data; 0 means 1s.
	CheckInterval time.Duration

	Logger *slog.Logger // nil means slog.Default()
}

// Log is a hub.Log stored in Redis. Its methods are safe for concurrent use.
type Log struct {
	cfg    Config
	logger *slog.Logger
	rdb    *goredis.Client
	keys   []string // KEYS of every script, see scripts.go
	base   string   // "{prefix}:" for the keys built inside scripts

	mu    sync.Mutex // guards epoch changes
	epoch atomic.Pointer[string]
	// high is the highest seq this process saw acknowledged or delivered in the current
	// epoch. Redis reporting a lower sequence means it lost acknowledged writes.
	high atomic.Uint64
}

var _ hub.Log = (*Log)(nil)

// Key indexes into Log.keys.
const (
	kEpoch = iota
	kSeq
	kLog
	kRetained
	kBytes
	kFront
	kDropped
	kRefs
)

// Open connects to Redis and creates the epoch unless it exists. It fails with an error
// wrapping hub.ErrUnavailable when Redis cannot be reached; the caller may retry.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "herald"
	}
	if !validPrefix(cfg.Prefix) {
		return nil, fmt.Errorf("redis: prefix %q: use letters, digits and '-_.:'", cfg.Prefix)
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// No automatic retries: a script whose reply was lost may have run, and running it again
	// would append twice. The publisher retries with its idempotency key instead.
	opts.MaxRetries = -1
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 5 * time.Second
	opts.WriteTimeout = 5 * time.Second
	opts.DisableIdentity = true // CLIENT SETINFO is not in Redis before 7.2

	// The hash tag {prefix} puts every key in one slot, as scripts need on a Redis Cluster.
	base := "{" + cfg.Prefix + "}:"
	l := &Log{
		cfg:    cfg,
		logger: cfg.Logger.With("engine", "redis", "prefix", cfg.Prefix),
		rdb:    goredis.NewClient(opts),
		base:   base,
		keys: []string{base + "epoch", base + "seq", base + "log", base + "retained",
			base + "bytes", base + "front", base + "dropped", base + "refs"},
	}
	if err := l.init(ctx); err != nil {
		l.rdb.Close()
		return nil, err
	}
	return l, nil
}

func validPrefix(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// init adopts the epoch in Redis, creating it when missing.
func (l *Log) init(ctx context.Context) error {
	e, err := rollScript.Run(ctx, l.rdb, l.keys, "", newEpoch()).Text()
	if err != nil {
		return fmt.Errorf("redis: open %s: %w", l.redacted(), mapErr(err))
	}
	seq, err := l.rdb.Get(ctx, l.keys[kSeq]).Uint64()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("redis: open: %w", mapErr(err))
	}
	l.high.Store(seq) // before the epoch: whoever reads the new epoch reads its mark
	l.epoch.Store(&e)
	return nil
}

func (l *Log) redacted() string {
	o := l.rdb.Options()
	return o.Addr
}

// Close closes the connections. Pending calls fail.
func (l *Log) Close() error { return l.rdb.Close() }

// Epoch names the current lifetime of the log. It changes when Redis turns out to have lost
// its data (see check); the hub notices on its next Tail and sends gap notices.
func (l *Log) Epoch() string { return *l.epoch.Load() }

// Last returns the newest seq, after checking that Redis still holds this epoch's data.
func (l *Log) Last(ctx context.Context) (uint64, error) {
	return l.check(ctx, l.Epoch())
}

// check reads the epoch and sequence. If the epoch is not the one this process knows, or the
// sequence is behind what this process saw acknowledged, Redis lost data: the epoch is rolled
// (or the one another node rolled to is adopted) and an error wrapping hub.ErrUnavailable
// says so, unless was is already stale (the caller then just learns the new state).
func (l *Log) check(ctx context.Context, was string) (uint64, error) {
	var e, cur string
	var seq, high uint64
	for {
		// The mark is read first: every seq it covers was acknowledged before the MGET
		// started, so a lower sequence in the reply really is a loss, not an append racing
		// this check. The mark belongs to the epoch read with it: if a concurrent check rolled
		// or adopted a new epoch meanwhile, the old epoch's mark would pass for a loss in the
		// new one (and roll a third epoch, giving one message two ids): read again.
		cur = l.Epoch()
		high = l.high.Load()
		vals, err := l.rdb.MGet(ctx, l.keys[kEpoch], l.keys[kSeq]).Result()
		if err != nil {
			return 0, fmt.Errorf("redis: %w", mapErr(err))
		}
		e, _ = vals[0].(string)
		seq = 0
		if s, ok := vals[1].(string); ok {
			seq, _ = strconv.ParseUint(s, 10, 64)
		}
		if l.Epoch() == cur {
			break
		}
	}
	var err error
	switch {
	case e == cur && seq >= high:
		if was != cur {
			return seq, fmt.Errorf("redis: %w: epoch changed to %s", hub.ErrUnavailable, cur)
		}
		return seq, nil
	case e == cur: // same epoch, sequence went backwards: restored from an older snapshot
		l.logger.Warn("redis lost acknowledged messages; starting a new epoch", "seq", seq, "acknowledged", high)
		err = l.roll(ctx, e)
	default: // wiped (no epoch) or rolled by another node
		l.logger.Warn("redis log epoch changed", "was", cur, "now", e)
		err = l.roll(ctx, e)
	}
	if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("redis: %w: log epoch changed to %s", hub.ErrUnavailable, l.Epoch())
}

// roll replaces epoch old ("" when missing) with a new one, or adopts whatever another node
// put there first.
func (l *Log) roll(ctx context.Context, old string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := old
	if e == "" || e == l.Epoch() {
		var err error
		if e, err = rollScript.Run(ctx, l.rdb, l.keys, old, newEpoch()).Text(); err != nil {
			return fmt.Errorf("redis: new epoch: %w", mapErr(err))
		}
	}
	seq, err := l.rdb.Get(ctx, l.keys[kSeq]).Uint64()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("redis: new epoch: %w", mapErr(err))
	}
	l.high.Store(seq) // before the epoch: whoever reads the new epoch reads its mark
	l.epoch.Store(&e)
	return nil
}

// seen raises the high-water mark to seq.
func (l *Log) seen(seq uint64) {
	for {
		h := l.high.Load()
		if seq <= h || l.high.CompareAndSwap(h, seq) {
			return
		}
	}
}

// newEpoch returns a random lowercase base-36 id without '-'.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return "r" + strconv.FormatUint(binary.LittleEndian.Uint64(b[:])>>16, 36)
}

// mapErr adds the hub error that tells the server what to answer; the Redis error stays in
// the chain for logs. A reply error is Redis answering; anything else (refused, reset,
// timeout, pool exhausted, closed) means it could not be reached.
func mapErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		switch {
		case strings.HasPrefix(msg, "OOM"):
			return fmt.Errorf("%w: %w", hub.ErrFull, err)
		case strings.HasPrefix(msg, "HERALDEPOCH"), strings.HasPrefix(msg, "HERALDLOST"),
			strings.HasPrefix(msg, "LOADING"), strings.HasPrefix(msg, "BUSY"),
			strings.HasPrefix(msg, "MASTERDOWN"), strings.HasPrefix(msg, "READONLY"),
			strings.HasPrefix(msg, "TRYAGAIN"), strings.HasPrefix(msg, "CLUSTERDOWN"),
			strings.HasPrefix(msg, "NOREPLICAS"):
			return fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
		}
		return err
	}
	return fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
}
