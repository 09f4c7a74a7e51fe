package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/sse"
)

// These tests run the real binary, as a user would: built once, started as a process, talked
// to over HTTP, stopped with signals.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "herald")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	URL  string
	Key  string
	exit chan error

	mu  sync.Mutex
	out strings.Builder
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

var listening = regexp.MustCompile(`Herald is listening on (http://\S+)`)

// start runs `herald serve` on a free port with dataDir and waits until it listens.
func start(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)
	p := &proc{cmd: exec.Command(binary, args...), exit: make(chan error, 1)}
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exit <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exit })
	sc := bufio.NewScanner(stdout)
	found := make(chan string, 1)
	go func() {
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case p.URL = <-found:
	case err := <-p.exit:
		t.Fatalf("herald exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("herald did not listen within 30s")
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "publisher.key"))
	if err != nil {
		t.Fatal(err)
	}
	p.Key = strings.TrimSpace(string(key))
	return p
}

func (p *proc) publish(t *testing.T, topic, data string) (string, error) {
	body := fmt.Sprintf(`{"topic":%q,"data":%q}`, topic, data)
	req, _ := http.NewRequest("POST", p.URL+"/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r struct{ ID string }
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	json.Unmarshal(b, &r)
	return r.ID, nil
}

// history returns the ids of every message on topic, following the next cursor.
func (p *proc) history(t *testing.T, topic string) []string {
	t.Helper()
	var ids []string
	since := ""
	for {
		resp, err := http.Get(p.URL + "/history?limit=500&topic=" + topic + "&since=" + since)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []struct{ ID string }
			Next     string
		}
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		for _, m := range page.Messages {
			ids = append(ids, m.ID)
		}
		if len(page.Messages) < 500 {
			return ids
		}
		since = page.Next
	}
}

func subscribe(t *testing.T, url, lastID string) (*sse.Reader, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return sse.NewReader(resp.Body), resp
}

func TestServeTourAndGracefulRestart(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	for _, want := range []string{"dashboard", "curl -N", "Bearer " + p.Key, "publisher key generated"} {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(p.output(), want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // the announcement is a few lines after "listening"
		}
		if !strings.Contains(p.output(), want) {
			t.Errorf("start-up output lacks %q:\n%s", want, p.output())
		}
	}
	events, _ := subscribe(t, p.URL+"/events?topic=orders/42&topic=news/*", "")

	// herald publish finds the key in the data dir by itself.
	out, err := exec.Command(binary, "publish", "--url", p.URL, "--data-dir", dir, "orders/42", `{"status":"paid"}`, "--event", "order.updated").CombinedOutput()
	if err != nil {
		t.Fatalf("herald publish: %v\n%s", err, out)
	}
	first := strings.TrimSpace(string(out))
	ev, err := events.Next()
	if err != nil || ev.ID != first || ev.Type != "order.updated" || ev.Data != `{"status":"paid"}` {
		t.Fatalf("subscriber got %+v, %v; want %s order.updated", ev, err, first)
	}

	// SIGTERM: the stream ends with reconnect advice, the process exits cleanly.
	var comments []string
	events.OnComment = func(c string) { comments = append(comments, c) }
	p.cmd.Process.Signal(syscall.SIGTERM)
	for {
		if _, err := events.Next(); err != nil {
			break
		}
	}
	if err := <-p.exit; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	p.exit <- nil // for Cleanup
	if len(comments) == 0 || !strings.Contains(comments[len(comments)-1], "shutting down") {
		t.Errorf("stream ended with comments %q, want a shutdown reason", comments)
	}

	// Published while down? No: the acknowledged message survives the restart, and a client
	// resuming from the first id receives exactly what came after it.
	p2 := start(t, dir)
	second, err := p2.publish(t, "news/sport", "after restart")
	if err != nil {
		t.Fatal(err)
	}
	events2, _ := subscribe(t, p2.URL+"/events?topic=orders/42&topic=news/*", first)
	ev, err = events2.Next()
	if err != nil || ev.ID != second || ev.Data != "after restart" {
		t.Fatalf("after restart, resuming from %s: %+v, %v; want %s", first, ev, err, second)
	}
	if ids := p2.history(t, "orders/42"); len(ids) != 1 || ids[0] != first {
		t.Errorf("history after restart = %v, want [%s]", ids, first)
	}
}

// TestKill9KeepsAcknowledged kills the server with SIGKILL while publishers run: every publish
// that was acknowledged is in the log after the restart.
func TestKill9KeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	acked := make(chan string, 10000)
	stop := make(chan struct{})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := p.publish(t, "k9", fmt.Sprintf("%d-%d", w, i))
				if err != nil {
					return // the server died under us: this one was not acknowledged
				}
				acked <- id
			}
		}()
	}
	for len(acked) < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	close(stop)
	for range 4 {
		<-done
	}
	close(acked)

	p2 := start(t, dir)
	have := map[string]bool{}
	for _, id := range p2.history(t, "k9") {
		have[id] = true
	}
	n := 0
	for id := range acked {
		n++
		if !have[id] {
			t.Errorf("acknowledged %s is missing after kill -9", id)
		}
	}
	t.Logf("%d acknowledged publishes, all present after kill -9 and restart", n)
}
