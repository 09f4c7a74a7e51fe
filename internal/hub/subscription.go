package hub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Reasons a subscription ends. Transports report them to the client (SSE comment, WebSocket
// close code) and in metrics.
var (
	ErrSlow     = errors.New("hub: subscriber too slow: queue overflowed")
	ErrClosed   = errors.New("hub: shutting down")
	ErrEpoch    = errors.New("hub: log epoch changed")
	ErrTooMany  = errors.New("hub: too many subscriptions")
	ErrCanceled = errors.New("hub: subscription closed")
)

// Gap tells a resuming subscriber that the stream it asked for cannot be continued exactly.
// It is sent before anything else; loss is never silent.
type Gap struct {
	Reason      string `json:"reason"`      // one of the Gap* constants
	LastEventID string `json:"lastEventId"` // the id the client resumed from
	Message     string `json:"message"`
}

// Gap reasons.
const (
	GapBadID     = "bad-id"     // the id is not one this server produces
	GapEpoch     = "epoch"      // the id comes from a log that no longer exists
	GapUnknownID = "unknown-id" // the id is newer than anything in the log
	GapTrimmed   = "trimmed"    // retention removed messages after the id
)

// Batch is what a transport writes next.
type Batch struct {
	Messages []*Message
	// Position, when not empty, is the id of the newest log position this subscription has
	// accounted for. It is set once, when catching up ends, so that a client that received
	// nothing still resumes from here (SSE: an "id:" line with no data).
	Position string
}

// Subscription is one client's view of the hub: catch-up from history or retained values first,
// then live messages. It is owned by one transport goroutine; offer is called by the hub.
type Subscription struct {
	hub      *Hub
	filter   *Filter
	Identity string // who subscribed, for presence and logs; may be empty

	gap *Gap

	// Catch-up state, touched only by the owner.
	backlog  []*Message // retained values for a new subscriber
	cursor   uint64     // last seq read from the log while catching up
	upto     uint64     // catch-up ends here; live delivery covers everything after
	caughtUp bool

	mu     sync.Mutex
	queue  []*Message
	queued uint64 // highest seq queued (or skipped as already covered)
	max    int
	err    error

	ready  chan struct{} // capacity 1: "queue became non-empty"
	done   chan struct{}
	notify atomic.Pointer[func()]
}

// Notify makes the hub call fn whenever Ready is signalled and once when the subscription ends,
// so that a transport can serve many subscriptions from a few goroutines instead of parking
// one on Ready per subscription. fn is called from the hub's goroutines, sometimes with the
// subscription's lock held: it must not block and must not call the subscription's methods.
// If messages are already waiting or the subscription has ended, fn is called at once.
func (s *Subscription) Notify(fn func()) {
	s.notify.Store(&fn)
	s.mu.Lock()
	pending := len(s.queue) > 0 || s.err != nil
	s.mu.Unlock()
	if pending {
		fn()
	}
}

// Filter returns the topics and patterns of the subscription.
func (s *Subscription) Filter() *Filter { return s.filter }

// Gap returns the gap notice to send first, or nil.
func (s *Subscription) Gap() *Gap { return s.gap }

// Ready is signalled when live messages are waiting. Catch-up batches are available at once.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Done is closed when the subscription ends; Err then says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended, or nil while it is active.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// CaughtUp reports whether history and retained values have all been taken.
func (s *Subscription) CaughtUp() bool { return s.caughtUp }

// Take returns the next batch without blocking on live traffic: first retained values or history
// pages (which may read the log), then whatever live messages are queued, at most max of them.
// An empty batch means "wait for Ready".
func (s *Subscription) Take(ctx context.Context, max int) (Batch, error) {
	return s.TakeBytes(ctx, max, 0)
}

// TakeBytes is Take with a bound on data bytes as well: once caught up, it stops after the
// message that brings the data taken to maxBytes or more (it returns at least one message when
// any is queued). maxBytes <= 0 means no bound. What is left stays queued, counting against
// the queue's length, and Ready is signalled again.
func (s *Subscription) TakeBytes(ctx context.Context, max, maxBytes int) (Batch, error) {
	if !s.caughtUp {
		return s.catchUp(ctx, max)
	}
	s.mu.Lock()
	n := min(len(s.queue), max)
	if maxBytes > 0 {
		size := 0
		for i, m := range s.queue[:n] {
			if size += len(m.Data); size >= maxBytes {
				n = i + 1
				break
			}
		}
	}
	out := make([]*Message, n)
	copy(out, s.queue)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	if rest > 0 {
		s.signal()
	}
	s.mu.Unlock()
	return Batch{Messages: out}, nil
}

func (s *Subscription) catchUp(ctx context.Context, max int) (Batch, error) {
	if len(s.backlog) > 0 {
		n := min(len(s.backlog), max)
		out := s.backlog[:n:n]
		s.backlog = s.backlog[n:]
		return Batch{Messages: out}, nil
	}
	if s.cursor < s.upto {
		s.hub.stats.LogReads.Add(1)
		msgs, err := s.hub.log.Read(ctx, s.cursor, s.upto, s.filter, max)
		if err != nil {
			return Batch{}, err
		}
		if len(msgs) < max {
			s.cursor = s.upto
		} else {
			s.cursor = msgs[len(msgs)-1].Seq
		}
		if len(msgs) > 0 {
			return Batch{Messages: msgs}, nil
		}
	}
	s.caughtUp = true
	s.mu.Lock()
	if len(s.queue) > 0 {
		s.signal()
	}
	s.mu.Unlock()
	return Batch{Position: FormatID(s.hub.Epoch(), s.upto)}, nil
}

// Close ends the subscription and removes it from the hub. It is safe to call more than once.
func (s *Subscription) Close() {
	s.end(ErrCanceled)
}

// offer queues m without blocking. A full queue ends the subscription with ErrSlow: the client
// resumes from history when it reconnects, so nothing is lost and nobody else waits.
func (s *Subscription) offer(m *Message) {
	s.mu.Lock()
	if s.err != nil || m.Seq <= s.queued {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.max {
		s.mu.Unlock()
		s.end(ErrSlow)
		return
	}
	s.queue = append(s.queue, m)
	s.queued = m.Seq
	if len(s.queue) == 1 {
		s.signal()
	}
	s.mu.Unlock()
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
	if fn := s.notify.Load(); fn != nil {
		(*fn)()
	}
}

// end records why the subscription ended, closes Done and unregisters it, once.
func (s *Subscription) end(reason error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = reason
	s.queue = nil
	close(s.done)
	s.mu.Unlock()
	s.hub.remove(s)
	if fn := s.notify.Load(); fn != nil {
		(*fn)()
	}
}
