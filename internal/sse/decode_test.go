package sse

import (
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
