package faults_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herald-push/herald/internal/engine/jetstream"
	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
)

// No goroutine of a server, proxy or client may outlive the tests. The SSE pool's hang-up
// watcher stops at its next epoll timeout (500ms) once idle: look again for 3 seconds.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		err := goleak.Find()
		for deadline := time.Now().Add(3 * time.Second); err != nil && time.Now().Before(deadline); err = goleak.Find() {
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// embedded opens the default engine (embedded JetStream) in a temporary directory.
func embedded(t testing.TB, dir string) hub.Log {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	l, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // registered first, so it runs after the server's cleanup
	return l
}

func proxyTo(t testing.TB, base string) (*faults.Proxy, string) {
	t.Helper()
	u, _ := url.Parse(base)
	p, err := faults.NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, "http://" + p.Addr()
}

// waitCaughtUp waits (bounded) until no subscriber lacks an acknowledged publish; verify then
// reports what is still missing.
func waitCaughtUp(t testing.TB, o *faults.Oracle, subs []*faults.Subscriber, within time.Duration) {
	o.WaitCaughtUp(subs, within)
}

// verify fails the test with every problem the oracle found; gaps fail it unless allowed.
func verify(t testing.TB, o *faults.Oracle, allowGaps bool) faults.Report {
	t.Helper()
	r := o.Check()
	t.Log(r)
	for _, p := range r.Problems {
		t.Error(p)
	}
	if !allowGaps {
		for _, g := range r.Gaps {
			t.Errorf("unexpected gap notice: %s", g)
		}
	}
	if r.Acked == 0 {
		t.Error("no publish was acknowledged: the test proved nothing")
	}
	return r
}

// waitNoSubscribers checks that every subscription ended once its client went away.
func waitNoSubscribers(t testing.TB, h *hub.Hub) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Subscribers() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.Subscribers(); n != 0 {
		t.Errorf("hub.Subscribers() = %d after every client left, want 0", n)
	}
}

// TestResetAtEveryByte cuts an SSE stream at every byte offset of its first frames (through
// the fault proxy, with a TCP reset) and resumes each time from the client's last id: whatever
// the cut, the client ends with every message once and in order.
//
// The server heartbeats every second: since the merge of the SSE writer pool, some streams
// whose client was reset are only found dead by a heartbeat write, not by the pool's hang-up
// watcher (see the report of issue 8); the heartbeat bounds how long such a subscription lingers.
func TestResetAtEveryByte(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Heartbeat: time.Second}})
	proxy, base := proxyTo(t, srv.URL)
	o := faults.NewOracle()
	pub := &faults.Publisher{Name: "p", Topic: "cut", Base: srv.URL, Key: heraldtest.Key, Oracle: o}
	ctx := context.Background()
	var start string
	for i := range 4 {
		if code, err := pub.Publish(ctx); code != 200 || err != nil {
			t.Fatalf("publish: %d %v", code, err)
		}
		if i == 0 {
			start = pub.LastID
		}
	}
	_, from, _ := hub.ParseID(start)
	// The stream of a new client from the start: retry advice, three frames, position.
	streamLen := int64(len("retry: 2000\n\n")) + 3*int64(len("id: XXXXXXXX-1\ndata: p:1\n\n")) + 40
	for cut := int64(0); cut < streamLen; cut++ {
		sub := o.Subscriber(fmt.Sprintf("cut@%d", cut), []string{"cut"}, from)
		c := faults.NewSSEClient(base, []string{"cut"}, sub, start)
		c.Retry = time.Millisecond
		proxy.ResetNextAfter(cut)
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		waitCaughtUp(t, o, []*faults.Subscriber{sub}, 10*time.Second)
		cancel()
		<-done
	}
	verify(t, o, false)
	waitNoSubscribers(t, srv.Hub)
}

// TestReconnectChaos runs publishers while subscribers on SSE, WebSocket and long polling are
// disconnected at random: TCP resets in the middle of a frame, whole-proxy cuts and client-side
// drops. Every subscriber must end with every acknowledged message, once, in order, with no gap
// notice.
func TestReconnectChaos(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Log: embedded(t, "")})
	proxy, base := proxyTo(t, srv.URL)
	o := faults.NewOracle()
	topics := []string{"chaos/a", "chaos/b", "chaos/c"}
	const nSubs, nPubs, perPub = 24, 3, 300

	start, from := startID(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	var clients []faults.Client
	var subs []*faults.Subscriber
	var wg sync.WaitGroup
	for i := range nSubs {
		mine := []string{topics[i%3], topics[(i+1)%3]}
		var c faults.Client
		var s *faults.Subscriber
		switch i % 3 {
		case 0:
			s = o.Subscriber(fmt.Sprintf("sse%d", i), mine, from)
			c = faults.NewSSEClient(base, mine, s, start)
		case 1:
			s = o.Subscriber(fmt.Sprintf("ws%d", i), mine, from)
			c = faults.NewWSClient(base, mine, s, start)
		default:
			s = o.Subscriber(fmt.Sprintf("poll%d", i), mine, from)
			c = faults.NewPollClient(base, mine, s, start)
		}
		clients, subs = append(clients, c), append(subs, s)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	waitReady(t, clients)

	var pubs sync.WaitGroup
	for i := range nPubs {
		p := &faults.Publisher{Name: fmt.Sprintf("p%d", i), Topic: topics[i], Base: srv.URL, Key: heraldtest.Key, Oracle: o}
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for range perPub {
				if code, err := p.Publish(context.Background()); code != 200 || err != nil {
					t.Errorf("publish: %d %v", code, err)
					return
				}
			}
		}()
	}
	published := make(chan struct{})
	go func() { pubs.Wait(); close(published) }()

	rng := rand.New(rand.NewPCG(1, 2))
	faultsRun := 0
	for loop := true; loop; {
		select {
		case <-published:
			loop = false
		case <-time.After(5 * time.Millisecond): // the pace of faults, not a synchronisation
			switch rng.IntN(10) {
			case 0:
				proxy.ResetAll()
			case 1, 2, 3:
				clients[rng.IntN(len(clients))].Drop()
			default:
				proxy.ResetMidStream(rng.IntN, rng.Int64N(400))
			}
			faultsRun++
		}
	}
	waitCaughtUp(t, o, subs, 30*time.Second)
	cancel()
	wg.Wait()
	r := verify(t, o, false)
	t.Logf("%d faults injected, %d proxy resets, %d connections", faultsRun, proxy.Resets.Load(), proxy.Accepted.Load())
	if r.Resumes < nSubs {
		t.Errorf("only %d resumes: the faults did not bite", r.Resumes)
	}
	waitNoSubscribers(t, srv.Hub)
}

func waitReady(t testing.TB, clients []faults.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients {
		for !c.Ready() {
			if time.Now().After(deadline) {
				t.Fatal("clients not connected within 30s")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func waitConnected(t testing.TB, clients []*faults.SSEClient) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients {
		for !c.Connected.Load() {
			if time.Now().After(deadline) {
				t.Fatal("clients not connected within 30s")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// startID publishes a marker and returns its id and seq. Subscribers start from it: a client
// with no id at all is a new subscriber, entitled only to what comes after it connected, and a
// reset before its first id would make that moment uncertain.
func startID(t testing.TB, srv *heraldtest.Server) (string, uint64) {
	t.Helper()
	id := srv.Publish(t, "start", "start")
	_, seq, err := hub.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, seq
}
