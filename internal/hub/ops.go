package hub

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// TopicCount is a topic or pattern and the number of subscriptions on it, for dashboards.
type TopicCount struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
}

// TopTopics returns up to n topics and patterns with the most subscriptions on this node, most
// first. It copies the index under the lock, so call it at dashboard rates, not per message.
func (h *Hub) TopTopics(n int) []TopicCount {
	h.mu.Lock()
	all := make([]TopicCount, 0, len(h.idx.exact)+len(h.idx.patterns))
	for _, m := range []map[string][]*Subscription{h.idx.exact, h.idx.patterns} {
		for t, subs := range m {
			all = append(all, TopicCount{t, len(subs)})
		}
	}
	h.mu.Unlock()
	slices.SortFunc(all, func(a, b TopicCount) int {
		return cmp.Or(cmp.Compare(b.Subscribers, a.Subscribers), cmp.Compare(a.Topic, b.Topic))
	})
	return all[:min(n, len(all))]
}

// Drain refuses new subscriptions (ErrClosed) and ends the current ones with ErrClosed spread
// over window, so that their clients do not all reconnect at the same instant: a rolling restart
// without a reconnect storm. Each subscription waits at most maxDrainStep for the previous one,
// so a handful of subscribers are closed at once. When ctx ends the rest are ended at once.
// Drain returns when every subscription it saw has ended; Close may follow or race it safely.
func (h *Hub) Drain(ctx context.Context, window time.Duration) {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.ready.Store(false)
	all := h.all()
	if len(all) == 0 {
		return
	}
	step := min(window/time.Duration(len(all)), maxDrainStep)
	t := time.NewTimer(0)
	defer t.Stop()
	for i, s := range all {
		if step > 0 && i > 0 {
			t.Reset(step)
			select {
			case <-t.C:
			case <-ctx.Done():
				for _, s := range all[i:] {
					s.end(ErrClosed)
				}
				return
			}
		}
		s.end(ErrClosed)
	}
}

// maxDrainStep bounds the pause between two closes in Drain: 1,000 subscriptions take at most
// 10s however long the window is.
const maxDrainStep = 10 * time.Millisecond
