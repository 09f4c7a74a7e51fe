package faults_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/hub"
)

// stormClients is how many clients reconnect at once. The server is the real binary, so that
// its memory is measured alone; clients and the proxy share this test process, three
// descriptors per client (9,000 for 3,000 clients), under the 20,000 open-file limit.
const stormClients = 3000

// stormRSSBound bounds the server's resident memory with 3,000 clients catching up at once.
const stormRSSBound = 512 << 20

// TestReconnectStorm connects thousands of SSE clients through the fault proxy, cuts every
// connection at once while publishing goes on, and lets them all reconnect together with their
// last ids. The server admits them, memory stays bounded, and every client ends with every
// acknowledged message.
func TestReconnectStorm(t *testing.T) {
	n := stormClients
	if testing.Short() {
		n = 300
	}
	addr, err := faults.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// Every client comes from 127.0.0.1, through the proxy: lift the per-address limit (512).
	srv := serve(t, addr, t.TempDir(), "--limits-conns-per-ip", "0")
	proxy, base := proxyTo(t, srv.URL)
	o := faults.NewOracle()
	marker := &faults.Publisher{Name: "start", Topic: "start", Base: srv.URL, Key: srv.Key, Oracle: o}
	if code, err := marker.Publish(context.Background()); code != 200 {
		t.Fatalf("publish: %d %v", code, err)
	}
	start := marker.LastID
	_, from, _ := hub.ParseID(start)
	topics := []string{"storm"}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	clients := make([]*faults.SSEClient, n)
	subs := make([]*faults.Subscriber, n)
	for i := range n {
		subs[i] = o.Subscriber(fmt.Sprintf("c%d", i), topics, from)
		clients[i] = faults.NewSSEClient(base, topics, subs[i], start)
		clients[i].Retry = 20 * time.Millisecond
		wg.Add(1)
		go func() { defer wg.Done(); clients[i].Run(ctx) }()
	}
	waitConnected(t, clients)

	pub := &faults.Publisher{Name: "p", Topic: "storm", Base: srv.URL, Key: srv.Key, Oracle: o}
	publish := func(k int) {
		for range k {
			if code, err := pub.Publish(context.Background()); code != 200 {
				t.Fatalf("publish: %d %v", code, err)
			}
		}
	}
	publish(20)
	waitCaughtUp(t, o, subs, 60*time.Second)

	// The storm: every connection reset at once; publishing goes on while clients return.
	fds, _ := faults.OpenFiles(os.Getpid())
	var peak int64
	sample := func() {
		if rss, err := srv.RSS(); err == nil {
			peak = max(peak, rss)
		}
	}
	sample()
	proxy.ResetAll()
	publish(10)
	sample()
	publish(10)
	waitCaughtUp(t, o, subs, 120*time.Second)
	sample()
	rss := peak
	cancel()
	wg.Wait()
	r := verify(t, o, false)
	t.Logf("%d clients; %d open files in the test process before the storm; server peak RSS %d MiB (bound %d MiB)",
		n, fds, rss>>20, stormRSSBound>>20)
	if r.Resumes < n {
		t.Errorf("%d resumes for %d clients: not every client went through the storm", r.Resumes, n)
	}
	if rss > stormRSSBound {
		t.Errorf("RSS %d MiB, want at most %d MiB", rss>>20, stormRSSBound>>20)
	}
}
