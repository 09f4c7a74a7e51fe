package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// A stream cut in the middle of a frame must not advance the last id: the id line arrived but
// the event did not, and resuming from that id would skip the event. EventSource commits the
// id only when the blank line dispatches the event.
func TestReaderCommitsIDOnlyOnDispatch(t *testing.T) {
	tests := []struct {
		stream, wantLast string
		wantEvents       int
	}{
		{"id: e-1\ndata: one\n\nid: e-2\ndata: tw", "e-1", 1},
		{"id: e-1\ndata: one\n\nid: e-2\n", "e-1", 1},
		{"id: e-1\ndata: one\n\nid: e-2\n\n", "e-2", 1}, // an id with no data is committed
		{"id: e-1\ndata: one\n\nid: e-2\ndata: two\n\n", "e-2", 2},
		{"id: e-1\n", "", 0},
	}
	for _, tt := range tests {
		r := NewReader(strings.NewReader(tt.stream))
		n := 0
		for {
			if _, err := r.Next(); err != nil {
				if err != io.EOF {
					t.Errorf("%q: %v", tt.stream, err)
				}
				break
			}
			n++
		}
		if r.LastID() != tt.wantLast || n != tt.wantEvents {
			t.Errorf("%q: LastID %q after %d events, want %q after %d", tt.stream, r.LastID(), n, tt.wantLast, tt.wantEvents)
		}
	}
}

// FuzzReader feeds arbitrary streams to the parser: it never panics, dispatched data never
// holds a CR, and the last id never comes from a frame the stream cut off (reading the same
// stream with a blank line appended may only commit that frame's id, never change earlier ones).
func FuzzReader(f *testing.F) {
	f.Add([]byte("id: e-1\ndata: one\n\nid: e-2\ndata: tw"))
	f.Add([]byte("retry: 10\n\n: comment\r\nevent: x\r\ndata: a\r\ndata: b\r\r"))
	f.Add([]byte("id: a\x00b\ndata\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := NewReader(bytes.NewReader(stream))
		ids := []string{""}
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			if strings.ContainsRune(ev.Data, '\r') {
				t.Fatalf("data %q holds a CR", ev.Data)
			}
			ids = append(ids, ev.ID)
		}
		if last := r.LastID(); last != ids[len(ids)-1] && !strings.Contains(string(stream), "id") {
			t.Fatalf("LastID %q without any id field", last)
		}
	})
}
