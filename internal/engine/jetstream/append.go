package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-push/herald/internal/hub"
)

// Append publishes the batch asynchronously, in order on one connection, and then waits for
// every ack: the file store commits a batch as a group instead of one round trip per message.
// It returns when all acks arrived, so messages are durable by the server's sync policy.
func (l *Log) Append(ctx context.Context, msgs []*hub.Message) ([]bool, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if atomic.LoadInt32(&l.broken) == 1 { // fail fast instead of waiting out an ack that will not come
		if err := l.storeErr(); err != nil {
			return nil, fmt.Errorf("jetstream: append %d messages: %w", len(msgs), err)
		}
		atomic.StoreInt32(&l.broken, 0)
	}
	if atomic.LoadInt32(&l.unverified) == 1 { // ids of another epoch would name other messages
		if err := l.checkEpoch(ctx, l.Epoch()); err != nil {
			return nil, fmt.Errorf("jetstream: append %d messages: %w", len(msgs), unavailable(err))
		}
		atomic.StoreInt32(&l.unverified, 0)
	}
	now := time.Now()
	out := make([]*nats.Msg, len(msgs))
	for i, m := range msgs { // encode all first: a bad message must not leave half a batch stored
		nm, err := l.encode(m, now)
		if err != nil {
			return nil, err
		}
		out[i] = nm
	}
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, nm := range out {
		f, err := l.js.PublishMsgAsync(nm, l.pubOpts...)
		if err != nil {
			return nil, fmt.Errorf("jetstream: append %d messages: %w", len(msgs), mapErr(err))
		}
		futs[i] = f
	}
	dup := make([]bool, len(msgs))
	seqs := make([]uint64, len(msgs))
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			seqs[i], dup[i] = ack.Sequence, ack.Duplicate
		case err := <-f.Err():
			if serr := l.storeErr(); serr != nil {
				atomic.StoreInt32(&l.broken, 1)
				err = fmt.Errorf("%w (%w)", serr, err)
			} else {
				err = mapErr(err)
			}
			return nil, fmt.Errorf("jetstream: append message %d of %d: %w", i+1, len(msgs), err)
		case <-ctx.Done():
			return nil, fmt.Errorf("jetstream: append %d messages: %w", len(msgs), ctx.Err())
		}
	}
	for i, m := range msgs {
		m.Seq, m.ID, m.Time = seqs[i], hub.FormatID(l.Epoch(), seqs[i]), now
	}
	if err := l.retainBatch(ctx, msgs); err != nil {
		return nil, err
	}
	return dup, nil
}

// storeErr returns the write error that the embedded server's file store latched, as
// hub.ErrFull for a full disk and hub.ErrUnavailable otherwise (e.g. permission denied), or nil.
// nats-server does not answer a publish it failed to write, so the ack only times out; this
// says why. The error stays latched until the store is reopened (Herald restarted), which
// docs/guarantees.md tells operators.
func (l *Log) storeErr() error {
	if l.srv == nil {
		return nil
	}
	h := l.srv.Healthz(&server.HealthzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Stream: l.stream})
	switch {
	case h == nil || !strings.Contains(h.Error, "write error"):
		return nil
	case strings.Contains(h.Error, "no space left"):
		return fmt.Errorf("%w: %s; free space and restart herald", hub.ErrFull, h.Error)
	}
	return fmt.Errorf("%w: %s; fix the data directory and restart herald", hub.ErrUnavailable, h.Error)
}

// retainBatch stores the newest retained message of each topic of the batch in the retain
// stream. Duplicates count too: a retried publish must repair a retained value that an earlier
// attempt failed to write after its log append.
//
// A crash between the log append and this write loses the retained value (the message itself
// is in the log); the publisher saw an error, and its retry with the same idempotency key
// writes it.
func (l *Log) retainBatch(ctx context.Context, msgs []*hub.Message) error {
	var newest map[string]*hub.Message
	var topics []string
	for _, m := range msgs {
		if !m.Retain {
			continue
		}
		if newest == nil {
			newest = make(map[string]*hub.Message)
		}
		for _, t := range m.Topics {
			old, ok := newest[t]
			if !ok {
				topics = append(topics, t)
			}
			if !ok || old.Seq < m.Seq {
				newest[t] = m
			}
		}
	}
	for _, t := range topics {
		if err := l.retain(ctx, t, newest[t]); err != nil {
			return fmt.Errorf("jetstream: retain %q (seq %d): %w", t, newest[t].Seq, mapErr(err))
		}
	}
	return nil
}

// retain replaces the retained message of topic with m unless a newer one is there already.
// Nodes race to retain: the write is a compare-and-set on the subject's last sequence, so an
// older message never overwrites a newer one.
func (l *Log) retain(ctx context.Context, topic string, m *hub.Message) error {
	subj := topicSubject(l.retainBase, topic)
	for attempt := 0; ; attempt++ {
		var expect uint64
		cur, err := l.retainS.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return err
		default:
			if seq, _ := strconv.ParseUint(cur.Header.Get(hdrSeq), 10, 64); seq >= m.Seq {
				return nil
			}
			expect = cur.Sequence
		}
		_, err = l.js.PublishMsg(ctx, l.encodeRetained(subj, m), jetstream.WithExpectLastSequencePerSubject(expect))
		if apiCode(err) == jetstream.JSErrCodeStreamWrongLastSequence && attempt < 10 {
			continue // another node retained a value meanwhile: look again
		}
		return err
	}
}

func (l *Log) encodeRetained(subject string, m *hub.Message) *nats.Msg {
	h := make(nats.Header, 5)
	if len(m.Topics) > 1 {
		h.Set(hdrTopics, strings.Join(m.Topics, ","))
	}
	if m.Event != "" {
		h.Set(hdrEvent, m.Event)
	}
	h.Set(hdrRetain, "1")
	h.Set(hdrTime, strconv.FormatInt(m.Time.UnixNano(), 10))
	h.Set(hdrSeq, strconv.FormatUint(m.Seq, 10))
	return &nats.Msg{Subject: subject, Header: h, Data: m.Data}
}

func apiCode(err error) jetstream.ErrorCode {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.ErrorCode
	}
	return 0
}

// mapErr adds the hub error that tells the server what to answer; the NATS error stays in the
// chain for logs.
func mapErr(err error) error {
	var api *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %w", hub.ErrTooLarge, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrReconnectBufExceeded), // disconnected: see ReconnectBufSize
		errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, jetstream.ErrTooManyStalledMsgs),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
	case errors.As(err, &api):
		switch api.ErrorCode {
		case 10023, 10028, 10047: // insufficient resources, memory or storage exceeded
			return fmt.Errorf("%w: %w", hub.ErrFull, err)
		case jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return fmt.Errorf("%w: %w", hub.ErrTooLarge, err)
		case 10077: // store failed: the store says why
			if d := strings.ToLower(api.Description); strings.Contains(d, "maximum") || strings.Contains(d, "resources") {
				return fmt.Errorf("%w: %w", hub.ErrFull, err)
			}
		}
		if api.Code == 503 {
			return fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
		}
	}
	return err
}
