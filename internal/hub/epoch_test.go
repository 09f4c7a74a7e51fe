package hub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/hub/hubtest"
)

// swapLog is a log that is replaced under the hub, as when another node recreates a shared
// engine stream with a new epoch: the hub's tail (still on the old log) has not noticed yet.
type swapLog struct {
	mu  sync.Mutex
	cur *memory.Log
}

func (l *swapLog) log() *memory.Log { l.mu.Lock(); defer l.mu.Unlock(); return l.cur }

func (l *swapLog) swap() *memory.Log {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = memory.New(memory.Config{})
	return l.cur
}

func (l *swapLog) Epoch() string                            { return l.log().Epoch() }
func (l *swapLog) Last(ctx context.Context) (uint64, error) { return l.log().Last(ctx) }
func (l *swapLog) Append(ctx context.Context, m []*hub.Message) ([]bool, error) {
	return l.log().Append(ctx, m)
}
func (l *swapLog) Read(ctx context.Context, after, upto uint64, f *hub.Filter, n int) ([]*hub.Message, error) {
	return l.log().Read(ctx, after, upto, f, n)
}
func (l *swapLog) Tail(ctx context.Context, after uint64, d func(*hub.Message)) error {
	return l.log().Tail(ctx, after, d)
}
func (l *swapLog) Retained(ctx context.Context, f *hub.Filter) ([]*hub.Message, error) {
	return l.log().Retained(ctx, f)
}
func (l *swapLog) Trimmed(ctx context.Context, after uint64, f *hub.Filter) (bool, error) {
	return l.log().Trimmed(ctx, after, f)
}

// TestResumeWhileTheLogChangesEpoch resumes a client from an id of the old epoch after the log
// moved to a new one but before the hub's tail noticed. The id's sequence names a message of
// the old log; honouring it in the new one would skip messages silently. Both resume paths
// (history/poll and subscribe) must answer with an epoch gap notice. Found by the cluster
// data-loss test under the faults oracle (long-poll clients missed messages without a notice).
func TestResumeWhileTheLogChangesEpoch(t *testing.T) {
	l := &swapLog{cur: memory.New(memory.Config{})}
	h := hub.New(hub.Config{Log: l})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done })
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	publish(t, h, "t", "old 1")
	publish(t, h, "t", "old 2")
	newLog := l.swap()
	for _, d := range []string{"new 1", "new 2", "new 3"} {
		if _, err := newLog.Append(ctx, []*hub.Message{hubtest.Msg("t", d)}); err != nil {
			t.Fatal(err)
		}
	}
	old := hub.FormatID(h.Epoch(), 1)
	f := hub.MustFilter("t")

	page, err := h.History(ctx, f, old, 0)
	if err != nil {
		t.Fatal(err)
	}
	if page.Gap == nil || page.Gap.Reason != hub.GapEpoch || len(page.Messages) != 0 {
		t.Errorf("History since %s = %d messages, gap %+v; want an epoch gap and no messages", old, len(page.Messages), page.Gap)
	}
	if e, _, _ := hub.ParseID(page.Next); e != newLog.Epoch() {
		t.Errorf("History next = %s, want an id of the new epoch %s", page.Next, newLog.Epoch())
	}

	s, err := h.Subscribe(ctx, hub.Request{Filter: f, After: old})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if g := s.Gap(); g == nil || g.Reason != hub.GapEpoch {
		t.Errorf("Subscribe after %s: gap %+v, want an epoch gap", old, g)
	}
}
