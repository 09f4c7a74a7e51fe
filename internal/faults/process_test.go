package faults_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/hub"
)

// These tests run the real herald binary, so that SIGKILL, restarts and the server's memory
// (RSS from /proc) are those a user sees.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-faults")
		if err != nil {
			buildErr = err
			return
		}
		binPath, buildErr = faults.Build("../..", dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// serve starts the binary on addr with dataDir; history is unlimited unless args say otherwise
// so that no gap is legitimate.
func serve(t testing.TB, addr, dataDir string, args ...string) *faults.Proc {
	t.Helper()
	args = append([]string{"--retention-per-topic", "0", "--sse-retry", "100ms"}, args...)
	p, err := faults.Start(binary(t), addr, dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		select {
		case <-p.Exit:
		default:
		}
	})
	return p
}

// restartScenario runs subscribers and publishers against the binary, calls restart in the
// middle (which stops the server one way or another and starts it again on the same address
// and data directory) and checks that every subscriber connected throughout ends with every
// acknowledged message.
func restartScenario(t *testing.T, restart func(p *faults.Proc) *faults.Proc) {
	addr, err := faults.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := serve(t, addr, dir)
	base := "http://" + addr
	o := faults.NewOracle()
	marker := &faults.Publisher{Name: "start", Topic: "start", Base: base, Key: p.Key, Oracle: o}
	if code, err := marker.Publish(context.Background()); code != 200 {
		t.Fatalf("publish: %d %v", code, err)
	}
	_, from, _ := hub.ParseID(marker.LastID)

	topics := []string{"r/a", "r/b"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*faults.SSEClient
	var subs []*faults.Subscriber
	for i := range 8 {
		s := o.Subscriber(fmt.Sprintf("sub%d", i), topics, from)
		c := faults.NewSSEClient(base, topics, s, marker.LastID)
		c.Retry = 50 * time.Millisecond
		clients, subs = append(clients, c), append(subs, s)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	waitConnected(t, clients)

	stop := make(chan struct{})
	var acked atomic.Int64
	var pubs sync.WaitGroup
	for i, topic := range topics {
		pub := &faults.Publisher{Name: fmt.Sprintf("p%d", i), Topic: topic, Base: base, Key: p.Key, Oracle: o}
		pubs.Add(1)
		go func() { defer pubs.Done(); pub.Loop(stop, &acked) }()
	}
	waitFor(t, func() bool { return acked.Load() >= 300 }, "300 acknowledged publishes")
	p = restart(p)
	before := acked.Load()
	waitFor(t, func() bool { return acked.Load() >= before+300 }, "300 more acknowledged publishes after the restart")
	close(stop)
	pubs.Wait()
	waitCaughtUp(t, o, subs, 60*time.Second)
	cancel()
	wg.Wait()
	r := verify(t, o, false)
	if r.Resumes < len(subs) {
		t.Errorf("%d resumes for %d subscribers: the restart did not reach them", r.Resumes, len(subs))
	}
}

func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 60s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKill9WithSubscribers kills the server with SIGKILL while publishers and subscribers run,
// restarts it on the same embedded store, and checks that subscribers that stayed (reconnecting)
// throughout end with every acknowledged publish, once and in order.
func TestKill9WithSubscribers(t *testing.T) {
	restartScenario(t, func(p *faults.Proc) *faults.Proc {
		p.Kill()
		return serve(t, listenAddr(p), dataDir(p))
	})
}

// TestGracefulRestartWithSubscribers does the same with SIGTERM: streams end with reconnect
// advice, the process exits cleanly, clients resume from their last ids.
func TestGracefulRestartWithSubscribers(t *testing.T) {
	restartScenario(t, func(p *faults.Proc) *faults.Proc {
		if err := p.Term(); err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, p.Err)
		}
		return serve(t, listenAddr(p), dataDir(p))
	})
}

func listenAddr(p *faults.Proc) string { return p.URL[len("http://"):] }

func dataDir(p *faults.Proc) string {
	for i, a := range p.Cmd.Args {
		if a == "--data-dir" {
			return p.Cmd.Args[i+1]
		}
	}
	panic("no --data-dir")
}
