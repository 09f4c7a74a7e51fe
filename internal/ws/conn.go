package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
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

var errDeadPeer = errors.New("ws: peer did not answer a ping")

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

// conn is one WebSocket connection. run's goroutine owns subs and every write; the reader
// goroutine parses frames, publishes, and hands everything else over through cmds and out.
type conn struct {
	h *Handler
	c *websocket.Conn
	p Principal

	cmds chan command
	out  chan []byte   // control frames (ack, pong, error) from the reader
	wake chan struct{} // capacity 1: some subscription has something to take
	stop chan struct{} // closed by Shutdown
	once sync.Once

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

func newConn(h *Handler, c *websocket.Conn, p Principal) *conn {
	return &conn{
		h: h, c: c, p: p,
		cmds: make(chan command), out: make(chan []byte, 16),
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
}

func (c *conn) shutdown() { c.once.Do(func() { close(c.stop) }) }

// notify is every subscription's Notify callback. It must not block.
func (c *conn) notify() { signal(c.wake) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run serves the connection until it ends and returns why. An idle connection holds two
// goroutines: this one and the reader (coder/websocket has no way to wait for a frame without
// a goroutine blocked in Read). Subscriptions wake this one through Subscription.Notify and
// pings are sent from a timer, so neither holds a goroutine of its own.
func (c *conn) run(parent context.Context) (err error) {
	// The request's context is not for use after a hijack; keep its values only.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	var wg sync.WaitGroup
	readErr := make(chan error, 1)
	wg.Go(func() { readErr <- c.read(ctx) })
	ka := c.keepalive(ctx, cancel, &wg)
	defer func() {
		c.finish(err)
		cancel(err)
		ka.stop()
		for _, s := range c.subs {
			s.sub.Close()
		}
		wg.Wait()
	}()

	var expire <-chan time.Time
	if t := c.p.Expires(); !t.IsZero() {
		timer := time.NewTimer(time.Until(t))
		defer timer.Stop()
		expire = timer.C
	}
	for {
		var err error
		select {
		case f := <-c.out:
			err = c.write(ctx, f)
		case cmd := <-c.cmds:
			if cmd.unsubscribe {
				err = c.unsubscribe(ctx, cmd)
			} else {
				err = c.subscribe(ctx, cmd)
			}
		case <-c.wake:
			err = c.drain(ctx)
		case err = <-readErr:
		case <-expire:
			err = &closeError{CloseUnauthorized, "credentials expired"}
		case <-c.stop:
			err = &closeError{CloseGoingAway, "server is shutting down"}
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		if err != nil {
			return err
		}
	}
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
func (c *conn) keepalive(ctx context.Context, cancel context.CancelCauseFunc, wg *sync.WaitGroup) *pinger {
	p := &pinger{wg: wg}
	p.mu.Lock()
	defer p.mu.Unlock()
	wg.Add(1) // for the first ping
	p.t = time.AfterFunc(c.h.PingInterval, func() {
		defer wg.Done()
		pctx, done := context.WithTimeout(ctx, c.h.PongTimeout)
		err := c.c.Ping(pctx)
		done()
		if err != nil {
			if ctx.Err() == nil {
				cancel(errDeadPeer)
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
	signal(c.wake)
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
		signal(c.wake)
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
func (c *conn) read(ctx context.Context) error {
	frames := newBucket(c.h.FrameRate, int(2*c.h.FrameRate))
	pubs := newBucket(c.h.PublishRate, c.h.PublishBurst)
	bad := 0
	for {
		// Not ctx: coder/websocket would register a context.AfterFunc for every Read, held
		// for as long as an idle connection waits. run closes the connection when it ends,
		// which ends this Read.
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
			reply, err = c.handle(ctx, req, pubs)
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
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle carries out one op. Subscription changes go to the writer, which acknowledges them;
// publish and ping are answered here.
func (c *conn) handle(ctx context.Context, req request, pubs *bucket) ([]byte, error) {
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
		select {
		case c.cmds <- cmd:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
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
		pctx, cancel := context.WithTimeout(ctx, c.h.WriteTimeout)
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
