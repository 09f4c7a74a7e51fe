package sse_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/hub/hubtest"
	"github.com/herald-push/herald/internal/sse"
)

// waitFor polls cond for up to 10s: the pool notices a hang-up asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still false after 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A client that hangs up is found without a write (by the watcher), and its subscription ends.
func TestPoolClientHangUp(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	resp, err := http.Get(srv.URL + "/events?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	srv.Publish(t, "a", "one")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "data: one\n" {
			break
		}
	}
	if got := srv.Hub.Subscribers(); got != 1 {
		t.Fatalf("subscribers = %d, want 1", got)
	}
	resp.Body.Close()
	waitFor(t, "subscription ended after hang-up", func() bool { return srv.Hub.Subscribers() == 0 })
}

// A client that stops reading fills its socket, then its hub queue, and is evicted; a reading
// client on the same topic receives everything meanwhile.
func TestPoolSlowClientEvicted(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Hub: hub.Config{QueueLen: 8}})
	slow, err := http.Get(srv.URL + "/events?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	fast := srv.SSE(t, "/events?topic=a", "")
	big := strings.Repeat("x", 60000)
	const n = 200
	for i := 0; i < n; i++ {
		srv.PublishMsg(t, map[string]any{"topic": "a", "data": big})
		if got := fast.Next(t).Data; got != big {
			t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(big))
		}
	}
	waitFor(t, "slow subscriber evicted", func() bool { return srv.Hub.Stats().Evicted.Load() == 1 })
}

// An evicted subscriber whose flusher is blocked on a full socket is closed at once, not when
// the write timeout (here an hour) expires.
func TestPoolEvictedClosedBeforeWriteTimeout(t *testing.T) {
	h := hub.New(hub.Config{Log: memory.New(memory.Config{}), QueueLen: 8})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { h.Close(); cancel(); <-done }()
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	ended := make(chan error, 1)
	var written atomic.Int64
	ts := httptest.NewServer(&sse.Handler{Hub: h, WriteTimeout: time.Hour,
		OnWrite: func(n int) { written.Add(int64(n)) },
		OnEnd: func(err error) {
			select {
			case ended <- err:
			default:
			}
		}})
	defer ts.Close()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Never read. First fill the socket, one message at a time, until a message is not
	// written within a second: the flusher is then blocked. Then overflow the queue.
	fmt.Fprintf(c, "GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "subscribed", func() bool { return h.Subscribers() == 1 })
	big := strings.Repeat("x", 60000)
	publish := func() {
		if _, err := h.Publish(ctx, []*hub.Message{hubtest.Msg("a", big)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; ; i++ {
		if i == 2000 {
			t.Fatal("socket not full after 2,000 messages of 60 KB")
		}
		before := written.Load()
		publish()
		deadline := time.Now().Add(time.Second)
		for written.Load() == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if written.Load() == before {
			break
		}
	}
	for range 20 {
		publish()
	}
	waitFor(t, "evicted", func() bool { return h.Stats().Evicted.Load() == 1 })
	select {
	case err := <-ended:
		if !errors.Is(err, hub.ErrSlow) {
			t.Errorf("stream ended with %v, want ErrSlow", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("evicted stream still open after 30s (write timeout 1h)")
	}
}
