package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
)

// BenchmarkFanout publishes b.N messages to one topic with subs subscribers, each drained by
// its own goroutine as a transport would, and reports deliveries per second end to end
// (publish, log tail, fan-out, Take).
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{100, 2000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			h := startHub(b)
			ctx := context.Background()
			var wg sync.WaitGroup
			for range subs {
				s, err := h.Subscribe(ctx, hub.Request{Filter: hub.MustFilter("bench")})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer s.Close()
					drain(ctx, s, b.N)
				}()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				batch := make([]*hub.Message, min(100, b.N-i))
				for j := range batch {
					batch[j] = &hub.Message{Topics: []string{"bench"}, Data: []byte("0123456789abcdef0123456789abcdef")}
				}
				if _, err := h.Publish(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// drain takes messages until it has n of them, waiting on Ready like a transport.
func drain(ctx context.Context, s *hub.Subscription, n int) {
	got := 0
	for got < n {
		batch, err := s.Take(ctx, 256)
		if err != nil {
			return
		}
		got += len(batch.Messages)
		if len(batch.Messages) > 0 || !s.CaughtUp() {
			continue
		}
		select {
		case <-s.Ready():
		case <-s.Done():
			return
		}
	}
}

func startHub(b *testing.B) *hub.Hub {
	h := hub.New(hub.Config{Log: memory.New(memory.Config{}), QueueLen: 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	b.Cleanup(func() { h.Close(); cancel(); <-done })
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	return h
}

// BenchmarkMatch matches topics against patterns, as fan-out does for every pattern
// subscription on every message.
func BenchmarkMatch(b *testing.B) {
	cases := []struct{ pattern, topic string }{
		{"news/sport", "news/sport"},
		{"news/*/scores", "news/sport/scores"},
		{"news/**", "news/sport/tennis/live"},
		{"orders/*/status", "news/sport/scores"},
	}
	for _, c := range cases {
		b.Run(c.pattern, func(b *testing.B) {
			for b.Loop() {
				hub.Match(c.pattern, c.topic)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "matches/s")
		})
	}
}

// BenchmarkFilterMatch checks one topic against a filter of 32 exact topics and 32 patterns.
func BenchmarkFilterMatch(b *testing.B) {
	var entries []string
	for i := range 32 {
		entries = append(entries, fmt.Sprintf("room/%d", i), fmt.Sprintf("user/%d/*", i))
	}
	f := hub.MustFilter(entries...)
	for b.Loop() {
		f.Match("user/31/inbox")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "matches/s")
}
