// Package hub fans out published messages to the subscribers of matching topics.
//
// A Hub knows nothing about HTTP: transports turn a Subscription into bytes on the wire.
// Ordering, ids, history and retained values come from the Log it is given; every node tails
// that log and fans out locally, so one code path serves a single process and a cluster.
package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Hub. Zero values mean the documented default.
type Config struct {
	Log        Log          // required: ids, order, history
	QueueLen   int          // live messages a subscriber may have waiting; 0 means 1024
	MaxData    int          // bytes of data per message; 0 means MaxDataLen
	MaxTopics  int          // topics per message; 0 means 16
	MaxFilters int          // topics and patterns per subscription; 0 means 64
	Logger     *slog.Logger // nil means slog.Default()
}

// Hub is safe for concurrent use. Create it with New and start it with Run.
type Hub struct {
	cfg Config
	log Log

	mu     sync.Mutex // guards idx, head, closed, epoch
	idx    index
	head   uint64 // seq of the newest message handed to fan-out
	epoch  string
	closed bool

	ready atomic.Bool
	subs  atomic.Int64
	stats Stats
}

// Stats are counters for metrics; read them with atomic loads.
type Stats struct {
	Published atomic.Uint64
	Delivered atomic.Uint64 // messages queued to subscribers
	Evicted   atomic.Uint64 // subscriptions ended as too slow
	Resumed   atomic.Uint64 // subscriptions that resumed from a client's last id (replay)
	LogReads  atomic.Uint64 // history pages and catch-up pages read from the log
}

// New returns a hub over cfg.Log. It serves subscriptions only once Run has started.
func New(cfg Config) *Hub {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.MaxData <= 0 {
		cfg.MaxData = MaxDataLen
	}
	if cfg.MaxTopics <= 0 {
		cfg.MaxTopics = 16
	}
	if cfg.MaxFilters <= 0 {
		cfg.MaxFilters = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Hub{cfg: cfg, log: cfg.Log, idx: newIndex(), epoch: cfg.Log.Epoch()}
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Subscribers returns the number of active subscriptions.
func (h *Hub) Subscribers() int64 { return h.subs.Load() }

// Ready reports whether the hub is tailing its log and accepting subscribers.
func (h *Hub) Ready() bool { return h.ready.Load() }

// Epoch returns the current log epoch.
func (h *Hub) Epoch() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

// Run tails the log and fans out every new message until ctx ends. When the log fails it marks
// the hub not ready, waits with backoff, and continues from the last delivered message.
func (h *Hub) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.tail(ctx)
		h.ready.Store(false)
		if ctx.Err() != nil {
			break
		}
		h.cfg.Logger.Warn("log tail stopped; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

func (h *Hub) tail(ctx context.Context) error {
	last, err := h.log.Last(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	epoch := h.log.Epoch()
	if epoch != h.epoch {
		// The log was recreated: every cursor we hold is meaningless. Subscribers reconnect and
		// get a gap notice.
		h.cfg.Logger.Warn("log epoch changed", "old", h.epoch, "new", epoch)
		h.epoch = epoch
		h.head = 0
		h.mu.Unlock()
		h.evictAll(ErrEpoch)
		h.mu.Lock()
	}
	from := h.head
	if from == 0 || from > last {
		from = last
		h.head = last
	}
	h.mu.Unlock()
	h.ready.Store(true)
	return h.log.Tail(ctx, from, h.deliver)
}

// deliver fans m out. It is called by the log's tail goroutine, in order, and never blocks.
func (h *Hub) deliver(m *Message) {
	var buf [4][]*Subscription
	h.mu.Lock()
	if m.Seq <= h.head {
		h.mu.Unlock()
		return
	}
	h.head = m.Seq
	lists := h.idx.lookup(m.Topics, buf[:0])
	h.mu.Unlock()
	n := 0
	for _, subs := range lists {
		for _, s := range subs {
			s.offer(m)
		}
		n += len(subs)
	}
	h.stats.Delivered.Add(uint64(n))
}

// Head returns the seq of the newest message handed to fan-out on this node.
func (h *Hub) Head() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}

// Request describes a subscription.
type Request struct {
	Filter   *Filter
	After    string // the last id the client received; empty for a new subscriber
	Identity string
	Expires  time.Time // zero: never; transports end the connection at this time (the hub ignores it)
}

// Subscribe registers a subscription. A new subscriber first receives the retained value of
// every matching topic; a resuming one receives every matching message after req.After, or a
// Gap when that is impossible. Then live messages follow with no gap and no duplicate at the seam.
func (h *Hub) Subscribe(ctx context.Context, req Request) (*Subscription, error) {
	if req.Filter == nil {
		return nil, fmt.Errorf("%w: no topic given", ErrBadTopic)
	}
	if n := len(req.Filter.Entries()); n > h.cfg.MaxFilters {
		return nil, fmt.Errorf("%w: %d topics and patterns, at most %d", ErrTooMany, n, h.cfg.MaxFilters)
	}
	if !h.ready.Load() {
		return nil, ErrUnavailable
	}
	after, gap, err := h.resumePoint(ctx, req.After, req.Filter)
	if err != nil {
		return nil, err
	}
	if after != nil {
		h.stats.Resumed.Add(1)
	}
	s := &Subscription{
		hub: h, filter: req.Filter, Identity: req.Identity, max: h.cfg.QueueLen, gap: gap,
		ready: make(chan struct{}, 1), done: make(chan struct{}),
	}
	// Register at head H: live delivery covers everything after H, and catch-up reads the log
	// up to H. The lock makes "registered" and "H" one fact. An id ahead of H (another node
	// appended it and we have not tailed it yet) resumes there: live delivery skips up to it.
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	head := h.head
	if e, _, _ := ParseID(req.After); after != nil && e != h.epoch {
		// The epoch changed since resumePoint (and evictAll has passed): after is a position in
		// the old log.
		after, s.gap = nil, epochGap(req.After)
	}
	s.cursor, s.upto = head, head
	if after != nil {
		s.cursor, s.upto = *after, max(head, *after)
	}
	s.queued = s.upto
	h.idx.add(s)
	h.subs.Add(1)
	h.mu.Unlock()

	if after == nil {
		// Start from the current state: retained values up to H, oldest first; newer ones
		// arrive live.
		retained, err := h.log.Retained(ctx, s.filter)
		if err != nil {
			s.end(ErrCanceled)
			return nil, err
		}
		retained = slices.DeleteFunc(retained, func(m *Message) bool { return m.Seq > head })
		slices.SortFunc(retained, func(a, b *Message) int { return cmp.Compare(a.Seq, b.Seq) })
		retained = slices.CompactFunc(retained, func(a, b *Message) bool { return a.Seq == b.Seq })
		s.backlog = retained
	}
	return s, nil
}

// resumePoint checks the client's last id against the log. It returns the seq to resume after,
// or nil for "start from the current state", with a Gap when the id cannot be honoured as given.
func (h *Hub) resumePoint(ctx context.Context, id string, f *Filter) (*uint64, *Gap, error) {
	if id == "" {
		return nil, nil, nil
	}
	e, seq, err := ParseID(id)
	switch {
	case err != nil:
		return nil, &Gap{Reason: GapBadID, LastEventID: id, Message: "this id was not issued by this server; starting from the current state"}, nil
	case e != h.Epoch():
		return nil, epochGap(id), nil
	}
	last, err := h.log.Last(ctx)
	if err != nil {
		return nil, nil, err
	}
	if e != h.log.Epoch() {
		// The log moved to a new epoch (on another node's doing) before this hub's tail noticed:
		// last and seq belong to different logs.
		return nil, epochGap(id), nil
	}
	if seq > last {
		return nil, &Gap{Reason: GapUnknownID, LastEventID: id, Message: "this id is newer than the message log; starting from the current state"}, nil
	}
	trimmed, err := h.log.Trimmed(ctx, seq, f)
	if err != nil {
		return nil, nil, err
	}
	if trimmed {
		return &seq, &Gap{Reason: GapTrimmed, LastEventID: id, Message: "messages after this id were removed by retention; sending what remains"}, nil
	}
	return &seq, nil, nil
}

func epochGap(id string) *Gap {
	return &Gap{Reason: GapEpoch, LastEventID: id, Message: "the message log was reset since this id was issued; starting from the current state"}
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	h.idx.remove(s)
	h.mu.Unlock()
	h.subs.Add(-1)
	if errors.Is(s.err, ErrSlow) {
		h.stats.Evicted.Add(1)
	}
}

// Close ends every subscription with ErrClosed and refuses new ones. Transports tell their
// clients to reconnect.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.ready.Store(false)
	h.evictAll(ErrClosed)
}

func (h *Hub) evictAll(reason error) {
	for _, s := range h.all() {
		s.end(reason)
	}
}

// all returns every registered subscription once.
func (h *Hub) all() []*Subscription {
	h.mu.Lock()
	var all []*Subscription
	seen := make(map[*Subscription]bool)
	for _, m := range []map[string][]*Subscription{h.idx.exact, h.idx.patterns} {
		for _, subs := range m {
			for _, s := range subs {
				if !seen[s] {
					seen[s] = true
					all = append(all, s)
				}
			}
		}
	}
	h.mu.Unlock()
	return all
}
