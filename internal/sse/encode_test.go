package sse

import (
	"bytes"
	"strings"
	"testing"

	"github.com/herald-push/herald/internal/hub"
)

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		id, event, data, want string
	}{
		{"e-1", "", "hello", "id: e-1\ndata: hello\n\n"},
		{"e-2", "order.updated", `{"a":1}`, "id: e-2\nevent: order.updated\ndata: {\"a\":1}\n\n"},
		{"e-3", "", "a\nb\r\nc\rd", "id: e-3\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"e-4", "", "", "id: e-4\ndata: \n\n"},
		{"e-5", "", "trailing\n", "id: e-5\ndata: trailing\ndata: \n\n"},
		{"e-6", "", "\nid: 9\nevent: x\n\ndata: y", "id: e-6\ndata: \ndata: id: 9\ndata: event: x\ndata: \ndata: data: y\n\n"},
		{"", "herald.gap", "{}", "event: herald.gap\ndata: {}\n\n"},
	}
	for _, tt := range tests {
		if got := string(AppendEvent(nil, tt.id, tt.event, []byte(tt.data))); got != tt.want {
			t.Errorf("AppendEvent(%q, %q, %q) = %q, want %q", tt.id, tt.event, tt.data, got, tt.want)
		}
	}
}

func TestEncodedOnce(t *testing.T) {
	m := &hub.Message{ID: "e-1", Topics: []string{"a"}, Data: []byte("x")}
	a, b := Encoded(m, FormatRaw), Encoded(m, FormatRaw)
	if &a[0] != &b[0] {
		t.Error("the raw frame was encoded twice")
	}
	env := string(Encoded(m, FormatEnvelope))
	if !strings.Contains(env, `data: {"id":"e-1","topic":"a","data":"x"}`) {
		t.Errorf("envelope frame %q", env)
	}
}

// FuzzEncode checks that what the encoder writes, parsed as EventSource parses it, is the
// message again (with line ends normalised to LF), and that nothing else is dispatched: a
// publisher cannot inject a field or an event.
func FuzzEncode(f *testing.F) {
	f.Add("e-1", "update", []byte("hello\nworld"))
	f.Add("e-2", "", []byte("\r\n\r\nid: x\n\nevent: y\ndata: z"))
	f.Add("e-3", "", []byte(":comment\nretry: 1"))
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		if strings.ContainsAny(id, "\r\n\x00") || id == "" {
			return // the hub never makes such ids
		}
		if hub.ValidateEvent(event) != nil {
			return
		}
		var stream []byte
		stream = AppendEvent(stream, id, event, data)
		stream = AppendComment(stream, "heartbeat\nid: injected")
		r := NewReader(bytes.NewReader(stream))
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("no event decoded from %q: %v", stream, err)
		}
		want := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
		wantType := event
		if wantType == "" {
			wantType = "message"
		}
		if ev.Data != want || ev.ID != id || ev.Type != wantType {
			t.Fatalf("decode(encode) = %+v, want id %q type %q data %q", ev, id, wantType, want)
		}
		if ev, err := r.Next(); err == nil {
			t.Fatalf("a second event %+v was decoded from one message: injection", ev)
		}
		if r.LastID() != id {
			t.Fatalf("LastID = %q after a comment, want %q", r.LastID(), id)
		}
	})
}
