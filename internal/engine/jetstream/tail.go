package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-push/herald/internal/hub"
)

// Tail delivers every message with Seq > after, in order, from the calling goroutine, until ctx
// ends (it returns ctx.Err()) or the log fails.
//
// It runs one ordered consumer over the whole stream. When the connection to NATS drops, the
// consumer is recreated from the last sequence delivered, so nothing is skipped or repeated.
// A recreated consumer may face a recreated stream, whose sequences mean other messages: Tail
// checks the epoch before delivering from a new consumer, and every epochCheck while idle, and
// returns an error wrapping hub.ErrUnavailable if it changed; the caller restarts with a new Log.
// The epoch compared is the one Tail started in: Last, called meanwhile by a subscriber
// resuming or a history read, may adopt a recreated stream's epoch, and this tail must then
// stop rather than go on from its old position in the new stream (which would skip the new
// stream's first messages silently).
func (l *Log) Tail(ctx context.Context, after uint64, deliver func(*hub.Message)) error {
	epoch := l.Epoch()
	cons, err := l.js.OrderedConsumer(ctx, l.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
	})
	if err != nil {
		return fmt.Errorf("jetstream: tail after %d: %w", after, mapErr(err))
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("jetstream: tail after %d: %w", after, mapErr(err))
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()

	// The watcher stops the iterator when the epoch changes; its error is in failed.
	failed := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.watchEpoch(wctx, epoch, func(err error) {
			failed <- err
			it.Stop()
		})
	}()
	defer wg.Wait()
	defer cancel()

	var consumer string // the ordered consumer's current incarnation
	for {
		m, err := it.Next()
		if err != nil {
			select {
			case err := <-failed:
				return err
			default:
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("jetstream: tail: %w", unavailable(err))
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("jetstream: tail: %w", err)
		}
		if md.Consumer != consumer {
			if consumer != "" { // recreated: is this still our stream?
				if err := l.checkEpoch(ctx, epoch); err != nil {
					return err
				}
			}
			consumer = md.Consumer
		}
		if now := l.Epoch(); now != epoch {
			return fmt.Errorf("jetstream: %w: epoch %q, was %q", errEpoch, now, epoch)
		}
		msg, err := l.decode(l.topicBase, m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
		if err != nil {
			return fmt.Errorf("jetstream: tail: seq %d: %w", md.Sequence.Stream, err)
		}
		deliver(msg)
	}
}

// watchEpoch calls fail once if the stream's epoch changes or the stream disappears, checking
// every l.epochCheck until ctx ends. Errors reaching NATS are not failures: the connection
// recovers by itself.
func (l *Log) watchEpoch(ctx context.Context, epoch string, fail func(error)) {
	t := time.NewTicker(l.epochCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.checkEpoch(ctx, epoch); errors.Is(err, errEpoch) {
			fail(err)
			return
		}
	}
}

var errEpoch = fmt.Errorf("%w: log stream was recreated", hub.ErrUnavailable)

// checkEpoch returns an error wrapping errEpoch if the log stream is gone or has an epoch other
// than want, or another error if NATS could not say.
func (l *Log) checkEpoch(ctx context.Context, want string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := l.js.Stream(cctx, l.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("jetstream: %w: stream %s not found", errEpoch, l.stream)
	}
	if err != nil {
		return fmt.Errorf("jetstream: check epoch: %w", mapErr(err))
	}
	if got := streamEpoch(s.CachedInfo().Config); got != want {
		return fmt.Errorf("jetstream: %w: epoch %q, was %q", errEpoch, got, want)
	}
	return nil
}

// unavailable wraps err in hub.ErrUnavailable unless it already says what it is.
func unavailable(err error) error {
	err = mapErr(err)
	if errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrFull) {
		return err
	}
	return fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
}
