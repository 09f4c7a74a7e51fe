//go:build linux

package sse

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/netpoll"
)

// A pool writes the streams of hijacked connections from a few goroutines (about one per
// core) instead of one goroutine per connection. Once a stream has caught up, the handler
// hands its connection to the pool and returns: an idle connection then holds no goroutine,
// no HTTP buffers and no timers, only its socket and subscription. The hub calls back
// (Subscription.Notify) when messages are waiting, and the connection's worker drains the
// queue, encodes everything pending into one buffer and writes it with one non-blocking
// write straight to the socket.
//
// A connection whose socket buffer is full gets a goroutine of its own that finishes the
// write under the write timeout; meanwhile its hub queue fills, and when that overflows the
// hub evicts the subscriber (who resumes from history). So a slow reader costs at most
// QueueLen messages plus one write buffer, and never delays anyone else. Dead peers are found
// by the watcher (epoll on the socket's hang-up), by write errors and by heartbeats.
type pool struct {
	h       *Handler
	workers []*worker
	next    atomic.Uint32
	watch   netpoll.Poller // hang-ups
}

func newPool(h *Handler, n int) *pool {
	p := &pool{h: h}
	for range n {
		p.workers = append(p.workers, &worker{p: p, conns: make(map[*conn]struct{}), wake: make(chan struct{}, 1)})
	}
	return p
}

// conn is one hijacked stream. Fields without a comment are set once before it is shared.
type conn struct {
	nc      net.Conn
	raw     syscall.RawConn
	hangup  atomic.Pointer[netpoll.Watch] // nil when the socket could not be watched
	sub     *hub.Subscription
	format  string
	chunked bool // frames are HTTP/1.1 chunks
	w       *worker
	release func() // called once when the connection ends

	queued atomic.Bool           // in the worker's run queue
	busy   atomic.Bool           // a flusher goroutine owns the socket
	failed atomic.Pointer[error] // set by the flusher or the watcher: close it
	last   time.Time             // last write; worker only
	closed bool                  // worker only
}

type worker struct {
	p       *pool
	mu      sync.Mutex
	runq    []*conn
	conns   map[*conn]struct{}
	running bool
	wake    chan struct{}

	buf, out []byte // worker only
}

// maxWrite bounds the bytes of messages one write takes from the hub queue (one message more
// at most): the most a connection with a full socket holds besides its queue.
const maxWrite = 64 << 10

// add takes over a hijacked connection whose subscription has caught up.
func (p *pool) add(nc net.Conn, sub *hub.Subscription, format string, chunked bool, release func()) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return errors.New("sse: connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	w := p.workers[int(p.next.Add(1))%len(p.workers)]
	c := &conn{nc: nc, raw: raw, sub: sub, format: format, chunked: chunked, w: w, last: time.Now(), release: release}
	w.mu.Lock()
	w.conns[c] = struct{}{}
	w.startLocked()
	w.mu.Unlock()
	// The watch is one-shot: the first hang-up fails the connection, which is then closed.
	// Without it, heartbeats and write errors still find dead peers.
	hw, _ := p.watch.Add(raw, netpoll.HangUp, func(netpoll.Events) {
		gone := ErrClientGone
		c.failed.CompareAndSwap(nil, &gone)
		w.schedule(c)
	})
	c.hangup.Store(hw)
	sub.Notify(func() { w.schedule(c) })
	return nil
}

// startLocked starts the worker goroutine if it is not running. A worker stops when it has
// no connections, so an idle server (and a finished test) has no pool goroutines.
func (w *worker) startLocked() {
	if !w.running {
		w.running = true
		go w.run()
	}
}

func (w *worker) schedule(c *conn) {
	if !c.queued.CompareAndSwap(false, true) {
		return
	}
	w.mu.Lock()
	w.runq = append(w.runq, c)
	w.startLocked()
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run() {
	hb := time.NewTicker(w.p.h.Heartbeat)
	defer hb.Stop()
	var q []*conn
	for {
		w.mu.Lock()
		q, w.runq = w.runq, q[:0]
		if len(q) == 0 && len(w.conns) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		if len(q) == 0 {
			select {
			case <-w.wake:
			case <-hb.C:
				w.heartbeat()
			}
			continue
		}
		for i, c := range q {
			c.queued.Store(false)
			w.service(c)
			q[i] = nil
		}
	}
}

// service writes everything the connection has waiting, or ends it.
func (w *worker) service(c *conn) {
	if c.closed {
		return
	}
	if c.busy.Load() {
		// The flusher schedules the connection again when it is done. When the subscription
		// has ended (evicted as too slow, or closed), make its blocked write fail now instead
		// of at the write timeout: the socket and the rest of the write are freed at once.
		select {
		case <-c.sub.Done():
			c.nc.SetWriteDeadline(time.Now())
		default:
		}
		return
	}
	if err := c.failed.Load(); err != nil {
		reason := *err
		if e := c.sub.Err(); e != nil {
			reason = e // the subscription ended first (ErrSlow): that is why
		}
		w.close(c, reason)
		return
	}
	select {
	case <-c.sub.Done():
		w.finish(c)
		return
	default:
	}
	buf := w.buf[:0]
	for len(buf) < maxWrite {
		// Caught up: never blocks. Bounded in bytes so that what a full socket leaves to
		// its flusher is at most about maxWrite: the rest waits in the hub queue, whose
		// overflow evicts the subscriber.
		b, err := c.sub.TakeBytes(context.Background(), w.p.h.MaxBatch, maxWrite-len(buf))
		if err != nil {
			w.close(c, err)
			return
		}
		for _, m := range b.Messages {
			buf = append(buf, Encoded(m, c.format)...)
		}
		if len(b.Messages) < w.p.h.MaxBatch {
			break
		}
	}
	w.buf = buf[:0]
	if len(buf) > 0 {
		w.write(c, buf)
	}
}

// finish tells the client why its stream ended (and when to come back), then closes it.
func (w *worker) finish(c *conn) {
	err := c.sub.Err()
	var b []byte
	if errors.Is(err, hub.ErrClosed) {
		b = AppendRetry(b, w.p.h.jitter())
	}
	b = AppendComment(b, "closed: "+err.Error())
	w.write(c, b)
	if c.chunked && !c.busy.Load() && c.failed.Load() == nil {
		w.writeRaw(c, []byte("0\r\n\r\n"))
	}
	w.close(c, err)
}

func (w *worker) heartbeat() {
	w.mu.Lock()
	conns := make([]*conn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	now := time.Now()
	for _, c := range conns {
		if !c.closed && !c.busy.Load() && now.Sub(c.last) >= w.p.h.Heartbeat/2 {
			w.write(c, []byte(":\n\n"))
		}
	}
}

// write sends one frame, as an HTTP chunk when the response is chunked.
func (w *worker) write(c *conn, frame []byte) {
	out := frame
	if c.chunked {
		out = strconv.AppendUint(w.out[:0], uint64(len(frame)), 16)
		out = append(out, '\r', '\n')
		out = append(out, frame...)
		out = append(out, '\r', '\n')
		w.out = out[:0]
	}
	w.writeRaw(c, out)
}

// writeRaw writes without blocking the worker. What the socket does not take is handed to a
// flusher goroutine that owns the connection until it has written it or failed.
func (w *worker) writeRaw(c *conn, b []byte) {
	if c.closed || c.busy.Load() {
		return
	}
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			k, err := syscall.Write(int(fd), b[n:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				werr = err
				break
			}
			n += k
		}
		return true
	})
	if err == nil && werr != nil && werr != syscall.EAGAIN {
		err = werr
	}
	if err != nil {
		w.close(c, err)
		return
	}
	c.last = time.Now()
	w.p.h.written(n)
	if n == len(b) {
		return
	}
	rest := append([]byte(nil), b[n:]...)
	c.busy.Store(true)
	// Set here, not in the flusher, so that service's deadline for an ended subscription
	// (same goroutine, later) always comes after it.
	c.nc.SetWriteDeadline(time.Now().Add(w.p.h.WriteTimeout))
	go func() {
		k, err := c.nc.Write(rest)
		w.p.h.written(k)
		if err != nil {
			c.failed.CompareAndSwap(nil, &err)
		}
		c.busy.Store(false)
		w.schedule(c)
	}()
}

func (w *worker) close(c *conn, reason error) {
	if c.closed {
		return
	}
	c.closed = true
	if hw := c.hangup.Load(); hw != nil {
		hw.Stop() // before the close: the socket's number may be reused at once
	}
	c.nc.Close()
	c.sub.Close()
	c.release()
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
	w.p.h.end(reason)
}
