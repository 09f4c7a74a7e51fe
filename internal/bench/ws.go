package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// WS subscribes over GET /ws with one subscribe op, and counts the subscriber as ready when
// the server's subscribed frame arrives: from then on every published message is owed to it.
type WS struct {
	Compress bool // offer permessage-deflate (no context takeover)
}

func (WS) Name() string { return "ws" }

func (t WS) Open(ctx context.Context, c net.Conn, base *url.URL, topics []string) (Conn, error) {
	// The library dials through an http.Client: hand it the connection already dialled from
	// the chosen source address, once.
	dialled := false
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if dialled {
				return nil, errors.New("bench: one connection per subscriber")
			}
			dialled = true
			return c, nil
		},
	}}
	u := *base
	u.Scheme = "ws"
	if base.Scheme == "https" {
		u.Scheme = "wss"
	}
	u.Path = strings.TrimSuffix(base.Path, "/") + "/ws"
	opts := &websocket.DialOptions{HTTPClient: hc}
	if t.Compress {
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	wc, _, err := websocket.Dial(ctx, u.String(), opts)
	if err != nil {
		return nil, fmt.Errorf("bench: GET /ws: %w", err)
	}
	wc.SetReadLimit(1 << 20)
	var req bytes.Buffer
	req.WriteString(`{"op":"subscribe","topics":[`)
	for i, topic := range topics {
		if i > 0 {
			req.WriteByte(',')
		}
		req.WriteString(strconv.Quote(topic))
	}
	req.WriteString(`],"ref":"bench"}`)
	if err := wc.Write(ctx, websocket.MessageText, req.Bytes()); err != nil {
		wc.CloseNow()
		return nil, err
	}
	// Nothing is retained on bench topics: the first frame is subscribed or an error.
	for {
		_, b, err := wc.Read(ctx)
		if err != nil {
			wc.CloseNow()
			return nil, fmt.Errorf("bench: waiting for subscribed: %w", err)
		}
		if bytes.HasPrefix(b, []byte(`{"type":"subscribed"`)) {
			break
		}
		if bytes.HasPrefix(b, []byte(`{"type":"error"`)) {
			wc.CloseNow()
			return nil, fmt.Errorf("bench: subscribe: %s", b)
		}
	}
	return &wsConn{c: wc}, nil
}

type wsConn struct {
	c   *websocket.Conn
	buf bytes.Buffer // one frame, reused
}

// messageFrame starts every message frame (internal/ws encodes it once, with this prefix).
var messageFrame = []byte(`{"type":"message"`)

func (w *wsConn) Read(deliver func([]byte, int64)) error {
	// Close ends a blocked read; no context deadline is needed.
	_, r, err := w.c.Reader(context.Background())
	if err != nil {
		return err
	}
	w.buf.Reset()
	if _, err := w.buf.ReadFrom(r); err != nil {
		return err
	}
	at := time.Now().UnixNano()
	// The payload is the first '~' of the frame: ids and topics hold none.
	if b := w.buf.Bytes(); bytes.HasPrefix(b, messageFrame) {
		deliver(b, at)
	}
	return nil
}

func (w *wsConn) Close() error { return w.c.CloseNow() }
