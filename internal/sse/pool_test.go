package sse_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
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
