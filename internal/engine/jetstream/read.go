package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-push/herald/internal/hub"
)

// Last returns the log stream's last sequence. If the stream is gone (NATS restarted on an
// empty store, or an operator deleted it), it creates a new one with a new epoch; if another
// node already did, it adopts that stream's epoch. The hub, which calls Last before every Tail,
// then sees the epoch change and ends every subscription, and resuming clients get a gap notice
// instead of waiting for a log that no longer exists.
func (l *Log) Last(ctx context.Context) (uint64, error) {
	info, err := l.logS.Info(ctx)
	if err == nil {
		if epoch := streamEpoch(info.Config); epoch != "" && epoch != l.Epoch() {
			// Another node recreated the stream: its sequences are the new log's. Without this
			// the node kept minting ids of the old epoch for messages of the new stream.
			l.logger.Warn("log stream was recreated by another node", "old_epoch", l.Epoch(), "epoch", epoch)
			l.epoch.Store(epoch)
			if err := l.syncRetain(ctx); err != nil {
				return 0, err
			}
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		old := l.Epoch()
		if err := l.ensureLog(ctx); err != nil {
			return 0, err
		}
		if err := l.syncRetain(ctx); err != nil {
			return 0, err
		}
		l.logger.Warn("log stream was gone: created a new one", "old_epoch", old, "epoch", l.Epoch())
		info, err = l.logS.Info(ctx)
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: last: %w", mapErr(err))
	}
	return info.State.LastSeq, nil
}

// Read returns up to limit messages with after < Seq <= upto that match f (nil: all), oldest
// first. limit <= 0 means no limit. It runs a short-lived consumer filtered by f's subjects and
// deletes it before returning.
func (l *Log) Read(ctx context.Context, after, upto uint64, f *hub.Filter, limit int) ([]*hub.Message, error) {
	if upto <= after {
		return nil, nil
	}
	var subjects []string // nil: the whole stream
	if f != nil {
		subjects = filterSubjects(l.topicBase, f.Entries(), l.multiSubject)
	}
	var out []*hub.Message
	for _, group := range l.consumerGroups(subjects) {
		var got []*hub.Message
		err := l.scan(ctx, l.stream, group, after+1, func(m jetstream.Msg, seq uint64, ts time.Time) (bool, error) {
			if seq > upto {
				return false, nil
			}
			msg, err := l.decode(l.topicBase, m.Subject(), m.Headers(), m.Data(), seq, ts)
			if err != nil {
				return false, err
			}
			if f == nil || f.MatchAny(msg.Topics) {
				got = append(got, msg)
			}
			return limit <= 0 || len(got) < limit, nil
		})
		if err != nil {
			return nil, fmt.Errorf("jetstream: read after %d: %w", after, err)
		}
		out = mergeBySeq(out, got)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Retained returns the retained message of every topic matching f (nil: all), by Seq. A
// message retained on several matching topics is returned once.
func (l *Log) Retained(ctx context.Context, f *hub.Filter) ([]*hub.Message, error) {
	var subjects []string
	if f != nil {
		subjects = filterSubjects(l.retainBase, f.Entries())
	}
	var out []*hub.Message
	for _, group := range l.consumerGroups(subjects) {
		var got []*hub.Message
		err := l.scan(ctx, l.retainStream, group, 0, func(m jetstream.Msg, seq uint64, ts time.Time) (bool, error) {
			topic, err := subjectTopic(l.retainBase, m.Subject())
			if err != nil {
				return false, err
			}
			if f != nil && !f.Match(topic) {
				return true, nil
			}
			msg, err := l.decode(l.retainBase, m.Subject(), m.Headers(), m.Data(), seq, ts)
			if err != nil {
				return false, err
			}
			got = append(got, msg)
			return true, nil
		})
		if err != nil {
			return nil, fmt.Errorf("jetstream: retained: %w", err)
		}
		out = append(out, got...)
	}
	slices.SortFunc(out, func(a, b *hub.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	return slices.CompactFunc(out, func(a, b *hub.Message) bool { return a.Seq == b.Seq }), nil
}

// consumerGroups splits filter subjects into the sets one consumer can take: all of them on
// NATS 2.10+, one each on older servers (whose results the caller merges).
func (l *Log) consumerGroups(subjects []string) [][]string {
	if len(subjects) <= 1 || l.multiFilter() {
		return [][]string{subjects}
	}
	groups := make([][]string, len(subjects))
	for i, s := range subjects {
		groups[i] = []string{s}
	}
	return groups
}

const fetchBatch = 256

// scan calls visit, in stream order, for the messages of stream from seq start on whose
// subject matches one of subjects (nil: any), until visit returns false or no message is
// pending. It uses an ephemeral consumer, deleted on return (and expired by the server should
// the delete be lost).
func (l *Log) scan(ctx context.Context, stream string, subjects []string, start uint64,
	visit func(m jetstream.Msg, seq uint64, ts time.Time) (bool, error)) error {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute,
	}
	if start > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	c, err := l.js.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return mapErr(err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := l.js.DeleteConsumer(dctx, stream, c.CachedInfo().Name); err != nil {
			l.logger.Debug("delete read consumer", "err", err) // it expires anyway
		}
	}()

	// Ask for no more than is pending, so that every fetch is answered at once instead of
	// waiting out its expiry.
	pending := c.CachedInfo().NumPending
	for pending > 0 {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		batch, err := c.Fetch(int(min(pending, fetchBatch)), jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return mapErr(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				cancel()
				return err
			}
			pending = md.NumPending
			more, err := visit(m, md.Sequence.Stream, md.Timestamp)
			if err != nil || !more {
				cancel()
				return err
			}
		}
		cancel()
		if err := batch.Error(); err != nil {
			return mapErr(err)
		}
		if n == 0 {
			// An empty answer with messages pending: they were trimmed meanwhile, or the
			// server (just restarted) did not deliver them. Returning what we have would let
			// a reader step over them silently; a retry with a new consumer knows which.
			return fmt.Errorf("%w: read ended with %d messages pending", hub.ErrUnavailable, pending)
		}
	}
	return nil
}

// mergeBySeq merges two lists sorted by Seq.
func mergeBySeq(a, b []*hub.Message) []*hub.Message {
	if len(a) == 0 {
		return b
	}
	out := make([]*hub.Message, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Seq < b[0].Seq {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// maxTrimChecks bounds the work of Trimmed; past it the answer is a conservative true.
const maxTrimChecks = 256

// Trimmed reports whether retention may have removed a message matching f with Seq > after.
// Age, size and count limits trim the stream from the front, which FirstSeq shows. The
// per-topic limit removes a subject's oldest messages: a subject at its cap whose oldest
// remaining message is past after+1 may have lost messages after `after`. Multi-topic
// messages share one subject, so a full multi subject counts for every filter.
func (l *Log) Trimmed(ctx context.Context, after uint64, f *hub.Filter) (bool, error) {
	info, err := l.logS.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("jetstream: trimmed: %w", mapErr(err))
	}
	st := info.State
	if after+1 < st.FirstSeq {
		return true, nil
	}
	per := uint64(max(l.cfg.Retention.PerTopic, 0))
	if per == 0 || after >= st.LastSeq {
		return false, nil
	}
	subjects := []string{l.topicBase + ".>", l.multiSubject}
	if f != nil {
		subjects = filterSubjects(l.topicBase, f.Entries(), l.multiSubject)
	}
	checks := 0
	for _, s := range subjects {
		si, err := l.logS.Info(ctx, jetstream.WithSubjectFilter(s))
		if err != nil {
			return false, fmt.Errorf("jetstream: trimmed: %w", mapErr(err))
		}
		for subj, n := range si.State.Subjects {
			if n < per {
				continue
			}
			if subj != l.multiSubject && f != nil {
				if t, err := subjectTopic(l.topicBase, subj); err != nil || !f.Match(t) {
					continue
				}
			}
			if checks++; checks > maxTrimChecks {
				return true, nil
			}
			first, err := l.logS.GetMsg(ctx, st.FirstSeq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) { // emptied meanwhile: by the front trim
				return true, nil
			}
			if err != nil {
				return false, fmt.Errorf("jetstream: trimmed: oldest of %s: %w", subj, mapErr(err))
			}
			if first.Sequence > after+1 {
				return true, nil
			}
		}
	}
	return false, nil
}
