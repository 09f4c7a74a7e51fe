package cluster

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/hub"
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
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", bin, err)
		}
		t.Skipf("%s not installed: %v; skipping (this fails under CI=true)", bin, err)
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

// testEngineRestart kills the engine under two nodes while publishers run and subscribers on
// SSE, WebSocket and long polling listen, checks that publishes during the outage get 503 with
// Retry-After, and restarts the engine on its data. Under the faults oracle, no publish was
// acknowledged and then lost (a 503 or an unanswered publish may or may not be delivered),
// and every subscriber ends with everything acknowledged, in order, with no gap notice.
func testEngineRestart(t *testing.T, kind string) {
	e := newEngine(t, kind)
	dir := t.TempDir()
	e.start(dir)
	nodes := []*node{startNode(t, e.url(), "127.0.0.1:0", true), startNode(t, e.url(), "127.0.0.1:0", true)}
	r := startRun(t, nodes)
	r.waitAcked(100)

	e.kill()
	code, retry := publishOnce(nodes[0], "probe", "during-outage") // a topic nobody subscribes to
	if code != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("publish during the outage: %d with Retry-After %q, want 503 with Retry-After", code, retry)
	}
	waitFor(t, "the publishers to be refused during the outage", func() bool {
		_, refused, uncertain := r.o.Counts()
		return refused+uncertain > 0
	})
	e.start(dir)
	r.waitAcked(100)
	rep := r.finish()
	for _, g := range rep.Gaps {
		t.Errorf("unexpected gap notice: %s (the engine kept its data)", g)
	}
	t.Logf("answers 200: %d, 503: %d", r.statuses(http.StatusOK), r.statuses(http.StatusServiceUnavailable))
}

func TestEngineDataLossRedis(t *testing.T) { testEngineDataLoss(t, "redis") }
func TestEngineDataLossNATS(t *testing.T)  { testEngineDataLoss(t, "nats") }

// testEngineDataLoss restarts the engine empty under two nodes while publishers run and
// subscribers on SSE, WebSocket and long polling listen. The nodes must notice and start a new
// epoch; under the faults oracle, what a subscriber did not receive is covered by a gap notice,
// never silent, and it receives everything acknowledged in the new epoch after the notice.
// Every subscriber must be told (reason epoch): its position is in a log that no longer exists.
func testEngineDataLoss(t *testing.T, kind string) {
	e := newEngine(t, kind)
	e.start(t.TempDir())
	nodes := []*node{startNode(t, e.url(), "127.0.0.1:0", true), startNode(t, e.url(), "127.0.0.1:0", true)}
	r := startRun(t, nodes)
	r.waitAcked(60)
	e.kill()
	e.start(t.TempDir()) // everything is gone
	r.waitAcked(60)
	rep := r.finish()
	told := map[string]bool{}
	for _, g := range rep.Gaps {
		name, reason, _ := strings.Cut(g, ": ")
		if !strings.HasPrefix(reason, hub.GapEpoch+":") {
			t.Errorf("gap notice %q, want reason %s", g, hub.GapEpoch)
		}
		told[name] = true
	}
	if len(told) != len(r.subs) {
		t.Errorf("%d of %d subscribers got a gap notice (%q), want all", len(told), len(r.subs), rep.Gaps)
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
