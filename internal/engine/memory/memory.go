// Package memory is a hub.Log kept in process memory: for tests, demos and single-node setups
// that need no durability. A restart starts a new epoch, so resuming clients get a gap notice.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

var _ hub.Log = (*Log)(nil)

// Config configures a Log. Zero values mean the documented default.
type Config struct {
	Retention       hub.Retention
	DuplicateWindow time.Duration // how long idempotency keys are remembered; 0 means 2m
}

// Log is safe for concurrent use.
type Log struct {
	cfg   Config
	epoch string

	mu       sync.Mutex
	msgs     []*hub.Message // by seq from first; nil where retention removed one
	first    uint64         // seq of msgs[0]
	bytes    int64
	front    uint64              // highest seq removed from the front (age, count, size)
	topics   map[string][]uint64 // per-topic seqs of single-topic messages, for PerTopic
	dropped  map[string]bool     // topics that lost a message to PerTopic
	retained map[string]*hub.Message
	idem     map[string]idem
	changed  chan struct{} // closed and replaced on every append
}

type idem struct {
	seq uint64
	at  time.Time
}

// New returns an empty log with a fresh epoch.
func New(cfg Config) *Log {
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	var b [8]byte
	rand.Read(b[:])
	return &Log{
		cfg:      cfg,
		epoch:    "m" + strconv.FormatUint(binary.LittleEndian.Uint64(b[:])>>16, 36),
		first:    1,
		topics:   make(map[string][]uint64),
		dropped:  make(map[string]bool),
		retained: make(map[string]*hub.Message),
		idem:     make(map[string]idem),
		changed:  make(chan struct{}),
	}
}

func (l *Log) Epoch() string { return l.epoch }

func (l *Log) Last(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first + uint64(len(l.msgs)) - 1, nil
}

func (l *Log) Append(ctx context.Context, msgs []*hub.Message) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	dup := make([]bool, len(msgs))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	for i, m := range msgs {
		if m.IdempotencyKey != "" {
			if e, ok := l.idem[m.IdempotencyKey]; ok {
				m.Seq, dup[i] = e.seq, true
				m.ID = hub.FormatID(l.epoch, e.seq)
				if old := l.get(e.seq); old != nil {
					m.Time = old.Time
				}
				continue
			}
		}
		m.Seq = l.first + uint64(len(l.msgs))
		m.Time = now
		m.ID = hub.FormatID(l.epoch, m.Seq)
		l.msgs = append(l.msgs, m)
		l.bytes += int64(len(m.Data))
		if m.IdempotencyKey != "" {
			l.idem[m.IdempotencyKey] = idem{m.Seq, now}
		}
		if m.Retain {
			for _, t := range m.Topics {
				l.retained[t] = m
			}
		}
		if len(m.Topics) == 1 {
			t := m.Topics[0]
			l.topics[t] = append(l.topics[t], m.Seq)
			if cap := l.cfg.Retention.PerTopic; cap > 0 && len(l.topics[t]) > cap {
				l.remove(l.topics[t][0])
				l.topics[t] = l.topics[t][1:]
				l.dropped[t] = true
			}
		}
	}
	l.trimFront(now)
	close(l.changed)
	l.changed = make(chan struct{})
	return dup, nil
}

func (l *Log) get(seq uint64) *hub.Message {
	if seq < l.first || seq >= l.first+uint64(len(l.msgs)) {
		return nil
	}
	return l.msgs[seq-l.first]
}

func (l *Log) remove(seq uint64) {
	if m := l.get(seq); m != nil {
		l.bytes -= int64(len(m.Data))
		l.msgs[seq-l.first] = nil
	}
}

// trimFront applies the whole-log limits, oldest first, and drops leading holes.
func (l *Log) trimFront(now time.Time) {
	r := l.cfg.Retention
	count := func() int64 { return int64(len(l.msgs)) }
	for len(l.msgs) > 0 {
		m := l.msgs[0]
		over := m == nil ||
			(r.MaxMsgs > 0 && count() > r.MaxMsgs) ||
			(r.MaxBytes > 0 && l.bytes > r.MaxBytes) ||
			(r.MaxAge > 0 && now.Sub(m.Time) > r.MaxAge)
		if !over {
			break
		}
		if m != nil {
			l.bytes -= int64(len(m.Data))
			l.front = m.Seq
			if len(m.Topics) == 1 {
				t := m.Topics[0]
				if q := l.topics[t]; len(q) > 0 && q[0] == m.Seq {
					l.topics[t] = q[1:]
				}
			}
		}
		l.msgs[0] = nil
		l.msgs = l.msgs[1:]
		l.first++
	}
}

func (l *Log) expire(now time.Time) {
	for k, e := range l.idem {
		if now.Sub(e.at) > l.cfg.DuplicateWindow {
			delete(l.idem, k)
		}
	}
}

func (l *Log) Read(ctx context.Context, after, upto uint64, f *hub.Filter, limit int) ([]*hub.Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimFront(time.Now())
	var out []*hub.Message
	for seq := max(after+1, l.first); seq <= upto && len(out) < limit; seq++ {
		m := l.get(seq)
		if m == nil {
			if seq >= l.first+uint64(len(l.msgs)) {
				break
			}
			continue
		}
		if f.MatchAny(m.Topics) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (l *Log) Tail(ctx context.Context, after uint64, deliver func(*hub.Message)) error {
	for {
		l.mu.Lock()
		var batch []*hub.Message
		for seq := max(after+1, l.first); ; seq++ {
			if seq >= l.first+uint64(len(l.msgs)) {
				break
			}
			if m := l.get(seq); m != nil {
				batch = append(batch, m)
			}
			after = seq
		}
		changed := l.changed
		l.mu.Unlock()
		for _, m := range batch {
			deliver(m)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (l *Log) Retained(ctx context.Context, f *hub.Filter) ([]*hub.Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*hub.Message
	for t, m := range l.retained {
		if f.Match(t) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (l *Log) Trimmed(ctx context.Context, after uint64, f *hub.Filter) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimFront(time.Now())
	if after < l.front {
		return true, nil
	}
	for t := range l.dropped {
		if q := l.topics[t]; f.Match(t) && len(q) > 0 && q[0] > after+1 {
			return true, nil
		}
	}
	return false, nil
}
