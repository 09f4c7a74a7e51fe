package cluster

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// engineProc is an engine server process this test owns, so that it can kill and restart it.
type engineProc struct {
	t    *testing.T
	kind string // "redis" or "nats"
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func newEngine(t *testing.T, kind string) *engineProc {
	bin := map[string]string{"redis": "redis-server", "nats": "nats-server"}[kind]
	if _, err := exec.LookPath(bin); err != nil {
		t.Skipf("%s not installed: %v", bin, err)
	}
	e := &engineProc{t: t, kind: kind, addr: freeAddr(t)}
	t.Cleanup(e.stop)
	return e
}

// url is what herald's --engine takes.
func (e *engineProc) url() string {
	if e.kind == "redis" {
		return "redis://" + e.addr + "/0"
	}
	return "nats://" + e.addr
}

// start runs the server on e.addr storing in dir, and waits until it accepts connections.
func (e *engineProc) start(dir string) {
	e.t.Helper()
	host, port, _ := net.SplitHostPort(e.addr)
	if e.kind == "redis" {
		// appendfsync always: an acknowledged write survives kill -9, as Herald's docs advise.
		e.cmd = exec.Command("redis-server", "--bind", host, "--port", port, "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	} else {
		e.cmd = exec.Command("nats-server", "-a", host, "-p", port, "-js", "-sd", dir)
	}
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(e.cmd, e.done)
	waitFor(e.t, e.kind+" to listen on "+e.addr, func() bool {
		c, err := net.DialTimeout("tcp", e.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// kill stops the server with SIGKILL.
func (e *engineProc) kill() {
	if e.cmd != nil {
		e.cmd.Process.Signal(syscall.SIGKILL)
		<-e.done
		e.cmd = nil
	}
}

func (e *engineProc) stop() { e.kill() }

// publishOnce posts one message and returns the status and Retry-After header.
func publishOnce(n *node, topic, data string) (int, string) {
	req, _ := http.NewRequest("POST", n.URL+"/publish", strings.NewReader(`{"topic":"`+topic+`","data":"`+data+`","idempotencyKey":"k-`+data+`"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func TestEngineRestartRedis(t *testing.T) { testEngineRestart(t, "redis") }
func TestEngineRestartNATS(t *testing.T)  { testEngineRestart(t, "nats") }

// testEngineRestart kills the engine under a node with a subscriber, checks that publishes
// during the outage get 503 with Retry-After, restarts the engine on its data, and checks that
// the subscriber receives every acknowledged message with no gap.
func testEngineRestart(t *testing.T, kind string) {
	e := newEngine(t, kind)
	dir := t.TempDir()
	e.start(dir)
	n := startNode(t, e.url(), "127.0.0.1:0", true)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const total = 60
	s := &subscriber{nodes: []*node{n}, topic: "restart"}
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = s.run(ctx, total) })
	waitSubscribed(t, n, "restart", 1)
	for i := range total / 2 {
		if _, err := publish(ctx, []*node{n}, "restart", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}

	e.kill()
	code, retry := publishOnce(n, "restart", "during-outage")
	if code != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("publish during the outage: %d with Retry-After %q, want 503 with Retry-After", code, retry)
	}
	e.start(dir)
	for i := total / 2; i < total; i++ {
		if _, err := publish(ctx, []*node{n}, "restart", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
	checkSequence(t, "subscriber", s.got, total)
	if len(s.gaps) > 0 {
		t.Errorf("gap notices %v, want none: the engine kept its data", s.gaps)
	}
}

func TestEngineDataLossRedis(t *testing.T) { testEngineDataLoss(t, "redis") }
func TestEngineDataLossNATS(t *testing.T)  { testEngineDataLoss(t, "nats") }

// testEngineDataLoss restarts the engine empty: the node must notice, and a resuming
// subscriber must get a gap notice rather than silently miss or mix messages.
func testEngineDataLoss(t *testing.T, kind string) {
	e := newEngine(t, kind)
	e.start(t.TempDir())
	n := startNode(t, e.url(), "127.0.0.1:0", true)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := &subscriber{nodes: []*node{n}, topic: "lost", gapSeen: make(chan struct{})}
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = s.run(ctx, 20) })
	waitSubscribed(t, n, "lost", 1)
	for i := range 10 {
		if _, err := publish(ctx, []*node{n}, "lost", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	e.kill()
	e.start(t.TempDir()) // everything is gone

	select {
	case <-s.gapSeen:
	case <-ctx.Done():
		t.Fatalf("no gap notice after the engine lost its data; received %v", s.got)
	}
	for i := 10; i < 20; i++ {
		if _, err := publish(ctx, []*node{n}, "lost", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
	checkSequence(t, "subscriber", s.got, 20)
	if len(s.gaps) != 1 || !strings.Contains(s.gaps[0], `"epoch"`) {
		t.Errorf("gap notices %v, want one with reason epoch", s.gaps)
	}
}

func TestUnreachableAtStartRedis(t *testing.T) { testUnreachableAtStart(t, "redis") }
func TestUnreachableAtStartNATS(t *testing.T)  { testUnreachableAtStart(t, "nats") }

// testUnreachableAtStart starts a node before its engine: it must stay up, answer /healthz,
// say not ready, refuse publishes with 503, and become ready by itself once the engine is up.
func testUnreachableAtStart(t *testing.T, kind string) {
	e := newEngine(t, kind)
	addr := freeAddr(t)
	n := startNode(t, e.url(), addr, false)
	waitFor(t, "/healthz to answer", func() bool {
		code, _ := getJSON(n.URL+"/healthz", nil)
		return code == http.StatusOK
	})
	if code, _ := getJSON(n.URL+"/readyz", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without an engine = %d, want 503", code)
	}
	if code, retry := publishOnce(n, "early", "x"); code != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("publish without an engine = %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
	waitFor(t, "the node to log that it retries", func() bool {
		return strings.Contains(n.stderr.String(), "message log unreachable; retrying")
	})
	select {
	case <-n.exited:
		t.Fatalf("herald exited without an engine:\n%s", n.stderr.String())
	default:
	}

	e.start(t.TempDir())
	waitFor(t, "/readyz to turn true", func() bool {
		code, _ := getJSON(n.URL+"/readyz", nil)
		return code == http.StatusOK
	})
	if code, _ := publishOnce(n, "early", "y"); code != http.StatusOK {
		t.Errorf("publish once the engine is up = %d, want 200", code)
	}
}
