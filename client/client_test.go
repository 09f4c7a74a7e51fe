package client_test

import (
	"context"
	"errors"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/client"
	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
)

const testKey = "hk_test_key_0123456789"

// herald is a real server: the hub over the memory engine, behind httptest.
type herald struct {
	*httptest.Server
	hub *hub.Hub
}

// startHerald starts a server; wrap, if not nil, wraps its handler. Cleanup ends streams
// before closing the server and stops the hub.
func startHerald(t testing.TB, wrap func(http.Handler) http.Handler) *herald {
	t.Helper()
	h := hub.New(hub.Config{Log: memory.New(memory.Config{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	for !h.Ready() {
		select {
		case <-done:
			t.Fatal("hub stopped before it was ready")
		case <-time.After(time.Millisecond):
		}
	}
	var handler http.Handler = server.New(server.Config{Hub: h, PublishKeys: []string{testKey}, Retry: 20 * time.Millisecond})
	if wrap != nil {
		handler = wrap(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
		cancel()
		<-done
	})
	return &herald{Server: srv, hub: h}
}

func newClient(srv *herald) *client.Client {
	return client.New(srv.URL, client.Options{Key: testKey, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
}

// reader pulls from a Subscribe sequence one value at a time.
type reader struct {
	next func() (client.Message, error, bool)
	stop func()
}

func subscribe(t *testing.T, c *client.Client, patterns []string, lastID string) *reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	next, stop := iter.Pull2(c.Subscribe(ctx, patterns, lastID))
	t.Cleanup(func() { cancel(); stop() })
	return &reader{next: next, stop: stop}
}

func (r *reader) message(t *testing.T) client.Message {
	t.Helper()
	m, err, ok := r.next()
	if !ok {
		t.Fatal("subscription ended")
	}
	if err != nil {
		t.Fatalf("got error %v, want a message", err)
	}
	return m
}

func TestPublishSubscribe(t *testing.T) {
	srv := startHerald(t, nil)
	c := newClient(srv)
	ctx := context.Background()

	// A retained value is the first thing a new subscriber gets: once it arrives, the
	// subscription is live, with no sleep.
	id0, err := c.Publish(ctx, client.Message{Topic: "orders/42", Data: "state", Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, c, []string{"orders/*", "news"}, "")
	if m := sub.message(t); m.ID != id0 || m.Data != "state" {
		t.Fatalf("first message = %+v, want the retained value %s", m, id0)
	}

	id1, err := c.Publish(ctx, client.Message{Topic: "orders/7", Event: "order.updated", Data: `{"status":"paid"}`})
	if err != nil {
		t.Fatal(err)
	}
	c.Publish(ctx, client.Message{Topic: "elsewhere", Data: "not for us"})
	id2, err := c.Publish(ctx, client.Message{Topics: []string{"news", "sport"}, Data: "line one\nline two"})
	if err != nil {
		t.Fatal(err)
	}

	m := sub.message(t)
	if m.ID != id1 || m.Topic != "orders/7" || m.Event != "order.updated" || m.Data != `{"status":"paid"}` || m.Time.IsZero() {
		t.Errorf("got %+v, want id %s on orders/7, event order.updated, JSON data and a time", m, id1)
	}
	m = sub.message(t)
	if m.ID != id2 || m.Topic != "news" || len(m.Topics) != 2 || m.Data != "line one\nline two" {
		t.Errorf("got %+v, want id %s on news and sport with two lines", m, id2)
	}
}

func TestSubscribeResumesAfterDisconnect(t *testing.T) {
	srv := startHerald(t, nil)
	c := newClient(srv)
	ctx := context.Background()
	first, _ := c.Publish(ctx, client.Message{Topic: "t", Data: "0"})

	sub := subscribe(t, c, []string{"t"}, first)
	var want []string
	for round := 0; round < 3; round++ {
		for i := 0; i < 5; i++ {
			id, err := c.Publish(ctx, client.Message{Topic: "t", Data: "x"})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
		for _, id := range want[round*5:] {
			if got := sub.message(t).ID; got != id {
				t.Fatalf("round %d: got id %s, want %s", round, got, id)
			}
		}
		// Drop every connection: the client reconnects with Last-Event-ID and the
		// messages published meanwhile are replayed once.
		srv.CloseClientConnections()
	}
}

func TestSubscribeGap(t *testing.T) {
	srv := startHerald(t, nil)
	c := newClient(srv)
	sub := subscribe(t, c, []string{"t"}, "m0ld-12")
	_, err, ok := sub.next()
	var gap *client.Gap
	if !ok || !errors.As(err, &gap) || gap.Reason != "epoch" || gap.LastEventID != "m0ld-12" {
		t.Fatalf("got %v, want a gap notice with reason epoch for m0ld-12", err)
	}
	// The sequence goes on after a gap.
	id, _ := c.Publish(context.Background(), client.Message{Topic: "t", Data: "after"})
	if m := sub.message(t); m.ID != id {
		t.Errorf("after the gap got %s, want %s", m.ID, id)
	}
}

func TestSubscribeStopsOnForbidden(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":"forbidden","message":"not your topic"}`)
	}))
	defer srv.Close()
	c := client.New(srv.URL, client.Options{})
	var errs []error
	for _, err := range c.Subscribe(context.Background(), []string{"t"}, "") {
		errs = append(errs, err)
	}
	var he *client.Error
	if len(errs) != 1 || !errors.As(errs[0], &he) || he.Status != 403 || he.Message != "not your topic" {
		t.Errorf("yielded %v, want one *Error 403 with the server's message", errs)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d requests, want 1: a 403 is final", n)
	}
}

func TestSubscribeReopensSilentStream(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		if n == 1 {
			w.(http.Flusher).Flush()
			<-r.Context().Done() // silent: no heartbeat
			return
		}
		io.WriteString(w, "id: e-1\ndata: {\"id\":\"e-1\",\"topic\":\"t\",\"data\":\"hi\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	c := client.New(srv.URL, client.Options{IdleTimeout: 50 * time.Millisecond, MinBackoff: time.Millisecond})
	sub := subscribe(t, c, []string{"t"}, "")
	if m := sub.message(t); m.Data != "hi" || calls.Load() != 2 {
		t.Errorf("got %+v after %d requests, want data hi after 2", m, calls.Load())
	}
	sub.stop()
}

func TestPublishBatch(t *testing.T) {
	srv := startHerald(t, nil)
	c := newClient(srv)
	ids, err := c.PublishBatch(context.Background(), []client.Message{
		{Topic: "a", Data: "1"}, {Topic: "b", Data: "2", Event: "e"}, {Topics: []string{"a", "b"}, Data: "3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("ids = %v, want three distinct ids", ids)
	}
	resp, err := http.Get(srv.URL + "/history?topic=a&topic=b")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for i, id := range ids {
		if !strings.Contains(string(body), id) {
			t.Errorf("history lacks message %d (%s): %s", i, id, body)
		}
	}
}

func TestPublishErrors(t *testing.T) {
	srv := startHerald(t, nil)
	ctx := context.Background()
	tests := []struct {
		name   string
		key    string
		msg    client.Message
		status int
		code   string
	}{
		{"unknown key", "wrong", client.Message{Topic: "t", Data: "x"}, 401, "unauthorized"},
		{"bad topic", testKey, client.Message{Topic: "bad topic", Data: "x"}, 400, "bad_topic"},
		{"bad event", testKey, client.Message{Topic: "t", Event: "a b"}, 400, "bad_event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client.New(srv.URL, client.Options{Key: tt.key})
			_, err := c.Publish(ctx, tt.msg)
			var he *client.Error
			if !errors.As(err, &he) || he.Status != tt.status || he.Code != tt.code || he.Message == "" {
				t.Errorf("err = %v, want *Error %d %s with the server's message", err, tt.status, tt.code)
			}
		})
	}
	if _, err := client.New(srv.URL, client.Options{}).Publish(ctx, client.Message{Data: "x"}); err == nil {
		t.Error("a message without a topic was accepted")
	}
}

// TestPublishRetryIsIdempotent loses the first answer after the server stored the message:
// the retry carries the same idempotency key and gets the same id, and the message is stored once.
func TestPublishRetryIsIdempotent(t *testing.T) {
	var calls atomic.Int32
	srv := startHerald(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/publish" && calls.Add(1) == 1 {
				next.ServeHTTP(httptest.NewRecorder(), r) // stored, answer lost
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := newClient(srv)
	ctx := context.Background()
	id, err := c.Publish(ctx, client.Message{Topic: "t", Data: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d publish requests, want 2", calls.Load())
	}
	next, _ := c.Publish(ctx, client.Message{Topic: "t", Data: "next"})
	resp, _ := http.Get(srv.URL + "/history?topic=t")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(body), `"once"`); n != 1 || !strings.Contains(string(body), id) || !strings.Contains(string(body), next) {
		t.Errorf("history has %d copies of the message, want 1 with id %s: %s", n, id, body)
	}
}
