package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/internal/hub"
)

// Append runs the append script once for the whole batch: one round trip, one atomic step.
// It returns once Redis has executed it, so messages are durable by Redis's own persistence
// settings (appendfsync; see docs/engines/redis.md).
func (l *Log) Append(ctx context.Context, msgs []*hub.Message) ([]bool, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	now := time.Now()
	r := l.cfg.Retention
	epoch := l.Epoch()
	args := make([]any, 0, 11+5*len(msgs))
	args = append(args, epoch, l.high.Load(), now.UnixNano(), now.UnixMilli(), max(r.PerTopic, 0),
		max(r.MaxMsgs, 0), max(r.MaxBytes, 0), max(r.MaxAge.Milliseconds(), 0),
		l.cfg.DuplicateWindow.Milliseconds(), l.base, len(msgs))
	for _, m := range msgs {
		if len(m.Topics) == 0 {
			return nil, fmt.Errorf("%w: message without topic", hub.ErrBadTopic)
		}
		for _, t := range m.Topics {
			if err := hub.ValidateTopic(t); err != nil { // topics never contain ',' or '\n'
				return nil, err
			}
		}
		if strings.ContainsAny(m.Event, "\r\n") {
			return nil, fmt.Errorf("%w: event %.40q", hub.ErrBadEvent, m.Event)
		}
		retain := ""
		if m.Retain {
			retain = "1"
		}
		args = append(args, strings.Join(m.Topics, ","), m.Event, m.Data, retain, m.IdempotencyKey)
	}
	res, err := appendScript.Run(ctx, l.rdb, l.keys, args...).Int64Slice()
	if err != nil {
		if isEpochErr(err) {
			l.check(ctx, epoch) // learn the new state; this batch is refused either way
		}
		return nil, fmt.Errorf("redis: append %d messages: %w", len(msgs), mapErr(err))
	}
	if len(res) != 2*len(msgs) {
		return nil, fmt.Errorf("redis: append: %d results for %d messages", len(res)/2, len(msgs))
	}
	dup := make([]bool, len(msgs))
	for i, m := range msgs {
		seq := uint64(res[2*i])
		m.Seq, m.ID, m.Time, dup[i] = seq, hub.FormatID(epoch, seq), now, res[2*i+1] == 1
		l.seen(seq)
	}
	return dup, nil
}

func isEpochErr(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && (strings.HasPrefix(re.Error(), "HERALDEPOCH") || strings.HasPrefix(re.Error(), "HERALDLOST"))
}

const readBatch = 1000

// Read scans the stream from after+1 to upto and filters with f. The stream has no per-topic
// index, so a read for a rare topic walks the whole range; history pages are bounded by the
// server, and resuming clients read only what they missed.
func (l *Log) Read(ctx context.Context, after, upto uint64, f *hub.Filter, limit int) ([]*hub.Message, error) {
	var out []*hub.Message
	epoch := l.Epoch()
	start := after + 1
	for start <= upto && (limit <= 0 || len(out) < limit) {
		entries, err := l.rdb.XRangeN(ctx, l.keys[kLog], id(start), id(upto), readBatch).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: read after %d: %w", after, mapErr(err))
		}
		for _, e := range entries {
			m, err := decode(epoch, e)
			if err != nil {
				return nil, err
			}
			if f == nil || f.MatchAny(m.Topics) {
				out = append(out, m)
				if limit > 0 && len(out) == limit {
					break
				}
			}
			start = m.Seq + 1
		}
		if len(entries) < readBatch {
			break
		}
	}
	return out, nil
}

// Tail reads the stream with XREAD BLOCK from after on and delivers in order. When the stream
// is idle it checks, every CheckInterval, that Redis still holds this epoch's data; when the
// connection fails it returns an error wrapping hub.ErrUnavailable, and the hub calls it again
// from the last message it delivered.
func (l *Log) Tail(ctx context.Context, after uint64, deliver func(*hub.Message)) error {
	epoch := l.Epoch()
	last := id(after)
	nextCheck := time.Now().Add(l.cfg.CheckInterval)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(nextCheck) {
			if _, err := l.check(ctx, epoch); err != nil {
				return fmt.Errorf("redis: tail: %w", err)
			}
			nextCheck = time.Now().Add(l.cfg.CheckInterval)
		}
		res, err := l.rdb.XRead(ctx, &goredis.XReadArgs{
			Streams: []string{l.keys[kLog], last}, Count: 512, Block: l.cfg.CheckInterval,
		}).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("redis: tail after %s: %w", last, mapErr(err))
		}
		if cur := l.Epoch(); cur != epoch { // entries of another log: their seqs mean other messages
			return fmt.Errorf("redis: tail: %w: epoch changed to %s", hub.ErrUnavailable, cur)
		}
		for _, s := range res {
			for _, e := range s.Messages {
				m, err := decode(epoch, e)
				if err != nil {
					return fmt.Errorf("redis: tail: %w", err)
				}
				l.seen(m.Seq)
				deliver(m)
				last = e.ID
			}
		}
	}
}

// Retained returns the retained value of every topic matching f, by Seq.
func (l *Log) Retained(ctx context.Context, f *hub.Filter) ([]*hub.Message, error) {
	var vals map[string]string
	var err error
	if f != nil && !hasPattern(f) { // exact topics: fetch just those
		entries := f.Entries()
		got, gerr := l.rdb.HMGet(ctx, l.keys[kRetained], entries...).Result()
		err = gerr
		vals = make(map[string]string, len(got))
		for i, v := range got {
			if s, ok := v.(string); ok {
				vals[entries[i]] = s
			}
		}
	} else {
		vals, err = l.rdb.HGetAll(ctx, l.keys[kRetained]).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("redis: retained: %w", mapErr(err))
	}
	epoch := l.Epoch()
	var out []*hub.Message
	for t, v := range vals {
		if f != nil && !f.Match(t) {
			continue
		}
		m, err := decodeRetained(epoch, v)
		if err != nil {
			return nil, fmt.Errorf("redis: retained %q: %w", t, err)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *hub.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	return slices.CompactFunc(out, func(a, b *hub.Message) bool { return a.Seq == b.Seq }), nil
}

// Trimmed applies the whole-log limits first (they are otherwise applied on append), then
// answers from the highest seq removed from the front and, for PerTopic, the highest seq
// each topic dropped.
func (l *Log) Trimmed(ctx context.Context, after uint64, f *hub.Filter) (bool, error) {
	r := l.cfg.Retention
	front, err := trimScript.Run(ctx, l.rdb, l.keys, time.Now().UnixMilli(), max(r.MaxMsgs, 0),
		max(r.MaxBytes, 0), max(r.MaxAge.Milliseconds(), 0)).Uint64()
	if err != nil {
		return false, fmt.Errorf("redis: trimmed: %w", mapErr(err))
	}
	if after < front {
		return true, nil
	}
	if r.PerTopic <= 0 {
		return false, nil
	}
	dropped := map[string]string{}
	if f != nil && !hasPattern(f) {
		entries := f.Entries()
		got, err := l.rdb.HMGet(ctx, l.keys[kDropped], entries...).Result()
		if err != nil {
			return false, fmt.Errorf("redis: trimmed: %w", mapErr(err))
		}
		for i, v := range got {
			if s, ok := v.(string); ok {
				dropped[entries[i]] = s
			}
		}
	} else if dropped, err = l.rdb.HGetAll(ctx, l.keys[kDropped]).Result(); err != nil {
		return false, fmt.Errorf("redis: trimmed: %w", mapErr(err))
	}
	for t, v := range dropped {
		seq, _ := strconv.ParseUint(v, 10, 64)
		if seq > after && (f == nil || f.Match(t)) {
			return true, nil
		}
	}
	return false, nil
}

func hasPattern(f *hub.Filter) bool {
	return slices.ContainsFunc(f.Entries(), hub.IsPattern)
}

func id(seq uint64) string { return strconv.FormatUint(seq, 10) + "-0" }

// decode rebuilds a message from its stream entry.
func decode(epoch string, e goredis.XMessage) (*hub.Message, error) {
	seqStr, _, _ := strings.Cut(e.ID, "-")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redis: bad entry id %q", e.ID)
	}
	str := func(k string) string { s, _ := e.Values[k].(string); return s }
	m := &hub.Message{Seq: seq, ID: hub.FormatID(epoch, seq), Topics: strings.Split(str("tp"), ","),
		Event: str("ev"), Data: []byte(str("d")), Retain: str("rt") == "1"}
	if ns, err := strconv.ParseInt(str("ts"), 10, 64); err == nil {
		m.Time = time.Unix(0, ns)
	}
	return m, nil
}

// decodeRetained parses "seq\nts\nevent\ntopics\ndata" as the append script writes it.
func decodeRetained(epoch, v string) (*hub.Message, error) {
	parts := strings.SplitN(v, "\n", 5)
	if len(parts) != 5 {
		return nil, errors.New("malformed value")
	}
	seq, err := strconv.ParseUint(parts[0], 10, 64)
	if err != nil {
		return nil, errors.New("malformed seq")
	}
	ns, _ := strconv.ParseInt(parts[1], 10, 64)
	return &hub.Message{Seq: seq, ID: hub.FormatID(epoch, seq), Time: time.Unix(0, ns), Event: parts[2],
		Topics: strings.Split(parts[3], ","), Data: []byte(parts[4]), Retain: true}, nil
}
