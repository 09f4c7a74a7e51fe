package hub_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/hub/hubtest"
)

func newHub(t *testing.T, cfg hub.Config) *hub.Hub {
	cfg.Log = memory.New(memory.Config{})
	h := hub.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done })
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	return h
}

func publish(t *testing.T, h *hub.Hub, topics, data string) *hub.Message {
	t.Helper()
	m := hubtest.Msg(topics, data)
	if _, err := h.Publish(context.Background(), []*hub.Message{m}); err != nil {
		t.Fatal(err)
	}
	return m
}

// A subscriber that stops taking is cut once its queue overflows; the others go on.
func TestSlowSubscriberIsEvicted(t *testing.T) {
	h := newHub(t, hub.Config{QueueLen: 10})
	ctx := context.Background()
	slow, _ := h.Subscribe(ctx, hub.Request{Filter: hub.MustFilter("t")})
	fast, _ := h.Subscribe(ctx, hub.Request{Filter: hub.MustFilter("t")})
	defer fast.Close()
	got := 0
	for i := range 50 {
		publish(t, h, "t", strconv.Itoa(i))
		got += len(hubtest.Collect(t, fast, 1))
	}
	select {
	case <-slow.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("slow subscriber not evicted")
	}
	if !errors.Is(slow.Err(), hub.ErrSlow) {
		t.Errorf("slow.Err() = %v, want ErrSlow", slow.Err())
	}
	if got != 50 {
		t.Errorf("fast subscriber got %d of 50", got)
	}
	if h.Stats().Evicted.Load() != 1 {
		t.Errorf("Evicted = %d, want 1", h.Stats().Evicted.Load())
	}
	if h.Subscribers() != 1 {
		t.Errorf("Subscribers() = %d, want 1 after eviction", h.Subscribers())
	}
}

// A message on several topics reaches a subscriber of several of them once.
func TestMultiTopicDeliveredOnce(t *testing.T) {
	h := newHub(t, hub.Config{})
	s, _ := h.Subscribe(context.Background(), hub.Request{Filter: hub.MustFilter("a", "b", "*")})
	defer s.Close()
	publish(t, h, "a,b", "both")
	publish(t, h, "a", "then")
	got := hubtest.Collect(t, s, 2)
	if string(got[0].Data) != "both" || string(got[1].Data) != "then" {
		t.Errorf("got %q %q, want both then", got[0].Data, got[1].Data)
	}
}

func TestPublishValidates(t *testing.T) {
	h := newHub(t, hub.Config{MaxData: 10, MaxTopics: 2})
	tests := []struct {
		m    *hub.Message
		want error
	}{
		{&hub.Message{}, hub.ErrBadTopic},
		{&hub.Message{Topics: []string{"a/*"}}, hub.ErrBadTopic},
		{&hub.Message{Topics: []string{"a", "b", "c"}}, hub.ErrBadTopic},
		{&hub.Message{Topics: []string{"a"}, Data: make([]byte, 11)}, hub.ErrTooLarge},
		{&hub.Message{Topics: []string{"a"}, Event: "x\ny"}, hub.ErrBadEvent},
		{&hub.Message{Topics: []string{"a"}, Event: "has space"}, hub.ErrBadEvent},
	}
	for _, tt := range tests {
		if _, err := h.Publish(context.Background(), []*hub.Message{tt.m}); !errors.Is(err, tt.want) {
			t.Errorf("Publish(%+v) = %v, want %v", tt.m, err, tt.want)
		}
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	h := newHub(t, hub.Config{})
	s, _ := h.Subscribe(context.Background(), hub.Request{Filter: hub.MustFilter("a")})
	h.Close()
	<-s.Done()
	if !errors.Is(s.Err(), hub.ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", s.Err())
	}
	if _, err := h.Subscribe(context.Background(), hub.Request{Filter: hub.MustFilter("a")}); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
}

func TestTooManyFilters(t *testing.T) {
	h := newHub(t, hub.Config{MaxFilters: 2})
	_, err := h.Subscribe(context.Background(), hub.Request{Filter: hub.MustFilter("a", "b", "c")})
	if !errors.Is(err, hub.ErrTooMany) {
		t.Errorf("err = %v, want ErrTooMany", err)
	}
}

// TakeBytes stops after the message that reaches the byte bound; the rest stays queued.
func TestTakeBytes(t *testing.T) {
	h := newHub(t, hub.Config{})
	ctx := context.Background()
	s, err := h.Subscribe(ctx, hub.Request{Filter: hub.MustFilter("t")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Take(ctx, 10); err != nil || len(b.Messages) != 0 {
		t.Fatalf("catch-up: %d messages, %v: want none", len(b.Messages), err)
	}
	var last *hub.Message
	for range 5 {
		last = publish(t, h, "t", "0123456789")
	}
	for h.Head() < last.Seq {
		time.Sleep(time.Millisecond)
	}
	for _, tc := range []struct{ max, maxBytes, want int }{
		{100, 25, 3}, // 10, 20, 30 >= 25: the third is the last
		{100, 1, 1},
		{100, 0, 1}, // no bound: what is left
		{100, 25, 0},
	} {
		b, err := s.TakeBytes(ctx, tc.max, tc.maxBytes)
		if err != nil || len(b.Messages) != tc.want {
			t.Errorf("TakeBytes(%d, %d) = %d messages, %v; want %d", tc.max, tc.maxBytes, len(b.Messages), err, tc.want)
		}
	}
}
