package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGracefulShutdown runs `herald serve` in-process and cancels its context as SIGTERM
// does: /readyz turns 503 while streams carry on (shutdown.delay), then each stream ends with
// jittered retry advice and the reason, and serve returns cleanly.
func TestGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--engine", "memory",
			"--shutdown-delay", "3s", "--shutdown-drain", "200ms", "--sse-retry", "1s"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatalf("serve did not announce its address: %v", <-done)
	}

	// serve listens before its log is ready (it may be an engine still starting): wait for
	// /readyz as a load balancer would, so the stream below is a real subscription.
	for deadline := time.Now().Add(10 * time.Second); ; {
		r, err := http.Get(base + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 10s of start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get(base + "/events?topic=t")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cancel() // SIGTERM

	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz unreachable during shutdown.delay: %v", err)
		}
		r.Body.Close()
		if r.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d after SIGTERM, want 503", r.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}

	body, _ := io.ReadAll(resp.Body) // ends when the drain closes the stream
	tail := string(body)
	if !strings.Contains(tail, ": closed: hub: shutting down") {
		t.Errorf("stream ended with %q, want the shutdown comment", tail)
	}
	retries := regexp.MustCompile(`retry: (\d+)`).FindAllStringSubmatch(tail, -1)
	if len(retries) < 2 {
		t.Fatalf("stream %q: want a retry advice at the start and one at the end", tail)
	}
	if last, _ := strconv.Atoi(retries[len(retries)-1][1]); last < 1000 || last >= 3000 {
		t.Errorf("final retry advice %dms, want between sse.retry (1000ms) and three times that", last)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
}
