package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/heraldtest"
)

// TestPublishBurst sends a burst of concurrent publishes, far more at once than the server's
// two cores handle, while subscribers read. Every answer is definite (200, or 429/503 meaning
// "not stored, retry"), no request is left without an answer, and nothing acknowledged is lost.
func TestPublishBurst(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Log: embedded(t, "")})
	o := faults.NewOracle()
	start, from := startID(t, srv)
	topics := []string{"burst/0", "burst/1", "burst/2", "burst/3"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*faults.SSEClient
	var subs []*faults.Subscriber
	for i := range 8 {
		s := o.Subscriber(fmt.Sprintf("sub%d", i), topics, from)
		c := faults.NewSSEClient(srv.URL, topics, s, start)
		clients, subs = append(clients, c), append(subs, s)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	waitConnected(t, clients)

	const publishers, each = 128, 25
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: publishers}, Timeout: 30 * time.Second}
	var other atomic.Int64
	var pubs sync.WaitGroup
	gate := make(chan struct{})
	for i := range publishers {
		p := &faults.Publisher{Name: fmt.Sprintf("p%d", i), Topic: topics[i%len(topics)], Base: srv.URL, Key: heraldtest.Key, Oracle: o, HTTP: hc, Strict5xx: false}
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			<-gate // all at once
			for range each {
				code, err := p.Publish(context.Background())
				switch code {
				case 200, 429, 503:
				default:
					other.Add(1)
					t.Errorf("publish answered %d (%v), want 200, 429 or 503", code, err)
				}
			}
		}()
	}
	close(gate)
	pubs.Wait()
	waitCaughtUp(t, o, subs, 60*time.Second)
	cancel()
	wg.Wait()
	r := verify(t, o, false)
	if r.Uncertain > 0 && other.Load() == 0 {
		t.Errorf("%d publishes ended without a definite answer", r.Uncertain)
	}
	waitNoSubscribers(t, srv.Hub)
}
