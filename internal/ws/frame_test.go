package ws

import (
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"testing"

	"github.com/herald-push/herald/internal/hub"
)

// A message's frame, and its compressed frame, are built once and shared by every connection:
// two connections get the same bytes (the same backing array), not equal copies.
func TestMessageFrameCachedOnce(t *testing.T) {
	m := &hub.Message{Seq: 1, ID: "e-1", Topics: []string{"t"}, Data: []byte(strings.Repeat("hello ", 200))}
	plainA, plainB := messageFrame(m, false, 512), messageFrame(m, false, 512)
	zA, zB := messageFrame(m, true, 512), messageFrame(m, true, 512)
	if &plainA[0] != &plainB[0] {
		t.Error("the plain frame was encoded twice")
	}
	if &zA[0] != &zB[0] {
		t.Error("the compressed frame was compressed twice")
	}
	if zA[0] != 0xC1 { // FIN, RSV1, text
		t.Errorf("compressed frame starts with %#x, want 0xc1", zA[0])
	}
	if len(zA) >= len(plainA) {
		t.Errorf("compressed frame %d bytes, plain %d", len(zA), len(plainA))
	}
	got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payloadOf(zA)), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
	if err != nil || !bytes.Equal(got, payloadOf(plainA)) {
		t.Errorf("inflated %q (%v), want %q", got, err, payloadOf(plainA))
	}
	// Under the threshold the plain frame is sent, compression or not.
	small := &hub.Message{Seq: 2, ID: "e-2", Topics: []string{"t"}, Data: []byte("hi")}
	if a, b := messageFrame(small, true, 512), messageFrame(small, false, 512); &a[0] != &b[0] {
		t.Error("a small message was compressed")
	}
}

func TestPayloadOf(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte("x"), n)
		if got := payloadOf(textFrame(p)); !bytes.Equal(got, p) {
			t.Errorf("payload of %d bytes: got %d bytes", n, len(got))
		}
	}
}
