// Package ws serves subscriptions and publishing over WebSocket, with a small JSON protocol in
// text frames (docs/api.md, "WebSocket: GET /ws").
//
// A connection may hold several subscriptions; each one is a hub.Subscription with exactly the
// semantics of the SSE transport: catch-up from history or retained values, then live messages,
// a gap notice first when the resume point cannot be honoured, eviction of slow consumers.
// Frames are read, checked, built and compressed with github.com/gobwas/ws. An idle connection
// holds no goroutine: its socket waits in a poller (internal/netpoll) until a frame arrives,
// and a writer goroutine exists only while there is something to send (docs/design-ws.md).
package ws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/netpoll"
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
	WriteTimeout     time.Duration // per write, and for the rest of a frame that has begun to arrive; 0 means 10s
	MaxBatch         int           // messages taken from a subscription at once; 0 means 256

	// Detach, if set, is called when an upgraded connection outlives its handler (ServeHTTP
	// returns at once; reading and writing go on without it), and release when the
	// connection ends: the server moves its connection-limit slots there, which its middleware
	// would otherwise free when the handler returns.
	Detach func(r *http.Request) (release func())

	Logger  *slog.Logger    // nil means slog.Default()
	OnStart func()          // if set, told of each accepted connection (for metrics)
	OnEnd   func(err error) // if set, told why each accepted connection ended

	once   sync.Once
	poller netpoll.Poller // idle connections wait here for their next frame
	mu     sync.Mutex
	conns  map[*conn]struct{}
	shut   bool
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
	// Without an Origin check any site a user visits could open a socket with the user's
	// cookies (Cross-Site WebSocket Hijacking).
	if !upgradeRequested(r) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "WebSocket protocol violation: expected an Upgrade: websocket request", http.StatusUpgradeRequired)
		return
	}
	if err := checkOrigin(r, h.OriginPatterns); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	u := ws.HTTPUpgrader{Timeout: h.WriteTimeout}
	var ext *wsflate.Extension
	if h.Compression {
		// No context takeover: each message is compressed on its own, so a connection keeps no
		// 32 KiB window between messages, and a message's compressed frame is the same for
		// every connection (it is compressed once, frame.go).
		ext = &wsflate.Extension{Parameters: wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}}
		u.Negotiate = ext.Negotiate
	}
	nc, brw, _, err := u.Upgrade(r, smallBuffers{w})
	if err != nil {
		if nc != nil {
			nc.Close() // the upgrader has answered with an HTTP error
		}
		return
	}
	compress := false
	if ext != nil {
		_, compress = ext.Accepted()
	}
	if h.OnStart != nil {
		h.OnStart()
	}
	c := newConn(h, nc, brw.Reader, p, compress, r.Context())
	if h.Detach != nil {
		c.release = h.Detach(r)
	}
	if perr != nil {
		code := CloseUnauthorized
		switch h.code(perr) {
		case "forbidden", "origin":
			code = CloseForbidden
		case "overloaded", "unavailable", "rate_limited":
			code = CloseTryAgain
		}
		c.end(&closeError{code: code, reason: perr.Error(), cause: perr})
		return
	}
	if !h.track(c) {
		c.end(&closeError{code: CloseGoingAway, reason: "server is shutting down", cause: hub.ErrClosed})
		return
	}
	// The handler's goroutine returns now; net/http forgets a hijacked connection.
	c.start()
}

// upgradeRequested reports whether r asks for a WebSocket at all; other requests get 426, as
// before the switch to gobwas/ws (whose upgrader answers 400 after hijacking).
func upgradeRequested(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// checkOrigin allows a request without Origin (not a browser), one from the request's own
// host, and one whose host (or scheme://host, for a pattern with a scheme) matches a pattern.
// These are the rules coder/websocket's Accept applied before the switch to gobwas/ws.
func checkOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("failed to parse Origin header %q: %w", origin, err)
	}
	if strings.EqualFold(r.Host, u.Host) {
		return nil
	}
	for _, pattern := range patterns {
		target := u.Host
		if strings.Contains(pattern, "://") {
			target = u.Scheme + "://" + u.Host
		}
		ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(target))
		if err != nil {
			return errors.New(http.StatusText(http.StatusForbidden)) // a bad pattern allows nothing
		}
		if ok {
			return nil
		}
	}
	if u.Host == "" {
		return fmt.Errorf("request Origin %q is not a valid URL with a host", origin)
	}
	return fmt.Errorf("request Origin %q is not authorized for Host %q", u.Host, r.Host)
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
// 4 KiB writer; we keep a 512-byte reader for the life of the connection (frames from clients
// are small JSON ops, and a larger one bypasses the buffer: bufio reads into the caller's
// slice), and a writer only for the handshake's response (frames are written from the
// connection's own buffer, conn.go).
const (
	readBufferSize  = 512
	writeBufferSize = 512
)

// smallBuffers is the ResponseWriter given to the upgrader: its Hijack swaps net/http's
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
	// The bytes net/http had buffered go into the new buffer, so that the poller (which sees
	// only the socket) is not needed to find them: reading starts at once when there are any.
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
