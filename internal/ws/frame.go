package ws

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/herald-push/herald/internal/hub"
)

// Frames are built by gobwas/ws (headers, RSV bits, close bodies); this file only decides which
// bytes are shared. A message's frame is the same bytes for every connection: server frames
// are not masked, and with permessage-deflate without context takeover each message is
// compressed on its own, so its compressed frame is the same for every connection too. Both
// are cached on the message (hub.Message.Encoded), so a fan-out to N connections encodes and
// compresses once, and each connection only appends the bytes to its write buffer.
var (
	frameSlot     = hub.EncodingSlot() // header + JSON
	deflateSlot   = hub.EncodingSlot() // header with RSV1 + compressed JSON
	noFrame       = []byte{}
	compressLevel = flate.DefaultCompression // paid once per message, not per connection
	flateWriters  = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, compressLevel); return w }}
	flateReaders  = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// messageFrame returns m's text frame, compressed when the connection negotiated compression
// and the JSON is at least threshold bytes.
func messageFrame(m *hub.Message, compress bool, threshold int) []byte {
	plain := m.Encoded(frameSlot, func(m *hub.Message) []byte { return textFrame(encoded(m)) })
	if !compress || len(payloadOf(plain)) < threshold {
		return plain
	}
	z := m.Encoded(deflateSlot, func(*hub.Message) []byte {
		f, err := deflateFrame(payloadOf(plain))
		if err != nil {
			return noFrame
		}
		return f
	})
	if len(z) == 0 {
		return plain // compress/flate does not fail writing to memory; stay correct anyway
	}
	return z
}

// payloadOf returns the payload of an unmasked frame compiled by textFrame: the header is the
// one size that gobwas/ws gives for the length that remains.
func payloadOf(frame []byte) []byte {
	for _, hs := range [...]int{2, 4, 10} {
		if len(frame) >= hs && ws.HeaderSize(ws.Header{Length: int64(len(frame) - hs)}) == hs {
			return frame[hs:]
		}
	}
	return nil
}

// textFrame compiles one unfragmented, unmasked text frame.
func textFrame(p []byte) []byte {
	return ws.MustCompileFrame(ws.NewTextFrame(p))
}

// appendText appends a text frame carrying p to b, compressed if compress is set.
func appendText(b, p []byte, compress bool) []byte {
	if compress {
		if f, err := deflateFrame(p); err == nil {
			return append(b, f...)
		}
	}
	return appendFrame(b, ws.NewTextFrame(p))
}

// appendFrame appends f, compiled by gobwas/ws, to b.
func appendFrame(b []byte, f ws.Frame) []byte {
	w := appender{b}
	ws.WriteFrame(&w, f) // cannot fail: appender.Write does not
	return w.b
}

// deflateFrame compiles a compressed text frame: RSV1 set, the payload deflated on its own
// (no context takeover) with the 0x00 0x00 0xff 0xff tail removed (RFC 7692 7.2.1).
func deflateFrame(p []byte) ([]byte, error) {
	var z bytes.Buffer
	z.Grow(len(p)/2 + 64)
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	w := wsflate.NewWriter(&z, func(w io.Writer) wsflate.Compressor {
		fw.Reset(w)
		return fw
	})
	if _, err := w.Write(p); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	f := ws.NewTextFrame(z.Bytes())
	var err error
	if f.Header, err = wsflate.SetBit(f.Header); err != nil {
		return nil, err
	}
	return ws.CompileFrame(f)
}

// inflate decompresses a message's payload, reading at most limit+1 bytes of output so that
// a small deflate bomb stops at the limit (the caller answers 1009 when it gets more than
// limit).
func inflate(dst, p []byte, limit int64) ([]byte, error) {
	fr := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(fr)
	r := wsflate.NewReader(bytes.NewReader(p), func(r io.Reader) wsflate.Decompressor {
		fr.(flate.Resetter).Reset(r, nil)
		return fr
	})
	w := appender{dst}
	_, err := io.Copy(&w, io.LimitReader(r, limit+1))
	return w.b, err
}

// appender is an io.Writer appending to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// closeFrame compiles a close frame with code and reason; code 0 means no status (an empty
// body, as when echoing a close that carried none).
func closeFrame(code int, why string) []byte {
	if code == 0 {
		return ws.MustCompileFrame(ws.NewCloseFrame(nil))
	}
	return ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason(why))))
}
