package presence_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/internal/engine/redis"
	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/presence"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestTwoNodes runs two trackers over two hubs sharing one Redis log: each answers for both,
// and forgets the other once it stops publishing.
func TestTwoNodes(t *testing.T) {
	addr := heraldtest.RequireService(t, "Redis", "127.0.0.1:6379")
	var b [6]byte
	rand.Read(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := "presencetest:" + hex.EncodeToString(b[:])
	l, err := redis.Open(ctx, redis.Config{URL: "redis://" + addr + "/0", Prefix: prefix, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // registered first, so it runs after the hubs stopped
		l.Close()
		rdb := goredis.NewClient(&goredis.Options{Addr: addr})
		defer rdb.Close()
		if keys, _ := rdb.Keys(context.Background(), "{"+prefix+"}:*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})

	type node struct {
		srv  *heraldtest.Server
		tr   *presence.Tracker
		stop context.CancelFunc
		done chan struct{}
	}
	start := func() *node {
		srv := heraldtest.NewServer(t, heraldtest.Options{Log: l})
		tr := presence.New(presence.Config{Hub: srv.Hub, Store: l, Interval: 20 * time.Millisecond, Logger: quiet})
		c, stop := context.WithCancel(ctx)
		n := &node{srv: srv, tr: tr, stop: stop, done: make(chan struct{})}
		go func() { tr.Run(c); close(n.done) }()
		t.Cleanup(func() { stop(); <-n.done })
		return n
	}
	a, b2 := start(), start()

	sub := func(h *hub.Hub, entry, identity string) {
		s, err := h.Subscribe(ctx, hub.Request{Filter: hub.MustFilter(entry), Identity: identity})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
	}
	sub(a.srv.Hub, "room/1", "alice")
	sub(a.srv.Hub, "room/*", "")
	sub(b2.srv.Hub, "room/1", "bob")
	sub(b2.srv.Hub, "room/1", "alice")

	want := presence.Result{Topic: "room/1", Subscribers: 4, Identities: []string{"alice", "bob"}, Nodes: 2}
	for _, n := range []*node{a, b2} {
		waitResult(t, n.tr, "room/1", want)
	}
	if got := a.tr.Lookup("room/*"); got.Subscribers != 1 {
		t.Errorf("Lookup(room/*) = %+v, want 1 subscriber (the exact pattern)", got)
	}

	b2.stop() // b stops publishing: a forgets it after the TTL (3 intervals)
	<-b2.done
	waitResult(t, a.tr, "room/1", presence.Result{Topic: "room/1", Subscribers: 2, Identities: []string{"alice"}, Nodes: 1})
}

func waitResult(t *testing.T, tr *presence.Tracker, topic string, want presence.Result) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := tr.Lookup(topic)
		if got.Subscribers == want.Subscribers && got.Nodes == want.Nodes && slices.Equal(got.Identities, want.Identities) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup(%s) = %+v, want %+v", topic, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
