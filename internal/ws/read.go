package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/netpoll"
)

// Reading. On Linux an idle connection has no reader goroutine: its socket waits in the
// Handler's poller (one-shot EPOLLIN). When it becomes readable the poller starts a goroutine
// that reads and handles frames through the connection's small bufio.Reader; once it has
// handled a complete message and nothing is left in the buffer, it re-arms the poller and
// ends. Bytes already buffered (two messages in one TCP segment) are handled before that,
// since the poller only reports what is still in the socket. A frame that has begun to
// arrive blocks that goroutine until it is complete, for at most WriteTimeout, so a client
// trickling bytes cannot hold it for ever. Elsewhere a goroutine reads for the connection's
// life, as a blocking reader.

// readState is the reader's; it is under conn.readMu.
type readState struct {
	hdr     [ws.MaxHeaderSize - 2]byte // gobwas/ws's header scratch
	ms      wsflate.MessageState       // whether the message being read is compressed
	frag    bool                       // inside a fragmented message
	op      ws.OpCode                  // the message's opcode
	msg     []byte                     // the message so far
	inFrame bool                       // an error now leaves the stream in the middle of a frame
	frames  *bucket
	pubs    *bucket
	bad     int

	watch      *netpoll.Watch // nil until the first wait, or when there is no poller
	blocking   bool           // no poller: read for the connection's life
	peerClosed bool           // the peer's close frame has been read
	stopped    bool           // the connection is closing: a reader woken now leaves
}

// blockingReads makes every connection read as on a system without epoll; for tests.
var blockingReads atomic.Bool

var errUnmasked = errors.New("ws: unmasked client frame") // closed at once, without a close frame

// keepMsgUpTo is the largest message buffer kept between messages; client ops are small.
const keepMsgUpTo = 1024

// startReading starts the reading side: at once when the handshake brought frames with it,
// otherwise when the socket becomes readable.
func (c *conn) startReading() {
	if c.br.Buffered() > 0 {
		go c.serveReads()
		return
	}
	c.readMu.Lock()
	waiting := c.wait()
	c.readMu.Unlock()
	if !waiting {
		go c.serveReads()
	}
}

// serveReads handles frames until the socket has nothing more for now (then the poller takes
// over), or, without a poller, until the connection ends.
func (c *conn) serveReads() {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for !c.rd.stopped && !c.ending() {
		if !c.rd.blocking {
			c.nc.SetReadDeadline(time.Now().Add(c.h.WriteTimeout))
		}
		if err := c.readMessage(); err != nil {
			c.end(c.readError(err))
			return
		}
		if c.br.Buffered() > 0 || c.rd.blocking {
			continue
		}
		if c.wait() {
			return
		}
	}
}

// wait arms the poller to start serveReads when the socket is readable, and reports whether
// it did; without a poller the caller goes on reading. Called under readMu.
func (c *conn) wait() bool {
	if c.rd.blocking || c.rd.stopped {
		return false
	}
	if c.rd.watch != nil {
		return c.rd.watch.Rearm() == nil
	}
	w, err := addWatch(c)
	if err != nil {
		c.rd.blocking = true
		c.nc.SetReadDeadline(time.Time{})
		return false
	}
	c.rd.watch = w
	return true
}

// stopReading makes any later wake-up leave at once and stops the poller's watch; the writer
// calls it under readMu before closing the socket, whose number may be reused.
func (c *conn) stopReading() {
	c.rd.stopped = true
	if c.rd.watch != nil {
		c.rd.watch.Stop()
	}
}

// awaitClose reads until the peer's close frame after ours, for at most closeTimeout (the
// caller set the deadline): data messages are dropped now. Called under readMu.
func (c *conn) awaitClose() {
	if c.rd.peerClosed {
		return
	}
	if c.rd.inFrame { // the stream broke in the middle of a frame: wait for the peer to hang up
		io.Copy(io.Discard, c.br)
		return
	}
	for c.readMessage() == nil {
	}
}

// addWatch registers the connection's socket with the Handler's poller: when it is readable
// (or hung up), a goroutine starts to read. It fails where there is no epoll.
func addWatch(c *conn) (*netpoll.Watch, error) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok || blockingReads.Load() {
		return nil, netpoll.ErrUnsupported
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return c.h.poller.Add(raw, netpoll.Readable|netpoll.HangUp, func(netpoll.Events) { go c.serveReads() })
}

// readError maps an error that ended reading to why the connection ends.
func (c *conn) readError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && !c.ending() {
		return &closeError{code: ClosePolicy, reason: "a frame was not completed in time"}
	}
	return err
}

func protocolError(err error) error {
	return &closeError{code: CloseProtocol, reason: err.Error()}
}

// readMessage reads frames until it has handled one complete data message, or a control frame
// outside a fragmented message (a pong answering our keepalive must not leave the reader
// waiting, under the frame deadline, for a message that may not come). Headers are read and
// checked by gobwas/ws.
func (c *conn) readMessage() error {
	rd := &c.rd
	for {
		rd.inFrame = true
		h, err := ws.ReadHeaderBuffer(c.br, rd.hdr[:])
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			return protocolError(err)
		}
		if err != nil {
			return err
		}
		if c.compress {
			// RSV1 marks a compressed message; it may be set on a message's first frame only.
			if h, err = rd.ms.UnsetBits(h); err != nil {
				return protocolError(err)
			}
		}
		state := ws.StateServerSide
		if rd.frag {
			state = state.Set(ws.StateFragmented)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			if errors.Is(err, ws.ErrProtocolMaskRequired) {
				return errUnmasked
			}
			return protocolError(err)
		}
		if h.OpCode.IsControl() {
			p := make([]byte, h.Length) // at most 125 bytes: CheckHeader checked
			if _, err := io.ReadFull(c.br, p); err != nil {
				return err
			}
			rd.inFrame = false
			ws.Cipher(p, h.Mask, 0)
			if err := c.control(h.OpCode, p); err != nil {
				return err
			}
			if rd.frag {
				continue // between fragments: the message is not complete yet
			}
			return nil // a boundary: the caller may wait for the next frame without a deadline
		}
		if !rd.frag {
			rd.op, rd.msg = h.OpCode, rd.msg[:0]
		}
		// The limit is checked before reading; compressed messages again after inflating.
		if int64(len(rd.msg))+h.Length > c.h.MaxMessage {
			return &closeError{code: CloseTooLarge, reason: fmt.Sprintf("message over %d bytes", c.h.MaxMessage)}
		}
		n := len(rd.msg)
		rd.msg = slices.Grow(rd.msg, int(h.Length))[:n+int(h.Length)]
		if _, err := io.ReadFull(c.br, rd.msg[n:]); err != nil {
			return err
		}
		rd.inFrame = false
		ws.Cipher(rd.msg[n:], h.Mask, 0)
		rd.frag = !h.Fin
		if rd.frag {
			continue
		}
		err = c.message()
		if cap(rd.msg) > keepMsgUpTo {
			rd.msg = nil
		}
		return err
	}
}

// control answers a control frame: a ping with a pong, a pong marks the peer alive, a close
// ends the connection (the writer echoes it).
func (c *conn) control(op ws.OpCode, p []byte) error {
	switch op {
	case ws.OpPing:
		return c.reply(appendFrame(nil, ws.NewPongFrame(p)))
	case ws.OpPong:
		c.pongAt.Store(time.Now().UnixNano())
	case ws.OpClose:
		c.rd.peerClosed = true
		if len(p) == 0 {
			return &closeError{code: 0, reason: "", peer: true} // no status: echo an empty close
		}
		if len(p) == 1 {
			return &closeError{code: CloseProtocol, reason: "close frame with a one-byte body"}
		}
		code, why := ws.ParseCloseFrameData(p)
		if err := ws.CheckCloseFrameData(code, why); err != nil || code >= 5000 {
			return &closeError{code: CloseProtocol, reason: "invalid close frame"}
		}
		return &closeError{code: int(code), peer: true}
	}
	return nil
}

// reply hands a frame to the writer.
func (c *conn) reply(f []byte) error {
	select {
	case c.out <- f:
		c.kick()
		return nil
	case <-c.done:
		return errEnding
	}
}

// message handles a complete data message.
func (c *conn) message() error {
	rd := &c.rd
	data := rd.msg
	if rd.ms.IsCompressed() {
		out, err := inflate(nil, data, c.h.MaxMessage)
		if int64(len(out)) > c.h.MaxMessage {
			// A small deflate bomb stops here, at MaxMessage+1 bytes.
			return &closeError{code: CloseTooLarge, reason: fmt.Sprintf("message over %d bytes", c.h.MaxMessage)}
		}
		if err != nil {
			return &closeError{code: CloseInvalidData, reason: "invalid compressed data"}
		}
		data = out
	}
	if c.ending() {
		return nil // closing: messages are dropped
	}
	if !rd.frames.allow(time.Now()) {
		return &closeError{code: CloseRateLimited, reason: "too many frames per second"}
	}
	if rd.op == ws.OpText && !utf8.Valid(data) {
		// RFC 6455 8.1: a text frame with invalid UTF-8 fails the connection with 1007.
		return &closeError{code: CloseInvalidData, reason: "text frame is not valid UTF-8"}
	}
	var reply []byte
	var req request
	var err error
	if rd.op != ws.OpText {
		err = fmt.Errorf("%w: binary frames are not supported: send JSON in text frames", ErrBadRequest)
	} else {
		req, err = parse(data)
	}
	if err == nil {
		reply, err = c.handle(req, rd.pubs)
	}
	if errors.Is(err, errEnding) {
		return err
	}
	if err != nil {
		reply = c.errorFrame(req.Ref, err)
		if rd.bad++; rd.bad >= maxBadInARow {
			if errors.Is(err, ErrRateLimited) {
				return &closeError{code: CloseRateLimited, reason: "kept publishing over the rate limit"}
			}
			return &closeError{code: ClosePolicy, reason: "too many bad requests in a row"}
		}
	} else {
		rd.bad = 0
	}
	if reply == nil {
		return nil
	}
	return c.reply(c.textFrame(reply))
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

// bucket is a token bucket, used by one goroutine at a time.
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
