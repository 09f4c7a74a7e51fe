package bench

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// WS subscribes over GET /ws with one subscribe op, and counts the subscriber as ready when
// the server's subscribed frame arrives: from then on every published message is owed to it.
//
// It reads frames with gobwas/ws over the dialled connection, one bufio.Reader per subscriber,
// and handles every frame already buffered in one Read: a library client that takes one
// message per call, with a context, a lock and a timer each time (coder/websocket, which the
// bench used at first), cost the shared cores more than the server did at saturation, so the
// client, not the server, set the figure.
type WS struct {
	Compress bool // offer permessage-deflate (no context takeover)
}

func (WS) Name() string { return "ws" }

func (t WS) Open(ctx context.Context, c net.Conn, base *url.URL, topics []string) (Conn, error) {
	u := *base
	u.Scheme = "ws"
	u.Path = strings.TrimSuffix(base.Path, "/") + "/ws"
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	d := ws.Dialer{}
	if t.Compress {
		d.Extensions = []httphead.Option{wsflate.DefaultParameters.Option()}
	}
	br, hs, err := d.Upgrade(c, &u)
	if err != nil {
		return nil, fmt.Errorf("bench: GET /ws: %w", err)
	}
	if br == nil {
		br = bufio.NewReaderSize(c, 4096)
	}
	w := &wsConn{c: c, br: br}
	w.rd = wsutil.Reader{Source: br, State: ws.StateClientSide, MaxMessageSize: 1 << 20}
	for _, e := range hs.Extensions {
		if string(e.Name) == wsflate.ExtensionName {
			w.rd.State |= ws.StateExtended // RSV1 marks a compressed message
			w.rd.Extensions = []wsutil.RecvExtension{&w.ms}
			w.fr = wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor { return inflater{flate.NewReader(r)} })
		}
	}
	var req bytes.Buffer
	req.WriteString(`{"op":"subscribe","topics":[`)
	for i, topic := range topics {
		if i > 0 {
			req.WriteByte(',')
		}
		req.WriteString(strconv.Quote(topic))
	}
	req.WriteString(`],"ref":"bench"}`)
	if err := wsutil.WriteClientText(c, req.Bytes()); err != nil {
		return nil, err
	}
	// Nothing is retained on bench topics: the first message is subscribed or an error.
	for {
		b, err := w.next()
		if err != nil {
			return nil, fmt.Errorf("bench: waiting for subscribed: %w", err)
		}
		if bytes.HasPrefix(b, []byte(`{"type":"subscribed"`)) {
			break
		}
		if bytes.HasPrefix(b, []byte(`{"type":"error"`)) {
			return nil, fmt.Errorf("bench: subscribe: %s", b)
		}
	}
	c.SetDeadline(time.Time{})
	return w, nil
}

type wsConn struct {
	c   net.Conn
	br  *bufio.Reader
	rd  wsutil.Reader
	ms  wsflate.MessageState // whether the message being read is compressed
	fr  *wsflate.Reader      // nil unless compression was negotiated
	buf bytes.Buffer         // one message, reused
}

// next returns the next data message, answering pings (the server's keepalive) on the way.
func (w *wsConn) next() ([]byte, error) {
	for {
		hdr, err := w.rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if hdr.OpCode.IsControl() {
			ctl := wsutil.ControlHandler{Src: &w.rd, Dst: w.c, State: ws.StateClientSide, DisableSrcCiphering: true}
			if err := ctl.Handle(hdr); err != nil {
				return nil, err
			}
			continue
		}
		var src io.Reader = &w.rd
		if w.fr != nil && w.ms.IsCompressed() {
			w.fr.Reset(&w.rd)
			src = w.fr
		}
		w.buf.Reset()
		if _, err := w.buf.ReadFrom(src); err != nil {
			return nil, err
		}
		return w.buf.Bytes(), nil
	}
}

// messageFrame starts every message frame (internal/ws encodes it once, with this prefix).
var messageFrame = []byte(`{"type":"message"`)

// Read delivers the next message and every other one already buffered.
func (w *wsConn) Read(deliver func([]byte, int64)) error {
	for {
		b, err := w.next()
		if err != nil {
			return err
		}
		// The payload is the first '~' of the frame: ids and topics hold none.
		if bytes.HasPrefix(b, messageFrame) {
			deliver(b, time.Now().UnixNano())
		}
		if w.br.Buffered() == 0 {
			return nil
		}
	}
}

func (w *wsConn) Close() error { return w.c.Close() }

// inflater lets wsflate.Reader reset one flate reader for each message (wsflate.ReadResetter)
// instead of making a new one, with its 40 KB of state, per message.
type inflater struct{ io.ReadCloser }

func (f inflater) Reset(r io.Reader) { f.ReadCloser.(flate.Resetter).Reset(r, nil) }
