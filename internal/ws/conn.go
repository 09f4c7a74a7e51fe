package ws

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-push/herald/internal/hub"
)

// closeError ends a connection with a close frame. It is also what OnEnd is told.
type closeError struct {
	code   int
	reason string
	peer   bool  // echoing the peer's close: nothing more to read, close at once
	cause  error // what OnEnd is told besides the code, if anything
}

func (e *closeError) Error() string { return fmt.Sprintf("ws: close %d: %s", e.code, e.reason) }
func (e *closeError) Unwrap() error { return e.cause }

// CloseCode returns the close code an error returned for a connection carries, or 0.
func CloseCode(err error) int {
	var ce *closeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 0
}

var (
	errDeadPeer = errors.New("ws: peer did not answer a ping")
	errEnding   = errors.New("ws: connection ending") // the reader's error once the writer ends it
)

// maxBadInARow bad frames in a row close the connection with 1008: a client that only sends
// garbage is broken or hostile, and error frames are not free.
const maxBadInARow = 20

// Write buffer sizes. A wake-up of the writer appends every pending frame into one buffer and
// writes it with one system call; past flushAt it writes what it has and goes on. The buffer
// goes back to a pool when the writer stops, so an idle connection holds none, and one grown
// by a large write is dropped rather than pooled.
const (
	flushAt  = 64 << 10
	keepUpTo = 128 << 10
)

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// closeTimeout bounds the close handshake: how long a close frame may take to write, and how
// long we wait for the peer's close before closing the TCP connection ourselves.
const closeTimeout = 5 * time.Second

// command is a subscription change, decided by the reader and carried out by the writer,
// which owns the subscriptions.
type command struct {
	unsubscribe bool
	ref         json.RawMessage
	filter      *hub.Filter
	entries     []string
	since       string
}

// conn is one WebSocket connection. Reading is done by a goroutine that exists only while
// frames are arriving (see read.go): an idle connection waits in the poller, not in a Read.
// The reader publishes and hands everything else to the writer through out and cmds. The
// writer owns subs and every write; it is a goroutine started when there is something to do
// (a frame to send, a command, a subscription with messages waiting, the end of the
// connection) and gone when there is nothing left. So an idle connection holds no goroutine.
type conn struct {
	h        *Handler
	nc       net.Conn
	br       *bufio.Reader // small; the reader's, under readMu
	p        Principal
	compress bool // permessage-deflate was negotiated
	ctx      context.Context
	cancel   context.CancelCauseFunc
	release  func() // Handler.Detach's; nil if none

	cmds  chan command  // capacity 1; the reader then waits on taken
	taken chan struct{} // capacity 1: the writer has taken a command
	out   chan []byte   // encoded frames (replies, pongs, pings) from the reader and the pinger
	wake  atomic.Bool   // some subscription has something to take

	mu      sync.Mutex
	running bool          // a writer goroutine is active
	why     error         // why the connection ends; set once, by end
	closed  bool          // the writer has closed the connection
	done    chan struct{} // closed by end

	// Keepalive: the timer alternates between sending a ping and checking for its pong.
	ka       *time.Timer
	pingSent int64        // unix ns of the ping awaiting its pong, 0 if none; the timer's alone
	pongAt   atomic.Int64 // unix ns of the last pong
	expiry   *time.Timer  // nil when the credentials do not expire

	readMu sync.Mutex // held by whoever reads: a reader goroutine, or the writer at the close
	rd     readState  // under readMu

	// The writer's alone.
	subs    []*subscription
	live    []pending // reused between drains
	buf     *[]byte   // pending frames; nil while the writer is stopped
	wfailed bool      // a write failed: the stream may end mid-frame, send no close frame
}

type pending struct {
	m *hub.Message
	s *subscription
}

// subscription is one subscribe op. It records what it has delivered, so that a message
// matching several subscriptions of the connection is sent once.
type subscription struct {
	ref json.RawMessage
	sub *hub.Subscription
	// The subscription has delivered every matching message with start < seq <= sent (or
	// skipped it because another one had), plus the retained values in retained.
	start      uint64
	startKnown bool
	sent       uint64
	retained   map[uint64]bool
}

func (s *subscription) delivered(m *hub.Message) bool {
	if !s.sub.Filter().MatchAny(m.Topics) {
		return false
	}
	return s.retained[m.Seq] || (s.startKnown && s.start < m.Seq && m.Seq <= s.sent)
}

func newConn(h *Handler, nc net.Conn, br *bufio.Reader, p Principal, compress bool, parent context.Context) *conn {
	// The request's context is not for use after a hijack; keep its values only.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	c := &conn{
		h: h, nc: nc, br: br, p: p, compress: compress, ctx: ctx, cancel: cancel,
		cmds: make(chan command, 1), taken: make(chan struct{}, 1), out: make(chan []byte, 16),
		done: make(chan struct{}),
	}
	c.rd.frames = newBucket(h.FrameRate, int(2*h.FrameRate))
	c.rd.pubs = newBucket(h.PublishRate, h.PublishBurst)
	return c
}

// start begins serving an accepted connection: pings, the expiry of its credentials, and
// reading. It returns at once.
func (c *conn) start() {
	c.pongAt.Store(time.Now().UnixNano())
	c.mu.Lock() // the writer may already be running (and finishing)
	if !c.closed {
		c.ka = time.AfterFunc(c.h.PingInterval, c.tick)
		if t := c.p.Expires(); !t.IsZero() {
			c.expiry = time.AfterFunc(time.Until(t), func() {
				c.end(&closeError{code: CloseUnauthorized, reason: "credentials expired"})
			})
		}
	}
	c.mu.Unlock()
	c.startReading()
}

// shutdown ends the connection with 1001; it does not wait.
func (c *conn) shutdown() {
	c.end(&closeError{code: CloseGoingAway, reason: "server is shutting down"})
}

// notify is every subscription's Notify callback. It must not block.
func (c *conn) notify() {
	c.wake.Store(true)
	c.kick()
}

// end records why the connection ends, if nothing has yet, and has the writer close it.
func (c *conn) end(err error) {
	c.mu.Lock()
	if c.why == nil {
		c.why = err
		close(c.done)
	}
	c.mu.Unlock()
	c.kick()
}

// kick starts the writer unless it is running or the connection is closed. Whoever gives the
// writer work (out, cmds, wake, end) kicks after doing so.
func (c *conn) kick() {
	c.mu.Lock()
	if c.running || c.closed {
		c.mu.Unlock()
		return
	}
	c.running = true
	c.mu.Unlock()
	go c.writer()
}

func (c *conn) ending() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// tick is the keepalive timer: it sends a ping, and PongTimeout later checks that a pong
// came back. Between the two it holds no goroutine; the reader records pongs.
func (c *conn) tick() {
	c.mu.Lock()
	ka := c.ka
	c.mu.Unlock()
	if c.ending() {
		return
	}
	now := time.Now().UnixNano()
	if c.pingSent != 0 {
		if c.pongAt.Load() < c.pingSent {
			c.end(errDeadPeer)
			c.nc.SetWriteDeadline(time.Now()) // abort a write in progress too
			return
		}
		c.pingSent = 0
		ka.Reset(max(c.h.PingInterval-c.h.PongTimeout, c.h.PingInterval/2))
		return
	}
	c.pingSent = now
	select {
	case c.out <- ws.CompiledPing:
		c.kick()
	default: // the writer has a backlog; it will time out if the peer is gone
	}
	ka.Reset(c.h.PongTimeout)
}

// writer does what there is to do, then ends. Once the connection is to end, it closes it.
func (c *conn) writer() {
	// Let the goroutine that kicked us go on first: the hub offers a batch of messages to
	// every subscriber one message at a time, and a writer that ran at the first would write
	// one frame per system call. Yielding once lets the rest of the batch arrive, so a
	// wake-up writes them all (measured at saturation: about 11 frames per write instead of
	// one, a quarter of the CPU per delivery; docs/design-ws.md).
	runtime.Gosched()
	c.buf = writeBuffers.Get().(*[]byte)
	for {
		if c.ending() {
			c.finish()
			return
		}
		err := c.collect()
		if err == nil {
			err = c.flush()
		}
		if err != nil {
			c.end(err)
			continue
		}
		// Nothing to do: stop, unless work arrived after collect looked and before running
		// is cleared (its kick found the writer running).
		writeBuffers.Put(c.buf) // flush never leaves it over keepUpTo
		c.buf = nil
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
		if len(c.out) == 0 && len(c.cmds) == 0 && !c.wake.Load() && !c.ending() {
			return
		}
		c.mu.Lock()
		if c.running || c.closed {
			c.mu.Unlock()
			return // another writer took over
		}
		c.running = true
		c.mu.Unlock()
		c.buf = writeBuffers.Get().(*[]byte)
	}
}

// collect appends every pending frame to the write buffer: frames from the reader first,
// then a command (the reader sent those frames before it), then what subscriptions have
// waiting, until there is nothing left or the connection is to end.
func (c *conn) collect() error {
	for !c.ending() {
		select {
		case f := <-c.out:
			if err := c.add(f); err != nil {
				return err
			}
			continue
		default:
		}
		select {
		case cmd := <-c.cmds:
			c.taken <- struct{}{}
			var err error
			if cmd.unsubscribe {
				err = c.unsubscribe(c.ctx, cmd)
			} else {
				err = c.subscribe(c.ctx, cmd)
			}
			if err != nil {
				return err
			}
			continue
		default:
		}
		if c.wake.Swap(false) {
			if err := c.drain(c.ctx); err != nil {
				return err
			}
			continue
		}
		return nil
	}
	return nil
}

// add appends a frame to the write buffer, writing the buffer out once it is large.
func (c *conn) add(f []byte) error {
	*c.buf = append(*c.buf, f...)
	if len(*c.buf) >= flushAt {
		return c.flush()
	}
	return nil
}

// addText appends a per-connection text frame (ack, error, gap, subscribed).
func (c *conn) addText(p []byte) error {
	return c.add(c.textFrame(p))
}

// textFrame compiles a per-connection text frame, compressed when the connection negotiated
// compression and p is at least the threshold.
func (c *conn) textFrame(p []byte) []byte {
	return appendText(nil, p, c.compress && len(p) >= c.h.CompressionThreshold)
}

// flush writes the buffer with one write under WriteTimeout. It swaps a buffer grown past
// keepUpTo for a small one, so the buffer the writer pools is never large.
func (c *conn) flush() error {
	b := *c.buf
	if len(b) == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.h.WriteTimeout))
	_, err := c.nc.Write(b)
	*c.buf = b[:0]
	if cap(b) > keepUpTo {
		*c.buf = make([]byte, 0, 4096) // release what a large write grew
	}
	if err != nil {
		c.wfailed = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return &closeError{code: CloseSlowConsumer, reason: "write timed out: slow consumer"}
		}
		return err
	}
	return nil
}

// finish closes the connection as its reason says: with our close code (then waiting for the
// peer's close, as RFC 6455 has the server close TCP last), by echoing the peer's close, or at
// once when the peer is gone or the stream is broken. Then it releases everything.
func (c *conn) finish() {
	c.mu.Lock()
	why, ka, expiry := c.why, c.ka, c.expiry
	c.closed = true // no timer starts after this (start checks)
	c.mu.Unlock()
	c.cancel(why)
	if ka != nil {
		ka.Stop()
	}
	if expiry != nil {
		expiry.Stop()
	}
	var ce *closeError
	sent := false
	if errors.As(why, &ce) && !c.wfailed {
		c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
		_, err := c.nc.Write(closeFrame(ce.code, ce.reason))
		sent = err == nil && !ce.peer
	}
	if sent {
		c.nc.SetReadDeadline(time.Now().Add(closeTimeout)) // a reader now reads the peer's close or ends
	} else {
		c.nc.SetReadDeadline(time.Now()) // end a reader at once
	}
	c.readMu.Lock()
	if sent {
		c.awaitClose()
	}
	c.stopReading()
	c.readMu.Unlock()
	c.nc.Close()
	if c.buf != nil {
		*c.buf = (*c.buf)[:0]
		writeBuffers.Put(c.buf)
	}
	c.buf = nil
	c.mu.Lock()
	c.closed, c.running = true, false
	c.mu.Unlock()
	// The writer is gone for good (closed), so nobody else touches subs.
	for _, s := range c.subs {
		s.sub.Close()
	}
	c.subs = nil
	c.h.untrack(c)
	if c.release != nil {
		c.release()
	}
	c.h.end(why)
}

// subscribe carries out a subscribe op: the gap notice first, then the subscription's
// catch-up and live messages follow through drain.
func (c *conn) subscribe(ctx context.Context, cmd command) error {
	if len(c.subs) >= c.h.MaxSubscriptions {
		err := fmt.Errorf("%w: at most %d", ErrTooMany, c.h.MaxSubscriptions)
		return c.addText(errorFrame(cmd.ref, c.h.code(err), err.Error()))
	}
	sub, err := c.h.Hub.Subscribe(ctx, hub.Request{Filter: cmd.filter, After: cmd.since, Identity: c.p.Identity(), Expires: c.p.Expires()})
	if errors.Is(err, hub.ErrClosed) {
		return &closeError{code: CloseRestart, reason: "server is restarting: reconnect and resume"}
	}
	if err != nil {
		return c.addText(c.errorFrame(cmd.ref, err))
	}
	s := &subscription{ref: cmd.ref, sub: sub}
	g := sub.Gap()
	if cmd.since != "" && (g == nil || g.Reason == hub.GapTrimmed) {
		// Resumed: the log after since, in order. Otherwise retained values, then the log
		// after the position reported when catch-up ends.
		_, seq, _ := hub.ParseID(cmd.since)
		s.start, s.startKnown = seq, true
	} else {
		s.retained = make(map[uint64]bool)
	}
	c.subs = append(c.subs, s)
	// The hub calls this when messages are waiting and when the subscription ends, so no
	// goroutine waits on Ready per subscription.
	sub.Notify(c.notify)
	c.wake.Store(true) // the writer is running: it looks again before it stops
	if g != nil {
		return c.addText(gapFrame(cmd.ref, g))
	}
	return nil
}

// unsubscribe ends every subscription whose topics and patterns are all among those listed.
// It is acknowledged even when none matched, so that it can be repeated safely.
func (c *conn) unsubscribe(_ context.Context, cmd command) error {
	c.subs = slices.DeleteFunc(c.subs, func(s *subscription) bool {
		for _, e := range s.sub.Filter().Entries() {
			if !slices.Contains(cmd.entries, e) {
				return false
			}
		}
		s.sub.Close()
		return true
	})
	return c.addText(ackFrame(cmd.ref, ""))
}

// drain takes what every subscription has: catch-up pages for those still catching up, then
// live messages, merged in id order across subscriptions and sent once each.
func (c *conn) drain(ctx context.Context) error {
	more := false
	live := c.live[:0]
	for _, s := range c.subs {
		select {
		case <-s.sub.Done():
			return ended(s.sub.Err())
		default:
		}
		if !s.sub.CaughtUp() {
			more = true // one page per drain, so that other subscriptions and pings interleave
			b, err := s.sub.Take(ctx, c.h.MaxBatch)
			if err != nil {
				return c.internal(err)
			}
			for _, m := range b.Messages {
				if err := c.send(s, m); err != nil {
					return err
				}
			}
			if b.Position != "" {
				if _, seq, err := hub.ParseID(b.Position); err == nil {
					if !s.startKnown {
						s.start, s.startKnown = seq, true
					}
					s.sent = max(s.sent, seq)
				}
				if err := c.addText(subscribedFrame(s.ref, b.Position)); err != nil {
					return err
				}
			}
			continue
		}
		b, err := s.sub.Take(ctx, c.h.MaxBatch)
		if err != nil {
			return c.internal(err)
		}
		for _, m := range b.Messages {
			live = append(live, pending{m, s})
		}
	}
	if len(c.subs) > 1 {
		slices.SortStableFunc(live, func(a, b pending) int {
			switch {
			case a.m.Seq < b.m.Seq:
				return -1
			case a.m.Seq > b.m.Seq:
				return 1
			}
			return 0
		})
	}
	for i, p := range live {
		live[i] = pending{}
		if err := c.send(p.s, p.m); err != nil {
			return err
		}
	}
	c.live = live[:0]
	if more {
		c.wake.Store(true)
	}
	return nil
}

// send appends m for s unless another subscription of this connection has delivered it.
func (c *conn) send(s *subscription, m *hub.Message) error {
	dup := false
	if len(c.subs) > 1 {
		for _, o := range c.subs {
			if o != s && o.delivered(m) {
				dup = true
				break
			}
		}
	}
	if !s.startKnown {
		s.retained[m.Seq] = true
	} else {
		s.sent = max(s.sent, m.Seq)
	}
	if dup {
		return nil
	}
	return c.add(messageFrame(m, c.compress, c.h.CompressionThreshold))
}

// ended maps why the hub ended a subscription to a close code. The client reconnects and
// resumes from the last id it received.
func ended(err error) error {
	switch {
	case errors.Is(err, hub.ErrSlow):
		return &closeError{code: CloseSlowConsumer, reason: "too slow: messages were waiting too long; reconnect and resume"}
	case errors.Is(err, hub.ErrClosed):
		return &closeError{code: CloseRestart, reason: "server is restarting: reconnect and resume"}
	case errors.Is(err, hub.ErrEpoch):
		return &closeError{code: CloseRestart, reason: "the message log was reset: reconnect"}
	}
	return &closeError{code: CloseInternal, reason: "subscription ended: " + fmt.Sprint(err)}
}

func (c *conn) internal(err error) error {
	c.h.Logger.Error("ws: reading the log", "err", err)
	return &closeError{code: CloseInternal, reason: "internal error: reconnect and resume"}
}

func (c *conn) errorFrame(ref json.RawMessage, err error) []byte {
	code := c.h.code(err)
	msg := err.Error()
	if code == "internal" {
		c.h.Logger.Error("ws: request failed", "err", err)
		msg = "internal error"
	}
	return errorFrame(ref, code, msg)
}
