package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
)

// streams is how many SSE streams each test opens on one connection: far past the six
// HTTP/1.1 connections a browser allows per origin.
const streams = 40

// TestTLSHTTP2 serves HTTPS with a self-signed certificate: SSE streams and publishes speak
// HTTP/2, and every stream multiplexes on the client's one TCP connection.
func TestTLSHTTP2(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := heraldtest.SelfSigned(t, dir)
	base, pubKey := serveForTest(t, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("serve announced %s, want an https:// address", base)
	}
	dials := new(atomic.Int32)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext:       countingDial(dials),
	}
	t.Cleanup(tr.CloseIdleConnections)
	checkMultiplexed(t, &http.Client{Transport: tr}, base, pubKey, dials)
}

// TestH2C accepts HTTP/2 without TLS (prior knowledge), as a proxy speaking h2c to Herald does,
// and still serves HTTP/1.1 on the same port.
func TestH2C(t *testing.T) {
	base, pubKey := serveForTest(t, "--h2c")
	if !strings.HasPrefix(base, "http://") {
		t.Fatalf("serve announced %s, want an http:// address (h2c is cleartext)", base)
	}
	dials := new(atomic.Int32)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, DialContext: countingDial(dials)}
	t.Cleanup(tr.CloseIdleConnections)
	checkMultiplexed(t, &http.Client{Transport: tr}, base, pubKey, dials)

	resp, err := http.Get(base + "/healthz") // HTTP/1.1, no upgrade
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Errorf("HTTP/1.1 /healthz on the h2c port: %d over %s, want 200 over HTTP/1.1", resp.StatusCode, resp.Proto)
	}
}

// checkMultiplexed opens many SSE streams and publishes one message per stream with client,
// and checks that everything went over HTTP/2 on one connection and every stream got its message.
func checkMultiplexed(t *testing.T, client *http.Client, base, pubKey string, dials *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readers := make([]*bufio.Reader, streams)
	for i := range readers {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/events?topic=mux/%d", base, i), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("stream %d: %d over %s, want 200 over HTTP/2", i, resp.StatusCode, resp.Proto)
		}
		// Headers flushed means subscribed: publishing now cannot miss the stream.
		readers[i] = bufio.NewReader(resp.Body)
	}

	ids := make([]string, streams)
	for i := range ids {
		body := fmt.Sprintf(`{"topic":"mux/%d","data":"to stream %d"}`, i, i)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+pubKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		var answer struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("publish %d: %d over %s (%v), want 200 over HTTP/2", i, resp.StatusCode, resp.Proto, err)
		}
		ids[i] = answer.ID
	}

	for i, r := range readers {
		id, data := nextEvent(t, r)
		if id != ids[i] || data != fmt.Sprintf("to stream %d", i) {
			t.Errorf("stream %d got id %q data %q, want id %q data %q", i, id, data, ids[i], fmt.Sprintf("to stream %d", i))
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d streams and %d publishes made %d TCP connections, want 1 (HTTP/2 multiplexing)", streams, streams, n)
	}
}

// nextEvent reads an SSE stream up to its next event with data; id-only position lines,
// retry advice and comments are skipped.
func nextEvent(t *testing.T, r *bufio.Reader) (id, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before an event: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		case line == "" && data != "":
			return id, data
		}
	}
}

func countingDial(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}
}

// serveForTest runs `herald serve` in-process on a free port with extra flags and returns its
// announced base URL and publisher key; the test's cleanup shuts it down and waits.
func serveForTest(t *testing.T, flags ...string) (base, key string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--engine", "memory", "--shutdown-drain", "100ms"}, flags...)
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not return after shutdown")
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := regexp.MustCompile(`listening on (https?://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatal("serve did not announce its address")
	}
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	return base, strings.TrimSpace(string(b))
}

// selfSigned writes a self-signed P-256 certificate for 127.0.0.1 and localhost into dir and
// returns the paths of its PEM files and a pool that trusts it.
