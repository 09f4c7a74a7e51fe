// Package heraldtest starts real Herald servers for tests: a real hub over a real log, the real
// HTTP handlers on an httptest server, and clients that speak the wire protocols.
package heraldtest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/sse"
)

// Key is the publisher key of every test server.
const Key = "test-publisher-key"

// Server is a running Herald.
type Server struct {
	URL    string
	Hub    *hub.Hub
	Server *server.Server
	HTTP   *httptest.Server
}

// Options adjust a test server.
type Options struct {
	Log    hub.Log // nil means a fresh memory log
	Hub    hub.Config
	Server server.Config
}

// NewServer starts a server that lives until the test ends. Cleanup closes streams first (as
// a real shutdown does), then the HTTP server, then the hub.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Log == nil {
		opts.Log = memory.New(memory.Config{})
	}
	opts.Hub.Log = opts.Log
	h := hub.New(opts.Hub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	opts.Server.Hub = h
	opts.Server.PublishKeys = append(opts.Server.PublishKeys, Key)
	srv := server.New(opts.Server)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		h.Close()
		ts.Close()
		cancel()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !h.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("hub not ready after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return &Server{URL: ts.URL, Hub: h, Server: srv, HTTP: ts}
}

// Do sends a request and returns the status and body.
func Do(t testing.TB, method, url, contentType, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Auth is the header of an authorised publisher.
func Auth() http.Header { return http.Header{"Authorization": {"Bearer " + Key}} }

// Publish publishes data to topic as JSON and returns the id. The test fails on any error.
func (s *Server) Publish(t testing.TB, topic, data string) string {
	t.Helper()
	return s.PublishMsg(t, map[string]any{"topic": topic, "data": data})
}

// PublishMsg publishes one JSON message and returns its id.
func (s *Server) PublishMsg(t testing.TB, msg map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(msg)
	code, body := Do(t, "POST", s.URL+"/publish", "application/json", string(b), Auth())
	if code != http.StatusOK {
		t.Fatalf("publish %s: %d %s", b, code, body)
	}
	var r struct{ ID string }
	json.Unmarshal([]byte(body), &r)
	return r.ID
}

// WaitDelivered waits until the hub has fanned out the message with this id, so that what
// follows sees it as history rather than live.
func (s *Server) WaitDelivered(t testing.TB, id string) {
	t.Helper()
	_, seq, err := hub.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Hub.Head() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("message %s not delivered after 10s", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// Stream is an open SSE response with a parser.
type Stream struct {
	Resp   *http.Response
	Reader *sse.Reader
	cancel context.CancelFunc
	events chan result
}

type result struct {
	ev  sse.Event
	err error
}

// SSE opens path (e.g. "/events?topic=a") with an optional Last-Event-ID. It returns once the
// response headers arrived, which means the subscription is registered.
func (s *Server) SSE(t testing.TB, path, lastEventID string) *Stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	st := &Stream{Resp: resp, Reader: sse.NewReader(resp.Body), cancel: cancel, events: make(chan result, 1024)}
	go func() {
		defer close(st.events)
		for {
			ev, err := st.Reader.Next()
			st.events <- result{ev, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(st.Close)
	return st
}

// Next returns the next event, failing the test after 10 seconds.
func (st *Stream) Next(t testing.TB) sse.Event {
	t.Helper()
	select {
	case r, ok := <-st.events:
		if !ok {
			t.Fatal("stream already ended")
		}
		if r.err != nil {
			t.Fatalf("stream ended: %v", r.err)
		}
		return r.ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sse.Event{}
}

// End waits for the stream to end and returns the error that ended it (io.EOF when the
// server closed it).
func (st *Stream) End(t testing.TB) error {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r, ok := <-st.events:
			if !ok {
				return io.EOF
			}
			if r.err != nil {
				return r.err
			}
		case <-timeout:
			t.Fatal("stream did not end within 10s")
		}
	}
}

// Close ends the stream from the client side.
func (st *Stream) Close() {
	st.cancel()
	st.Resp.Body.Close()
}

// RequireService returns addr if something listens there. Otherwise it skips the test with a
// clear message, or fails it when CI=true: in CI every service must be present.
func RequireService(t testing.TB, name, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return addr
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI but %s is unreachable: %v", name, addr, err)
	}
	t.Skipf("%s not reachable at %s (%v); skipping (this fails under CI=true)", name, addr, err)
	return ""
}
