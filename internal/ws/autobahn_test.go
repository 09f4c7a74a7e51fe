package ws_test

// The important categories of the Autobahn test suite, against our endpoint, with frames
// written by hand: framing (1-5), UTF-8 (6), close handling (7), limits (9) and compression
// (12-13). Only tests write raw frames.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/ws"
)

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

type rawFrame struct {
	fin, rsv1 bool
	op        byte
	payload   []byte
}

// rawDial performs the opening handshake by hand, optionally offering permessage-deflate.
func rawDial(t *testing.T, srv *heraldtest.Server, extensions string) (*rawConn, *http.Response) {
	t.Helper()
	return rawDialEarly(t, srv, extensions, nil)
}

// rawDialEarly sends early right behind the handshake request, in the same write, as a client
// that does not wait for the server's answer may.
func rawDialEarly(t *testing.T, srv *heraldtest.Server, extensions string, early []byte) (*rawConn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	key := make([]byte, 16)
	rand.Read(key)
	req := "GET /ws HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\n"
	if extensions != "" {
		req += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	io.WriteString(c, req+"\r\n"+string(early))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawConn{t: t, c: c, br: br}, resp
}

// write sends one frame, masked as a client must unless unmasked is set.
func (r *rawConn) write(f rawFrame, unmasked bool) {
	if _, err := r.c.Write(f.encode(unmasked)); err != nil {
		r.t.Logf("write: %v", err) // the server may have closed already
	}
}

func (f rawFrame) encode(unmasked bool) []byte {
	var b []byte
	b0 := f.op
	if f.fin {
		b0 |= 0x80
	}
	if f.rsv1 {
		b0 |= 0x40
	}
	b = append(b, b0)
	mask := byte(0x80)
	if unmasked {
		mask = 0
	}
	n := len(f.payload)
	switch {
	case n < 126:
		b = append(b, mask|byte(n))
	case n < 1<<16:
		b = append(b, mask|126, byte(n>>8), byte(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(f.payload)
	if !unmasked {
		key := []byte{0x12, 0x34, 0x56, 0x78}
		b = append(b, key...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(b, p...)
}

func (r *rawConn) read() (rawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{fin: h[0]&0x80 != 0, rsv1: h[0]&0x40 != 0, op: h[0] & 0x0F}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(r.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(r.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(r.br, f.payload)
	return f, err
}

// closeCode reads until a close frame and returns its code, or -1 when the connection ended
// without one.
func (r *rawConn) closeCode() int {
	r.t.Helper()
	for {
		f, err := r.read()
		if err != nil {
			return -1 // closed without a close frame
		}
		if f.op == opClose {
			if len(f.payload) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(f.payload))
		}
	}
}

// text reads until a text frame and returns it, answering nothing.
func (r *rawConn) text() string {
	r.t.Helper()
	for {
		f, err := r.read()
		if err != nil {
			r.t.Fatalf("no text frame: %v", err)
		}
		switch f.op {
		case opText:
			if f.rsv1 {
				return string(inflate(r.t, f.payload))
			}
			return string(f.payload)
		case opClose:
			r.t.Fatalf("closed with %x, want a text frame", f.payload)
		}
	}
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func deflate(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func inflate(t *testing.T, p []byte) []byte {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return b
}

var ping = []byte(`{"op":"ping","ref":"r"}`)

func TestAutobahnFraming(t *testing.T) {
	srv := newServer(t, &ws.Handler{MaxMessage: 4096})
	cases := []struct {
		name   string
		frames []rawFrame
		mask   bool // send unmasked
		want   int  // close code; 0: a pong text frame
	}{
		{"2.x ping control frame is answered", []rawFrame{{fin: true, op: opPing, payload: []byte("hi")}, {fin: true, op: opText, payload: ping}}, false, 0},
		{"5.x fragmented text", []rawFrame{{op: opText, payload: ping[:5]}, {op: opCont, payload: ping[5:9]}, {fin: true, op: opCont, payload: ping[9:]}}, false, 0},
		{"5.x ping between fragments", []rawFrame{{op: opText, payload: ping[:5]}, {fin: true, op: opPing}, {fin: true, op: opCont, payload: ping[5:]}}, false, 0},
		{"1.x unmasked client frame", []rawFrame{{fin: true, op: opText, payload: ping}}, true, -1}, // RFC 6455 5.1: the server closes; the library drops it at once
		{"3.x reserved bit without extension", []rawFrame{{fin: true, rsv1: true, op: opText, payload: ping}}, false, 1002},
		{"4.x reserved opcode", []rawFrame{{fin: true, op: 0x3, payload: ping}}, false, 1002},
		{"2.5 control frame over 125 bytes", []rawFrame{{fin: true, op: opPing, payload: bytes.Repeat([]byte("x"), 126)}}, false, 1002},
		{"5.1 fragmented ping", []rawFrame{{op: opPing, payload: []byte("a")}, {fin: true, op: opCont, payload: []byte("b")}}, false, 1002},
		{"5.9 continuation without start", []rawFrame{{fin: true, op: opCont, payload: ping}}, false, 1002},
		{"5.x new message inside fragments", []rawFrame{{op: opText, payload: ping[:5]}, {fin: true, op: opText, payload: ping}}, false, 1002},
		{"6.x invalid UTF-8", []rawFrame{{fin: true, op: opText, payload: []byte("{\"op\":\"ping\",\"ref\":\"\xc0\xaf\"}")}}, false, 1007},
		{"6.x UTF-8 split across fragments is valid", []rawFrame{{op: opText, payload: []byte(`{"op":"ping","ref":"` + "\xe2\x82")}, {fin: true, op: opCont, payload: []byte("\xac\"}")}}, false, 0},
		{"6.x surrogate half is invalid", []rawFrame{{fin: true, op: opText, payload: []byte("\"\xed\xa0\x80\"")}}, false, 1007},
		{"7.1 close is echoed", []rawFrame{{fin: true, op: opClose, payload: closePayload(1000, "bye")}}, false, 1000},
		{"7.9 invalid close code", []rawFrame{{fin: true, op: opClose, payload: closePayload(1005, "")}}, false, 1002},
		{"7.3 close payload of one byte", []rawFrame{{fin: true, op: opClose, payload: []byte{3}}}, false, 1002},
		{"7.9 close code over 4999", []rawFrame{{fin: true, op: opClose, payload: closePayload(5000, "")}}, false, 1002},
		{"7.5 close reason not UTF-8", []rawFrame{{fin: true, op: opClose, payload: closePayload(1000, "\xff")}}, false, 1002},
		{"7.x private close code is echoed", []rawFrame{{fin: true, op: opClose, payload: closePayload(4000, "")}}, false, 4000},
		{"9.x message over the limit", []rawFrame{{fin: true, op: opText, payload: bytes.Repeat([]byte(" "), 5000)}}, false, 1009},
		{"9.x fragments over the limit", []rawFrame{{op: opText, payload: bytes.Repeat([]byte(" "), 3000)}, {fin: true, op: opCont, payload: bytes.Repeat([]byte(" "), 3000)}}, false, 1009},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := rawDial(t, srv, "")
			for _, f := range tt.frames {
				r.write(f, tt.mask)
			}
			if tt.want == 0 {
				if got := r.text(); !strings.Contains(got, `"type":"pong"`) {
					t.Errorf("got %s, want a pong", got)
				}
				return
			}
			if got := r.closeCode(); got != tt.want {
				t.Errorf("close code %d, want %d", got, tt.want)
			}
		})
	}
}

// Frames that arrive with the handshake are buffered by net/http before the upgrade; they must
// reach the WebSocket reader intact, also when they exceed the connection's small read buffer.
func TestFramesSentWithTheHandshake(t *testing.T) {
	srv := newServer(t, &ws.Handler{})
	big := append(bytes.Clone(ping), bytes.Repeat([]byte(" "), 3000)...) // valid JSON
	var early []byte
	early = append(early, rawFrame{fin: true, op: opText, payload: ping}.encode(false)...)
	early = append(early, rawFrame{fin: true, op: opText, payload: big}.encode(false)...)
	r, _ := rawDialEarly(t, srv, "", early)
	for i := range 2 {
		if got := r.text(); !strings.Contains(got, `"type":"pong"`) {
			t.Fatalf("reply %d: got %s, want a pong", i, got)
		}
	}
}

func TestAutobahnCompression(t *testing.T) {
	srv := newServer(t, &ws.Handler{Compression: true, CompressionThreshold: 100, MaxMessage: 64 << 10})
	r, resp := rawDial(t, srv, "permessage-deflate; client_no_context_takeover; server_no_context_takeover")
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("extension not negotiated: %q", ext)
	}
	// 12.x: a compressed message is understood, and a reply over the threshold is compressed.
	long := `{"op":"ping","ref":"` + strings.Repeat("abc", 40) + `"}`
	r.write(rawFrame{fin: true, rsv1: true, op: opText, payload: deflate([]byte(long))}, false)
	f, err := r.read()
	if err != nil || f.op != opText || !f.rsv1 {
		t.Fatalf("reply %+v %v, want a compressed text frame", f, err)
	}
	if got := string(inflate(t, f.payload)); !strings.Contains(got, `"type":"pong"`) {
		t.Fatalf("reply %s, want a pong", got)
	}
	// 12.x: a compressed message in fragments (RSV1 on the first only) is understood.
	z := deflate([]byte(long))
	r.write(rawFrame{rsv1: true, op: opText, payload: z[:10]}, false)
	r.write(rawFrame{fin: true, op: opCont, payload: z[10:]}, false)
	if got := r.text(); !strings.Contains(got, `"type":"pong"`) {
		t.Fatalf("reply to a fragmented compressed message: %s, want a pong", got)
	}
	// 13.x and the deflate bomb: 1 MB of spaces is 1 KB compressed; the decompressed size is
	// capped, and the connection is closed with 1009.
	bomb := deflate(bytes.Repeat([]byte(" "), 1<<20))
	t.Logf("bomb: %d bytes inflating to %d", len(bomb), 1<<20)
	r.write(rawFrame{fin: true, rsv1: true, op: opText, payload: bomb}, false)
	if got := r.closeCode(); got != 1009 {
		t.Errorf("deflate bomb: close %d, want 1009", got)
	}
}

func TestAutobahnCompressionNotNegotiated(t *testing.T) {
	srv := newServer(t, &ws.Handler{Compression: false})
	r, resp := rawDial(t, srv, "permessage-deflate")
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("compression off, but negotiated %q", ext)
	}
	r.write(rawFrame{fin: true, rsv1: true, op: opText, payload: deflate(ping)}, false)
	if got := r.closeCode(); got != 1002 {
		t.Errorf("compressed frame without the extension: close %d, want 1002", got)
	}
}

func TestAutobahnServerCloseHandshake(t *testing.T) {
	// 7.x: a server-initiated close is answered by the client and the TCP connection ends.
	srv := newServer(t, nil)
	r, _ := rawDial(t, srv, "")
	r.write(rawFrame{fin: true, op: opText, payload: []byte(`{"op":"ping"}`)}, false)
	r.text()
	srv.Server.CloseWebSockets()
	if got := r.closeCode(); got != ws.CloseGoingAway {
		t.Fatalf("close %d, want %d", got, ws.CloseGoingAway)
	}
	r.write(rawFrame{fin: true, op: opClose, payload: closePayload(ws.CloseGoingAway, "")}, false)
	if _, err := r.read(); err != io.EOF {
		t.Errorf("after the close handshake: %v, want EOF", err)
	}
}
