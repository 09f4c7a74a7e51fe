package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Transport opens subscriptions over one wire protocol. Adding WebSocket or long polling to the
// bench means implementing these two small interfaces; the rest of the bench is shared.
type Transport interface {
	Name() string
	// Open subscribes to topics over conn (already dialled to base's host) and returns once the
	// server has answered: for Herald, an answered subscription is a registered one.
	Open(ctx context.Context, conn net.Conn, base *url.URL, topics []string) (Conn, error)
}

// Conn is one open subscription.
type Conn interface {
	// Read blocks until data arrives, then calls deliver with the data of each complete
	// message in order, and the time the bytes were read (UnixNano).
	Read(deliver func(data []byte, at int64)) error
	Close() error
}

// Transports lists the transports by name.
var Transports = map[string]Transport{"sse": SSE{}}

// SSE subscribes with GET /events. It speaks HTTP/1.1 by hand over the dialled connection:
// net/http's client would add two goroutines and a large buffer per connection to the
// client side of the measurement.
type SSE struct{}

func (SSE) Name() string { return "sse" }

func (SSE) Open(ctx context.Context, c net.Conn, base *url.URL, topics []string) (Conn, error) {
	q := url.Values{"topic": topics}
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s/events?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
		strings.TrimSuffix(base.Path, "/"), q.Encode(), base.Host)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, req.String()); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("bench: GET /events: %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return &sseConn{c: c, body: resp.Body, buf: make([]byte, 0, 8192)}, nil
}

type sseConn struct {
	c    net.Conn
	body io.ReadCloser // de-chunks when the server chose chunked encoding
	buf  []byte        // unparsed bytes: at most one partial line
}

func (s *sseConn) Read(deliver func([]byte, int64)) error {
	if len(s.buf) == cap(s.buf) { // a line longer than the buffer: grow it
		s.buf = append(s.buf, 0)[:len(s.buf)]
	}
	n, err := s.body.Read(s.buf[len(s.buf):cap(s.buf)])
	at := time.Now().UnixNano()
	s.buf = s.buf[:len(s.buf)+n]
	rest := s.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := rest[:i]
		rest = rest[i+1:]
		if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			deliver(d, at)
		}
	}
	s.buf = s.buf[:copy(s.buf, rest)]
	if n > 0 {
		return nil
	}
	return err
}

func (s *sseConn) Close() error { return s.c.Close() }
