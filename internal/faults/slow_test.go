package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/hub"
)

// slowRSSBound is the promise this test checks: a server with 20 subscribers, 10 of which stop
// reading while about 8 MB are published, stays under this resident size. Slow subscribers
// cost at most their queue (queue_len pointers; messages are shared) and their socket buffers,
// which live in the kernel.
const slowRSSBound = 256 << 20

// TestSlowConsumersAreCutAndResume runs fan-out to fast subscribers while half the subscribers
// stop reading. The slow ones are disconnected (queue overflow), resume from history when they
// read again and end with everything; the fast ones are never disconnected; the server's memory
// stays bounded.
func TestSlowConsumersAreCutAndResume(t *testing.T) {
	addr, err := faults.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := serve(t, addr, t.TempDir(), "--limits-queue-len", "64", "--sse-heartbeat", "1s")
	base := "http://" + addr
	o := faults.NewOracle()
	marker := &faults.Publisher{Name: "start", Topic: "start", Base: base, Key: p.Key, Oracle: o}
	if code, err := marker.Publish(context.Background()); code != 200 {
		t.Fatalf("publish: %d %v", code, err)
	}
	_, from, _ := hub.ParseID(marker.LastID)

	topics := []string{"fan"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var fast, slow []*faults.SSEClient
	var subs []*faults.Subscriber
	for i := range 20 {
		s := o.Subscriber(fmt.Sprintf("sub%d", i), topics, from)
		c := faults.NewSSEClient(base, topics, s, marker.LastID)
		c.Retry = 50 * time.Millisecond
		if i%2 == 1 {
			c.ReadBuffer = 4096
			c.Pause()
			slow = append(slow, c)
		} else {
			fast = append(fast, c)
		}
		subs = append(subs, s)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	waitConnected(t, fast)
	waitFor(t, func() bool {
		for _, c := range slow {
			if c.Conns.Load() == 0 {
				return false
			}
		}
		return true
	}, "slow subscribers connected")

	// 4,000 publishes of 2 KB on four connections.
	var peak atomic.Int64
	sample := func() {
		if rss, err := p.RSS(); err == nil && rss > peak.Load() {
			peak.Store(rss)
		}
	}
	var pubs sync.WaitGroup
	for i := range 4 {
		pub := &faults.Publisher{Name: fmt.Sprintf("p%d%s", i, strings.Repeat("x", 2000)), Topic: "fan", Base: base, Key: p.Key, Oracle: o}
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for n := range 1000 {
				if code, err := pub.Publish(context.Background()); code != 200 {
					t.Errorf("publish: %d %v", code, err)
					return
				}
				if n%100 == 0 {
					sample()
				}
			}
		}()
	}
	pubs.Wait()
	sample()

	// The slow subscribers were cut while paused; now they read what their sockets hold,
	// see the end of the stream, and resume from history.
	for _, c := range slow {
		c.Unpause()
	}
	waitCaughtUp(t, o, subs, 60*time.Second)
	sample()
	cancel()
	wg.Wait()
	verify(t, o, false)
	for i, c := range fast {
		if n := c.Conns.Load(); n != 1 {
			t.Errorf("fast subscriber %d connected %d times, want 1: a slow one affected it", i, n)
		}
	}
	cut := 0
	for _, c := range slow {
		if c.Conns.Load() > 1 {
			cut++
		}
	}
	if cut == 0 {
		t.Error("no slow subscriber was disconnected: the test did not overflow any queue")
	}
	t.Logf("%d of %d slow subscribers cut and resumed; server peak RSS %d MiB (bound %d MiB)",
		cut, len(slow), peak.Load()>>20, slowRSSBound>>20)
	if peak.Load() > slowRSSBound {
		t.Errorf("server RSS peaked at %d MiB, want at most %d MiB", peak.Load()>>20, slowRSSBound>>20)
	}
}
