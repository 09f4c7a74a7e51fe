package cluster

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/hub"
)

// run is a cluster fault run checked by the faults oracle (docs/guarantees.md). Every node has
// a load balancer in front of it (a faults.Proxy that prefers that node and falls back to the
// others in turn, as a balancer takes a dead node out); subscribers on SSE, WebSocket and long
// polling are spread over the balancers, and one publisher per topic publishes through each
// in turn until stopped.
type run struct {
	t       *testing.T
	o       *faults.Oracle
	subs    []*faults.Subscriber
	pubs    []*faults.Publisher
	acked   atomic.Int64
	stop    chan struct{}
	cancel  context.CancelFunc
	workers sync.WaitGroup // publishers
	clients sync.WaitGroup
}

// topics of a run: each subscriber takes two of them, so every topic has several subscribers
// and every subscriber gets messages from two publishers interleaved by the log.
var topics = []string{"f/a", "f/b", "f/c"}

// startRun starts the balancers, publishes a start marker (subscribers resume from it, so that
// what they are owed is exact) and starts one subscriber per transport per node, then the
// publishers.
func startRun(t *testing.T, nodes []*node) *run {
	t.Helper()
	r := &run{t: t, o: faults.NewOracle(), stop: make(chan struct{})}
	var bases []string
	for i := range nodes {
		var order []string
		for j := range nodes {
			u, _ := url.Parse(nodes[(i+j)%len(nodes)].URL)
			order = append(order, u.Host)
		}
		p, err := faults.NewProxy(order[0], order[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		bases = append(bases, "http://"+p.Addr())
	}

	marker := &faults.Publisher{Name: "start", Topic: "start", Base: bases[0], Key: key, Oracle: r.o}
	if code, err := marker.Publish(context.Background()); code != 200 {
		t.Fatalf("publish the start marker: %d %v", code, err)
	}
	_, from, _ := hub.ParseID(marker.LastID)

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	t.Cleanup(r.end) // also on t.Fatal: no client or publisher outlives the test
	var clients []faults.Client
	for i, base := range bases {
		for k, transport := range []string{"sse", "ws", "poll"} {
			mine := []string{topics[(i+k)%3], topics[(i+k+1)%3]}
			s := r.o.Subscriber(fmt.Sprintf("%s@node%d", transport, i), mine, from)
			var c faults.Client
			switch transport {
			case "sse":
				c = faults.NewSSEClient(base, mine, s, marker.LastID)
			case "ws":
				c = faults.NewWSClient(base, mine, s, marker.LastID)
			default:
				c = faults.NewPollClient(base, mine, s, marker.LastID)
			}
			r.subs, clients = append(r.subs, s), append(clients, c)
			r.clients.Go(func() { c.Run(ctx) })
		}
	}
	waitFor(t, "every client to connect", func() bool {
		for _, c := range clients {
			if !c.Ready() {
				return false
			}
		}
		return true
	})
	for i, topic := range topics {
		p := &faults.Publisher{Name: fmt.Sprintf("p%d", i), Topic: topic, Base: bases[i%len(bases)], Key: key, Oracle: r.o}
		r.pubs = append(r.pubs, p)
		r.workers.Go(func() { p.Loop(r.stop, &r.acked) })
	}
	return r
}

// waitAcked waits until n more publishes than now are acknowledged.
func (r *run) waitAcked(n int64) {
	r.t.Helper()
	want := r.acked.Load() + n
	waitFor(r.t, fmt.Sprintf("%d acknowledged publishes", want), func() bool { return r.acked.Load() >= want })
}

// statuses sums the publishers' answers with status code.
func (r *run) statuses(code int) int64 {
	var n int64
	for _, p := range r.pubs {
		if v, ok := p.Statuses.Load(code); ok {
			n += v.(*atomic.Int64).Load()
		}
	}
	return n
}

// end stops publishers and clients; it is idempotent.
func (r *run) end() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.workers.Wait()
	r.cancel()
	r.clients.Wait()
}

// finish stops publishing, lets every subscriber catch up (bounded), stops the clients and
// returns the oracle's verdict, failing the test on every problem it found. Gap notices are
// the caller's to judge.
func (r *run) finish() faults.Report {
	r.t.Helper()
	close(r.stop)
	r.workers.Wait()
	r.o.WaitCaughtUp(r.subs, 30*time.Second)
	r.end()
	rep := r.o.Check()
	r.t.Log(rep)
	for _, p := range rep.Problems {
		r.t.Error(p)
	}
	if rep.Acked == 0 {
		r.t.Error("no publish was acknowledged: the run proved nothing")
	}
	return rep
}
