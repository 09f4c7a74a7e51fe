package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/ws"
)

// frame is any server-to-client frame.
type frame struct {
	Type, ID, Topic, Event, Data, Time string
	Topics                             []string
	Ref                                ref
	Code, Message                      string
	Reason, LastEventID                string
	Position                           string
	raw                                string
}

// ref accepts a string or a number, as the protocol does.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = string(b)
	}
	*r = ref(s)
	return nil
}

type client struct {
	c      *websocket.Conn
	resp   *http.Response
	frames chan frame
	end    chan error // the error that ended reading: a websocket.CloseError for a close
}

func newServer(t *testing.T, h *ws.Handler) *heraldtest.Server {
	t.Helper()
	if h == nil {
		h = &ws.Handler{}
	}
	return heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{WS: h}})
}

func wsURL(srv *heraldtest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws" }

// dial connects; header may carry Authorization or Origin. compress offers permessage-deflate.
func dial(t *testing.T, srv *heraldtest.Server, header http.Header, compress bool) *client {
	t.Helper()
	opts := &websocket.DialOptions{HTTPHeader: header}
	if compress {
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv), opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{c: c, resp: resp, frames: make(chan frame, 4096), end: make(chan error, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				cl.end <- err
				close(cl.frames)
				return
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				f.Type = "unparsable"
			}
			f.raw = string(b)
			cl.frames <- f
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

func (cl *client) send(t *testing.T, v any) {
	t.Helper()
	b, ok := v.(string)
	if !ok {
		j, _ := json.Marshal(v)
		b = string(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, []byte(b)); err != nil {
		t.Fatalf("write %s: %v", b, err)
	}
}

func (cl *client) next(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-cl.frames:
		if !ok {
			t.Fatalf("connection ended: %v", <-cl.end)
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10s")
	}
	return frame{}
}

// expect returns the next frame and fails unless it has the given type.
func (cl *client) expect(t *testing.T, typ string) frame {
	t.Helper()
	f := cl.next(t)
	if f.Type != typ {
		t.Fatalf("got frame %s, want type %q", f.raw, typ)
	}
	return f
}

// subscribe sends a subscribe op and waits for its subscribed frame, returning what came
// before it (gap notices and catch-up messages) and the position.
func (cl *client) subscribe(t *testing.T, topics []string, since string) (before []frame, position string) {
	t.Helper()
	op := map[string]any{"op": "subscribe", "topics": topics, "ref": "s"}
	if since != "" {
		op["since"] = since
	}
	cl.send(t, op)
	for {
		f := cl.next(t)
		if f.Type == "subscribed" {
			return before, f.Position
		}
		before = append(before, f)
	}
}

// closed waits for the connection to end and returns the close code (-1 when it ended
// without a close frame).
func (cl *client) closed(t *testing.T) (websocket.StatusCode, string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case _, ok := <-cl.frames:
			if ok {
				continue
			}
			err := <-cl.end
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		case <-timeout:
			t.Fatal("connection not closed within 15s")
		}
	}
}
