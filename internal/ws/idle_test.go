package ws_test

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/netpoll"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/ws"
)

// Idle connections wait in the poller, not in a goroutine each: opening 200 connections that
// each hold a subscription adds at most a small constant number of goroutines.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if !netpoll.Supported {
		t.Skip("no poller on this platform: a reader goroutine per connection")
	}
	h := &ws.Handler{}
	srv := newServer(t, h)
	warm := dial(t, srv, nil, false) // the poller's own goroutine and the server's
	warm.subscribe(t, []string{"idle"}, "")
	before := settledGoroutines()

	const n = 200
	var conns []*rawConn
	for range n {
		r, _ := rawDial(t, srv, "")
		r.write(rawFrame{fin: true, op: opText, payload: []byte(`{"op":"subscribe","topics":["idle"]}`)}, false)
		if got := r.text(); !strings.Contains(got, `"type":"subscribed"`) {
			t.Fatalf("got %s, want subscribed", got)
		}
		conns = append(conns, r)
	}
	// Each raw client runs in this goroutine; the server side is what is counted.
	after := settledGoroutines()
	t.Logf("goroutines: %d before, %d after %d idle connections", before, after, n)
	if after-before > 10 {
		t.Errorf("%d idle connections added %d goroutines (%d -> %d), want at most 10", n, after-before, before, after)
	}
	// And they are all alive: a message reaches every one.
	id := srv.Publish(t, "idle", "hello")
	for i, r := range conns {
		if got := r.text(); !strings.Contains(got, id) {
			t.Fatalf("connection %d got %s, want message %s", i, got, id)
		}
	}
	if h.Conns() != n+1 {
		t.Errorf("%d connections open, want %d", h.Conns(), n+1)
	}
}

// settledGoroutines counts goroutines once the number has stopped falling (writers and readers
// that have just finished their work are leaving).
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// Two messages in one TCP segment are both handled: the second is already in the reader's
// buffer, where the poller cannot see it, so the reader must not go back to waiting first.
func TestTwoMessagesInOneSegment(t *testing.T) {
	srv := newServer(t, nil)
	r, _ := rawDial(t, srv, "")
	r.write(rawFrame{fin: true, op: opText, payload: []byte(`{"op":"ping","ref":"first"}`)}, false) // the connection is idle after this
	if got := r.text(); !strings.Contains(got, `"first"`) {
		t.Fatalf("got %s, want the first pong", got)
	}
	var b []byte
	b = append(b, rawFrame{fin: true, op: opText, payload: []byte(`{"op":"ping","ref":"a"}`)}.encode(false)...)
	b = append(b, rawFrame{fin: true, op: opText, payload: []byte(`{"op":"ping","ref":"b"}`)}.encode(false)...)
	if _, err := r.c.Write(b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"a"`, `"b"`} {
		if got := r.text(); !strings.Contains(got, want) {
			t.Fatalf("got %s, want a pong with ref %s", got, want)
		}
	}
}

// A frame split across two TCP writes, with a pause between them, is read whole: the reader
// woken by the first part waits for the rest.
func TestFrameSplitAcrossWrites(t *testing.T) {
	srv := newServer(t, nil)
	r, _ := rawDial(t, srv, "")
	f := rawFrame{fin: true, op: opText, payload: []byte(`{"op":"ping","ref":"split"}`)}.encode(false)
	for _, cut := range []int{1, 4, len(f) - 3} { // in the header, in the mask key, in the payload
		r.c.Write(f[:cut])
		time.Sleep(50 * time.Millisecond)
		r.c.Write(f[cut:])
		if got := r.text(); !strings.Contains(got, `"split"`) {
			t.Fatalf("cut at %d: got %s, want a pong", cut, got)
		}
	}
}

// A client's ping on an idle connection is answered with a pong carrying its payload.
func TestPingWhileIdle(t *testing.T) {
	srv := newServer(t, nil)
	r, _ := rawDial(t, srv, "")
	time.Sleep(50 * time.Millisecond) // idle: waiting in the poller
	r.write(rawFrame{fin: true, op: opPing, payload: []byte("are you there")}, false)
	for {
		f, err := r.read()
		if err != nil {
			t.Fatalf("no pong: %v", err)
		}
		if f.op == opPong {
			if !bytes.Equal(f.payload, []byte("are you there")) {
				t.Errorf("pong payload %q, want the ping's", f.payload)
			}
			return
		}
	}
}

// Without a poller (other systems) a goroutine per connection reads: the same frames get the
// same answers, and the close handshake completes.
func TestBlockingReads(t *testing.T) {
	ws.UseBlockingReads(t)
	srv := newServer(t, nil)
	r, _ := rawDial(t, srv, "")
	var b []byte
	b = append(b, rawFrame{op: opText, payload: ping[:5]}.encode(false)...)
	b = append(b, rawFrame{fin: true, op: opPing, payload: []byte("p")}.encode(false)...)
	b = append(b, rawFrame{fin: true, op: opCont, payload: ping[5:]}.encode(false)...)
	r.c.Write(b)
	if got := r.text(); !strings.Contains(got, `"type":"pong"`) {
		t.Fatalf("got %s, want a pong", got)
	}
	srv.Server.CloseWebSockets()
	if got := r.closeCode(); got != ws.CloseGoingAway {
		t.Fatalf("close %d, want %d", got, ws.CloseGoingAway)
	}
	r.write(rawFrame{fin: true, op: opClose, payload: closePayload(ws.CloseGoingAway, "")}, false)
	if _, err := r.read(); err == nil {
		t.Error("the connection is still open after the close handshake")
	}
}

// A control frame on its own completes a read: the connection then waits for the next frame
// as long as it likes. (A reader that went on waiting for a data message under the frame
// deadline would close every client that answers keepalive pings.)
func TestControlFrameThenIdle(t *testing.T) {
	for _, op := range []byte{opPing, opPong} {
		srv := newServer(t, &ws.Handler{WriteTimeout: 200 * time.Millisecond})
		r, _ := rawDial(t, srv, "")
		r.write(rawFrame{fin: true, op: op, payload: []byte("x")}, false)
		time.Sleep(600 * time.Millisecond) // three frame deadlines
		r.write(rawFrame{fin: true, op: opText, payload: ping}, false)
		if got := r.text(); !strings.Contains(got, `"type":"pong"`) {
			t.Fatalf("op %#x then idle: got %s, want a pong", op, got)
		}
	}
}

// A client that answers keepalive pings stays connected across many of them.
func TestKeepaliveAnsweredStaysOpen(t *testing.T) {
	h := &ws.Handler{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	srv := newServer(t, h)
	cl := dial(t, srv, nil, false) // its reader answers pings
	time.Sleep(time.Second)        // about 20 pings, five frame deadlines
	cl.send(t, `{"op":"ping","ref":"still"}`)
	if f := cl.expect(t, "pong"); f.Ref != "still" {
		t.Errorf("got %s, want the pong for ref still", f.raw)
	}
	if h.Conns() != 1 {
		t.Errorf("%d connections open, want 1", h.Conns())
	}
}

// A connection counts against the per-address limit for as long as it is open, although its
// handler has returned (it waits in the poller): the server moves the slot to the connection.
func TestConnectionLimitHeldWhileOpen(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{WS: &ws.Handler{}, Limits: server.Limits{ConnsPerIP: 2}}})
	a := dial(t, srv, nil, false)
	dial(t, srv, nil, false)
	time.Sleep(50 * time.Millisecond) // both handlers have long returned
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, resp, err := websocket.Dial(ctx, wsURL(srv), nil); err == nil {
		c.CloseNow()
		t.Fatal("a third connection from one address was accepted, want refused")
	} else if resp == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("third connection: %v %v, want an HTTP error", resp, err)
	}
	a.c.Close(websocket.StatusNormalClosure, "")
	for {
		c, _, err := websocket.Dial(ctx, wsURL(srv), nil)
		if err == nil {
			c.CloseNow()
			return // the closed connection's slot was freed
		}
		if ctx.Err() != nil {
			t.Fatal("the slot of a closed connection was not freed within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The handshake slot is freed at the upgrade, not when the connection ends: open connections
// do not hold it.
func TestHandshakeSlotFreedAtUpgrade(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{WS: &ws.Handler{}, Limits: server.Limits{Handshakes: 1, HandshakeWait: 100 * time.Millisecond}}})
	for range 20 {
		cl := dial(t, srv, nil, false) // kept open
		cl.send(t, `{"op":"ping"}`)
		cl.expect(t, "pong")
	}
}
