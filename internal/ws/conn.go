package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/internal/hub"
)

// closeError ends a connection with a close frame. It is also what OnEnd is told.
type closeError struct {
	code   websocket.StatusCode
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("ws: close %d: %s", int(e.code), e.reason) }

// CloseCode returns the close code an error returned for a connection carries, or 0.
func CloseCode(err error) int {
	var ce *closeError
	if errors.As(err, &ce) {
		return int(ce.code)
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

// command is a subscription change, decided by the reader and carried out by the writer,
// which owns the subscriptions.
type command struct {
	unsubscribe bool
	ref         json.RawMessage
	filter      *hub.Filter
	entries     []string
	since       string
}

// conn is one WebSocket connection. The handler's goroutine reads frames, publishes, and hands
// everything else to the writer through out and cmds. The writer owns subs and every write;
// it is a goroutine started when there is something to do (a frame to send, a command, a
// subscription with messages waiting, the end of the connection) and gone when there is
// nothing left, so an idle connection holds one goroutine, the one blocked in Read
// (coder/websocket cannot wait for a frame without one).
type conn struct {
	h      *Handler
	c      *websocket.Conn
	p      Principal
	ctx    context.Context // ended once the connection is closed
	cancel context.CancelCauseFunc

	cmds  chan command  // capacity 1; the reader then waits on taken
	taken chan struct{} // capacity 1: the writer has taken a command
	out   chan []byte   // control frames (ack, pong, error) from the reader
	wake  atomic.Bool   // some subscription has something to take

	mu       sync.Mutex
	running  bool          // a writer goroutine is active
	why      error         // why the connection ends; set once, by end
	closed   bool          // the writer has closed the connection
	done     chan struct{} // closed by end
	finished chan struct{} // closed by the writer once it has closed the connection

	// The writer's alone.
	subs []*subscription
	live []pending // reused between drains
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

func newConn(h *Handler, c *websocket.Conn, p Principal, parent context.Context) *conn {
	// The request's context is not for use after a hijack; keep its values only.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	return &conn{
		h: h, c: c, p: p, ctx: ctx, cancel: cancel,
		cmds: make(chan command, 1), taken: make(chan struct{}, 1), out: make(chan []byte, 16),
		done: make(chan struct{}), finished: make(chan struct{}),
	}
}

// shutdown ends the connection with 1001; it does not wait.
func (c *conn) shutdown() { c.end(&closeError{CloseGoingAway, "server is shutting down"}) }

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

// serve serves the connection until it ends and returns why.
func (c *conn) serve() error {
	var wg sync.WaitGroup
	ka := c.keepalive(&wg)
	if t := c.p.Expires(); !t.IsZero() {
		timer := time.AfterFunc(time.Until(t), func() { c.end(&closeError{CloseUnauthorized, "credentials expired"}) })
		defer timer.Stop()
	}
	c.end(c.read())
	<-c.finished
	c.mu.Lock()
	why := c.why
	c.mu.Unlock()
	c.cancel(why)
	ka.stop()
	// The writer is gone for good (closed), so subs are ours now.
	for _, s := range c.subs {
		s.sub.Close()
	}
	wg.Wait()
	return why
}

// writer does what there is to do, then ends. Once the connection is to end, it closes it.
func (c *conn) writer() {
	for {
		select {
		case <-c.done:
			c.mu.Lock()
			why := c.why
			c.mu.Unlock()
			c.finish(why)
			c.mu.Lock()
			c.closed, c.running = true, false
			c.mu.Unlock()
			close(c.finished)
			return
		default:
		}
		worked, err := c.step()
		if err != nil {
			c.end(err)
			continue
		}
		if worked {
			continue
		}
		// Nothing to do: stop, unless work arrived after step looked and before running is
		// cleared (its kick found the writer running).
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
	}
}

func (c *conn) ending() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// step does one piece of work: frames from the reader first, then a command (the reader sent
// those frames before it), then what subscriptions have waiting.
func (c *conn) step() (bool, error) {
	select {
	case f := <-c.out:
		return true, c.write(c.ctx, f)
	default:
	}
	select {
	case cmd := <-c.cmds:
		c.taken <- struct{}{}
		if cmd.unsubscribe {
			return true, c.unsubscribe(c.ctx, cmd)
		}
		return true, c.subscribe(c.ctx, cmd)
	default:
	}
	if c.wake.Swap(false) {
		return true, c.drain(c.ctx)
	}
	return false, nil
}

// finish closes the connection as err says: with our close code, or at once when the peer
// is gone, already closed, or was closed by the library (1009 past the read limit).
func (c *conn) finish(err error) {
	var ce *closeError
	if errors.As(err, &ce) {
		c.c.Close(ce.code, reason(ce.reason))
		return
	}
	c.c.CloseNow()
}

func (c *conn) write(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, c.h.WriteTimeout)
	defer cancel()
	if err := c.c.Write(wctx, websocket.MessageText, b); err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return &closeError{CloseSlowConsumer, "write timed out: slow consumer"}
		}
		return err
	}
	return nil
}

// pinger pings the peer every PingInterval from a timer: between pings it holds no goroutine,
// only while a ping waits for its pong (the reader delivers the pong).
type pinger struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
	wg      *sync.WaitGroup
}

// keepalive starts pinging; a peer that does not answer in time is dead and the connection
// ends with errDeadPeer.
func (c *conn) keepalive(wg *sync.WaitGroup) *pinger {
	p := &pinger{wg: wg}
	p.mu.Lock()
	defer p.mu.Unlock()
	wg.Add(1) // for the first ping
	p.t = time.AfterFunc(c.h.PingInterval, func() {
		defer wg.Done()
		pctx, done := context.WithTimeout(c.ctx, c.h.PongTimeout)
		err := c.c.Ping(pctx)
		done()
		if err != nil {
			if c.ctx.Err() == nil {
				c.cancel(errDeadPeer) // abort a write in progress too
				c.end(errDeadPeer)
			}
			return
		}
		p.arm(c.h.PingInterval)
	})
	return p
}

// arm schedules the next ping unless the connection has ended. Each armed timer counts in
// wg, so that run waits for a ping in flight.
func (p *pinger) arm(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.wg.Add(1)
		p.t.Reset(d)
	}
}

func (p *pinger) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.t.Stop() {
		p.wg.Done() // the armed ping will not run
	}
}

// subscribe carries out a subscribe op: the gap notice first, then the subscription's
// catch-up and live messages follow through drain.
func (c *conn) subscribe(ctx context.Context, cmd command) error {
	if len(c.subs) >= c.h.MaxSubscriptions {
		err := fmt.Errorf("%w: at most %d", ErrTooMany, c.h.MaxSubscriptions)
		return c.write(ctx, errorFrame(cmd.ref, c.h.code(err), err.Error()))
	}
	sub, err := c.h.Hub.Subscribe(ctx, hub.Request{Filter: cmd.filter, After: cmd.since, Identity: c.p.Identity(), Expires: c.p.Expires()})
	if errors.Is(err, hub.ErrClosed) {
		return &closeError{CloseRestart, "server is restarting: reconnect and resume"}
	}
	if err != nil {
		return c.write(ctx, c.errorFrame(cmd.ref, err))
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
		return c.write(ctx, gapFrame(cmd.ref, g))
	}
	return nil
}

// unsubscribe ends every subscription whose topics and patterns are all among those listed.
// It is acknowledged even when none matched, so that it can be repeated safely.
func (c *conn) unsubscribe(ctx context.Context, cmd command) error {
	c.subs = slices.DeleteFunc(c.subs, func(s *subscription) bool {
		for _, e := range s.sub.Filter().Entries() {
			if !slices.Contains(cmd.entries, e) {
				return false
			}
		}
		s.sub.Close()
		return true
	})
	return c.write(ctx, ackFrame(cmd.ref, ""))
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
				if err := c.send(ctx, s, m); err != nil {
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
				if err := c.write(ctx, subscribedFrame(s.ref, b.Position)); err != nil {
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
		if err := c.send(ctx, p.s, p.m); err != nil {
			return err
		}
	}
	c.live = live[:0]
	if more {
		c.wake.Store(true)
	}
	return nil
}

// send writes m for s unless another subscription of this connection has delivered it.
func (c *conn) send(ctx context.Context, s *subscription, m *hub.Message) error {
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
	return c.write(ctx, encoded(m))
}

// ended maps why the hub ended a subscription to a close code. The client reconnects and
// resumes from the last id it received.
func ended(err error) error {
	switch {
	case errors.Is(err, hub.ErrSlow):
		return &closeError{CloseSlowConsumer, "too slow: messages were waiting too long; reconnect and resume"}
	case errors.Is(err, hub.ErrClosed):
		return &closeError{CloseRestart, "server is restarting: reconnect and resume"}
	case errors.Is(err, hub.ErrEpoch):
		return &closeError{CloseRestart, "the message log was reset: reconnect"}
	}
	return &closeError{CloseInternal, "subscription ended: " + fmt.Sprint(err)}
}

func (c *conn) internal(err error) error {
	c.h.Logger.Error("ws: reading the log", "err", err)
	return &closeError{CloseInternal, "internal error: reconnect and resume"}
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

// read parses frames until the connection ends. It returns a *closeError for a protocol
// violation it closes on, or the library's error.
func (c *conn) read() error {
	frames := newBucket(c.h.FrameRate, int(2*c.h.FrameRate))
	pubs := newBucket(c.h.PublishRate, c.h.PublishBurst)
	bad := 0
	for {
		// Not c.ctx: coder/websocket would register a context.AfterFunc for every Read, held
		// for as long as an idle connection waits. The writer closes the connection when it
		// ends, which ends this Read.
		typ, data, err := c.c.Read(context.Background())
		if err != nil {
			return err
		}
		if !frames.allow(time.Now()) {
			return &closeError{CloseRateLimited, "too many frames per second"}
		}
		if typ == websocket.MessageText && !utf8.Valid(data) {
			// RFC 6455 8.1: a text frame with invalid UTF-8 fails the connection with 1007.
			// coder/websocket leaves that check to us.
			return &closeError{CloseInvalidData, "text frame is not valid UTF-8"}
		}
		var reply []byte
		var req request
		if typ != websocket.MessageText {
			err = fmt.Errorf("%w: binary frames are not supported: send JSON in text frames", ErrBadRequest)
		} else {
			req, err = parse(data)
		}
		if err == nil {
			reply, err = c.handle(req, pubs)
		}
		if err != nil {
			reply = c.errorFrame(req.Ref, err)
			if bad++; bad >= maxBadInARow {
				if errors.Is(err, ErrRateLimited) {
					return &closeError{CloseRateLimited, "kept publishing over the rate limit"}
				}
				return &closeError{ClosePolicy, "too many bad requests in a row"}
			}
		} else {
			bad = 0
		}
		if reply == nil {
			continue
		}
		select {
		case c.out <- reply:
			c.kick()
		case <-c.done:
			return errEnding
		}
	}
}

// handle carries out one op. Subscription changes go to the writer, which acknowledges them;
// publish and ping are answered here.
func (c *conn) handle(req request, pubs *bucket) ([]byte, error) {
	switch req.Op {
	case "ping":
		return pongFrame(req.Ref), nil
	case "subscribe", "unsubscribe":
		if len(req.Topics) == 0 && req.Topic != "" {
			req.Topics = []string{req.Topic}
		}
		f, err := hub.NewFilter(req.Topics)
		if err != nil {
			return nil, err
		}
		cmd := command{unsubscribe: req.Op == "unsubscribe", ref: req.Ref, filter: f, entries: f.Entries(), since: req.Since}
		if !cmd.unsubscribe {
			if err := c.p.CanSubscribe(f); err != nil {
				return nil, err
			}
		}
		// Wait until the writer has taken it, as with an unbuffered channel: frames after
		// this one are handled after the subscription change has started.
		select {
		case c.cmds <- cmd:
			c.kick()
		case <-c.done:
			return nil, errEnding
		}
		select {
		case <-c.taken:
			return nil, nil
		case <-c.done:
			return nil, errEnding
		}
	case "publish":
		if !pubs.allow(time.Now()) {
			return nil, fmt.Errorf("%w: at most %g publishes per second", ErrRateLimited, c.h.PublishRate)
		}
		m, err := req.message()
		if err != nil {
			return nil, err
		}
		if err := c.p.CanPublish(m.Topics); err != nil && !(c.h.AllowAnonymousPublish && c.h.code(err) == "unauthorized") {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(c.ctx, c.h.WriteTimeout)
		defer cancel()
		if _, err := c.h.Hub.Publish(pctx, []*hub.Message{m}); err != nil {
			return nil, err
		}
		return ackFrame(req.Ref, m.ID), nil
	case "":
		return nil, fmt.Errorf("%w: missing op (subscribe, unsubscribe, publish or ping)", ErrBadRequest)
	}
	return nil, fmt.Errorf("%w: unknown op %.40q (subscribe, unsubscribe, publish or ping)", ErrBadRequest, req.Op)
}

// bucket is a token bucket, used by one goroutine.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) allow(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
