package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/internal/heraldtest"
)

const key = "cluster-test-key"

var bin string // the herald binary, built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-cluster-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/herald")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building herald:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a process's stderr for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is a running herald process.
type node struct {
	URL    string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
}

// startNode runs `herald serve` on engine at addr ("127.0.0.1:0" for any port) and returns
// once it listens. With wait false it returns at once (the engine may be unreachable) and the
// caller polls addr.
func startNode(t *testing.T, engine, addr string, wait bool) *node {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", t.TempDir(), "--engine", engine,
		"--publish-keys", key, "--sse-retry", "100ms", "--log-level", "debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", n.URL, tail(n.stderr.String(), 3000))
		}
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Herald is listening on "); ok {
				listening <- u
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	if !wait {
		n.URL = "http://" + addr
		return n
	}
	select {
	case u := <-listening:
		n.URL = strings.Replace(u, "localhost", "127.0.0.1", 1)
	case <-n.exited:
		t.Fatalf("herald exited before listening:\n%s", n.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("herald not listening after 30s:\n%s", n.stderr.String())
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL: no drain, no goodbye to clients.
func (n *node) kill() {
	n.cmd.Process.Kill()
	<-n.exited
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomName(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// getJSON fetches url into v and returns the status.
func getJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode, nil
}

// waitFor polls cond every 20ms until it holds or 30s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Engines shared by the nodes of a test, each under a fresh prefix, removed afterwards.

func sharedNATS(t *testing.T) string {
	addr := heraldtest.RequireService(t, "NATS", "127.0.0.1:4222")
	stream := randomName("HT_")
	t.Cleanup(func() { deleteStreams(addr, stream) })
	return "nats://" + addr + "?prefix=" + stream
}

func deleteStreams(addr, stream string) {
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return
	}
	for _, s := range []string{stream, stream + "_RETAIN", "KV_" + stream + "_PRESENCE"} {
		js.DeleteStream(s)
	}
}

func sharedRedis(t *testing.T) string {
	addr := heraldtest.RequireService(t, "Redis", "127.0.0.1:6379")
	prefix := randomName("ht")
	t.Cleanup(func() {
		rdb := goredis.NewClient(&goredis.Options{Addr: addr})
		defer rdb.Close()
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, "{"+prefix+"}:*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return "redis://" + addr + "/0?prefix=" + prefix
}

// waitSubscribed waits until n's presence counts want subscribers on topic: they are
// registered, and everything published from now on reaches them.
func waitSubscribed(t *testing.T, n *node, topic string, want int) {
	t.Helper()
	last := -1
	defer func() {
		if t.Failed() {
			t.Logf("presence of %s on %s: last count %d, want %d", topic, n.URL, last, want)
		}
	}()
	waitFor(t, fmt.Sprintf("%d subscribers to register on %s", want, n.URL), func() bool {
		var p struct{ Subscribers int }
		code, err := getJSON(n.URL+"/presence?topic="+topic, &p)
		last = p.Subscribers
		return err == nil && code == http.StatusOK && p.Subscribers == want
	})
}
