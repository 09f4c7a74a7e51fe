// Package ws serves subscriptions and publishing over WebSocket, with a small JSON protocol in
// text frames (docs/api.md, "WebSocket: GET /ws").
//
// A connection may hold several subscriptions; each one is a hub.Subscription with exactly the
// semantics of the SSE transport: catch-up from history or retained values, then live messages,
// a gap notice first when the resume point cannot be honoured, eviction of slow consumers. The
// handler goroutine reads frames; a writer goroutine, started when there is something to send
// and gone when there is not, owns every subscription and every write.
package ws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/internal/hub"
)

// ErrBadRequest is wrapped by errors in a client's frame.
var (
	ErrBadRequest  = errors.New("ws: bad request")
	ErrRateLimited = errors.New("ws: rate limited")
	ErrTooMany     = errors.New("ws: too many subscriptions on this connection")
)

// Hub is what the handler needs from the hub.
type Hub interface {
	Subscribe(ctx context.Context, req hub.Request) (*hub.Subscription, error)
	Publish(ctx context.Context, msgs []*hub.Message) ([]bool, error)
}

// Principal is who a connection acts for; the server's access control implements it. It is
// asked before every subscribe and every publish.
type Principal interface {
	Identity() string
	CanSubscribe(f *hub.Filter) error
	CanPublish(topics []string) error
	Expires() time.Time // zero: never; the connection is closed with 4001 at this time
}

// Handler upgrades GET /ws. Zero values mean the documented default.
type Handler struct {
	Hub Hub
	// Principal authenticates the upgrade request. An error closes the connection at once with
	// 4001 (4003 when Code says "forbidden" or "origin", 1013 when the server is overloaded):
	// a browser cannot read an HTTP status from a failed handshake, but it can read a close code.
	Principal func(r *http.Request) (Principal, error)
	// Code names an error for error frames ("forbidden", "bad_topic", ...); the server passes
	// its one error table. This package's own errors are named first; nil means "internal".
	Code func(err error) string
	// AllowAnonymousPublish lets a connection publish when the only objection of its Principal
	// is that it is not authenticated (Code says "unauthorized"). It never overrides
	// "forbidden". Off by default; the chat demo turns it on.
	AllowAnonymousPublish bool

	// OriginPatterns are the host patterns (path.Match, e.g. "*.example.com", or with a scheme
	// "https://app.example.com") allowed besides the request's own host. Empty: same host only.
	OriginPatterns []string

	Compression          bool // negotiate permessage-deflate (no context takeover)
	CompressionThreshold int  // bytes; smaller messages are sent uncompressed; 0 means 512

	MaxMessage       int64         // bytes per incoming message, after decompression; 0 means 128 KiB
	MaxSubscriptions int           // per connection; 0 means 32
	PublishRate      float64       // publishes per second per connection; 0 means 20
	PublishBurst     int           // 0 means 2*PublishRate, at least 1
	FrameRate        float64       // frames of any kind per second; past it: close 4029; 0 means 200
	PingInterval     time.Duration // WebSocket ping interval; 0 means 20s
	PongTimeout      time.Duration // a peer that does not answer a ping within this is dead; 0 means 10s
	WriteTimeout     time.Duration // per write; 0 means 10s
	MaxBatch         int           // messages taken from a subscription at once; 0 means 256

	Logger  *slog.Logger    // nil means slog.Default()
	OnStart func()          // if set, told of each accepted connection (for metrics)
	OnEnd   func(err error) // if set, told why each accepted connection ended

	once  sync.Once
	mu    sync.Mutex
	conns map[*conn]struct{}
	shut  bool
}

func (h *Handler) defaults() {
	if h.CompressionThreshold <= 0 {
		h.CompressionThreshold = 512
	}
	if h.MaxMessage <= 0 {
		h.MaxMessage = 128 << 10
	}
	if h.MaxSubscriptions <= 0 {
		h.MaxSubscriptions = 32
	}
	if h.PublishRate <= 0 {
		h.PublishRate = 20
	}
	if h.PublishBurst <= 0 {
		h.PublishBurst = max(1, int(2*h.PublishRate))
	}
	if h.FrameRate <= 0 {
		h.FrameRate = 200
	}
	if h.PingInterval <= 0 {
		h.PingInterval = 20 * time.Second
	}
	if h.PongTimeout <= 0 {
		h.PongTimeout = 10 * time.Second
	}
	if h.WriteTimeout <= 0 {
		h.WriteTimeout = 10 * time.Second
	}
	if h.MaxBatch <= 0 {
		h.MaxBatch = 256
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
}

// code names err for an error frame: this package's errors first, then the server's table.
func (h *Handler) code(err error) string {
	switch {
	case errors.Is(err, ErrBadRequest):
		return "bad_request"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrTooMany):
		return "too_many"
	case h.Code != nil:
		return h.Code(err)
	}
	return "internal"
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(h.defaults)
	h.mu.Lock()
	shut := h.shut
	h.mu.Unlock()
	if shut {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	var p Principal
	var perr error
	if h.Principal != nil {
		p, perr = h.Principal(r)
	} else {
		p = anyone{}
	}
	opts := &websocket.AcceptOptions{OriginPatterns: h.OriginPatterns}
	if h.Compression {
		// No context takeover: each message is compressed on its own, so a connection keeps no
		// 32 KiB window and no 1.2 MB flate writer between messages.
		opts.CompressionMode = websocket.CompressionNoContextTakeover
		opts.CompressionThreshold = h.CompressionThreshold
	}
	// Accept checks the Origin header against the request's host and OriginPatterns: without
	// that check any site a user visits could open a socket with the user's cookies
	// (Cross-Site WebSocket Hijacking). It answers 403 itself.
	c, err := websocket.Accept(smallBuffers{w}, r, opts)
	if err != nil {
		return // Accept has answered the HTTP request
	}
	if h.OnStart != nil {
		h.OnStart()
	}
	if perr != nil {
		code := websocket.StatusCode(CloseUnauthorized)
		switch h.code(perr) {
		case "forbidden", "origin":
			code = CloseForbidden
		case "overloaded", "unavailable", "rate_limited":
			code = CloseTryAgain
		}
		c.Close(code, reason(perr.Error()))
		h.end(perr)
		return
	}
	// The limit applies to the decompressed message: a small deflate bomb still stops at
	// MaxMessage bytes and the connection is closed with 1009.
	c.SetReadLimit(h.MaxMessage)
	cn := newConn(h, c, p, r.Context())
	if !h.track(cn) {
		c.Close(CloseGoingAway, "server is shutting down")
		h.end(hub.ErrClosed)
		return
	}
	defer h.untrack(cn)
	h.end(cn.serve())
}

func (h *Handler) end(err error) {
	if h.OnEnd != nil {
		h.OnEnd(err)
	}
}

func (h *Handler) track(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shut {
		return false
	}
	if h.conns == nil {
		h.conns = make(map[*conn]struct{})
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Handler) untrack(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// Shutdown closes every connection with 1001 and refuses new ones. http.Server.Shutdown does
// not wait for hijacked connections, so the server calls this itself (RegisterOnShutdown);
// connections with subscriptions have normally been ended with 1012 by hub.Close already.
func (h *Handler) Shutdown() {
	h.mu.Lock()
	h.shut = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
}

// Conns returns the number of open connections.
func (h *Handler) Conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// reason trims a close reason to the 123 bytes a close frame can carry, on a rune boundary.
func reason(s string) string {
	if len(s) <= 123 {
		return s
	}
	s = s[:123]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

// anyone is the Principal when none is configured: it may do everything.
type anyone struct{}

func (anyone) Identity() string               { return "" }
func (anyone) CanSubscribe(*hub.Filter) error { return nil }
func (anyone) CanPublish([]string) error      { return nil }
func (anyone) Expires() time.Time             { return time.Time{} }

// Buffer sizes of a connection after the upgrade. net/http hands over a 4 KiB reader and a
// 4 KiB writer, which coder/websocket keeps for the life of the connection: 8 KiB of an idle
// connection's memory. Frames from clients are small JSON ops, and a frame or message larger
// than a buffer bypasses it (bufio reads into and writes from the caller's slice), so small
// buffers cost at most one more system call for a large message.
const (
	readBufferSize  = 512
	writeBufferSize = 1024
)

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack swaps net/http's
// buffers for small ones. Bytes the client sent after the handshake that net/http has already
// buffered are read first.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil { // empty: net/http flushed the 101 before the hijack
		nc.Close()
		return nil, nil, err
	}
	// Accept keeps only what is in the reader's buffer (it Resets the reader onto nc), so the
	// bytes net/http had buffered go into the new buffer, not into a reader in front of nc.
	br := bufio.NewReaderSize(nc, readBufferSize)
	if n := brw.Reader.Buffered(); n > 0 {
		b := make([]byte, n)
		io.ReadFull(brw.Reader, b) // cannot fail: the bytes are buffered
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(b), nc), max(n, readBufferSize))
		if _, err := br.Peek(n); err != nil { // one read, from b
			nc.Close()
			return nil, nil, err
		}
	}
	// net/http's conn struct keeps pointing at its reader and writer for as long as ServeHTTP
	// runs, which is the connection's life: drop their 4 KiB buffers (we own them after
	// Hijack, and net/http does not touch them again).
	*brw.Reader = bufio.Reader{}
	*brw.Writer = bufio.Writer{}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, writeBufferSize)), nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }
