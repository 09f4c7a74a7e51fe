package hub_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
)

func runHub(t *testing.T) *hub.Hub {
	h := hub.New(hub.Config{Log: memory.New(memory.Config{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done })
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	return h
}

func subscribe(t *testing.T, h *hub.Hub, topics ...string) *hub.Subscription {
	f, err := hub.NewFilter(topics)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.Subscribe(context.Background(), hub.Request{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTopTopics(t *testing.T) {
	h := runHub(t)
	subscribe(t, h, "a", "b")
	subscribe(t, h, "a", "news/*")
	subscribe(t, h, "a")
	s := subscribe(t, h, "c")
	s.Close()
	if got, want := fmt.Sprint(h.TopTopics(10)), "[{a 3} {b 1} {news/* 1}]"; got != want {
		t.Errorf("TopTopics(10) = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(h.TopTopics(1)), "[{a 3}]"; got != want {
		t.Errorf("TopTopics(1) = %s, want %s", got, want)
	}
}

func TestDrainEndsEverySubscription(t *testing.T) {
	h := runHub(t)
	var subs []*hub.Subscription
	for i := range 50 {
		subs = append(subs, subscribe(t, h, fmt.Sprintf("t/%d", i%7)))
	}
	h.Drain(context.Background(), 100*time.Millisecond)
	for i, s := range subs {
		select {
		case <-s.Done():
		default:
			t.Fatalf("subscription %d still open after Drain", i)
		}
		if !errors.Is(s.Err(), hub.ErrClosed) {
			t.Errorf("subscription %d ended with %v, want ErrClosed", i, s.Err())
		}
	}
	if h.Subscribers() != 0 || h.Ready() {
		t.Errorf("after Drain: %d subscribers, ready %v; want 0, false", h.Subscribers(), h.Ready())
	}
	f, _ := hub.NewFilter([]string{"late"})
	if _, err := h.Subscribe(context.Background(), hub.Request{Filter: f}); !errors.Is(err, hub.ErrClosed) && !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Subscribe after Drain: %v, want ErrClosed or ErrUnavailable", err)
	}
}

// A cancelled drain ends the rest at once instead of waiting out the window.
func TestDrainCancelled(t *testing.T) {
	h := runHub(t)
	var subs []*hub.Subscription
	for range 3 {
		subs = append(subs, subscribe(t, h, "x"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.Drain(ctx, time.Hour)
	for i, s := range subs {
		if s.Err() == nil {
			t.Errorf("subscription %d still open after a cancelled Drain", i)
		}
	}
}
