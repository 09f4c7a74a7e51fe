package faults

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Client is a resuming subscriber on any transport, as the fault tests drive it.
type Client interface {
	Run(ctx context.Context)
	Drop()
	Ready() bool // connected (SSE, WebSocket: subscribed) or polling
}

// Ready reports whether the current connection has its headers.
func (c *SSEClient) Ready() bool { return c.Connected.Load() }

// conn is the reconnect loop shared by the WebSocket and long-poll clients.
type loop struct {
	mu     sync.Mutex
	cursor string
	cancel context.CancelFunc
	ready  atomic.Bool
}

func (l *loop) Drop() {
	l.mu.Lock()
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Unlock()
}

func (l *loop) Ready() bool { return l.ready.Load() }

func (l *loop) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cursor
}

func (l *loop) set(id string) {
	if id == "" {
		return
	}
	l.mu.Lock()
	l.cursor = id
	l.mu.Unlock()
}

// run calls once until ctx ends, pausing a jittered moment between connections.
func (l *loop) run(ctx context.Context, sub *Subscriber, once func(ctx context.Context)) {
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			sub.Resumed()
		}
		cctx, cancel := context.WithCancel(ctx)
		l.mu.Lock()
		l.cancel = cancel
		l.mu.Unlock()
		once(cctx)
		cancel()
		l.ready.Store(false)
		select {
		case <-ctx.Done():
		case <-time.After(10*time.Millisecond + rand.N(10*time.Millisecond)):
		}
	}
}

// WSClient subscribes over WebSocket (GET /ws) with one subscribe op per connection, resuming
// with since = the id of the last message (or the subscribed position).
type WSClient struct {
	loop
	Base   string
	Topics []string
	Sub    *Subscriber
}

// NewWSClient returns a WebSocket client that starts after lastID.
func NewWSClient(base string, topics []string, sub *Subscriber, lastID string) *WSClient {
	c := &WSClient{Base: base, Topics: topics, Sub: sub}
	c.cursor = lastID
	return c
}

func (c *WSClient) Run(ctx context.Context) { c.run(ctx, c.Sub, c.once) }

func (c *WSClient) once(ctx context.Context) {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.Base, "http")+"/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "topics": c.Topics, "since": c.get(), "ref": "s"})
	if err := conn.Write(ctx, websocket.MessageText, sub); err != nil {
		return
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var f struct {
			Type, ID, Data, Position, Reason, Message string
		}
		if err := json.Unmarshal(b, &f); err != nil {
			c.Sub.mu.Lock()
			c.Sub.problem("websocket frame %q: %v", b, err)
			c.Sub.mu.Unlock()
			return
		}
		switch f.Type {
		case "message":
			c.Sub.Deliver(f.ID, f.Data)
			c.set(f.ID)
		case "subscribed":
			c.set(f.Position)
			c.ready.Store(true)
		case "gap":
			c.Sub.Gap(f.Reason + ": " + f.Message)
		case "error":
			return
		}
	}
}

// PollClient long-polls GET /poll, passing each answer's next back as since.
type PollClient struct {
	loop
	Base   string
	Topics []string
	Sub    *Subscriber
}

// NewPollClient returns a long-poll client that starts after lastID.
func NewPollClient(base string, topics []string, sub *Subscriber, lastID string) *PollClient {
	c := &PollClient{Base: base, Topics: topics, Sub: sub}
	c.cursor = lastID
	return c
}

func (c *PollClient) Run(ctx context.Context) { c.run(ctx, c.Sub, c.once) }

// once polls until a request fails; the loop counts that as a reconnection.
func (c *PollClient) once(ctx context.Context) {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for ctx.Err() == nil {
		q := url.Values{"topic": c.Topics, "timeout": {"1"}}
		if s := c.get(); s != "" {
			q.Set("since", s)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", c.Base+"/poll?"+q.Encode(), nil)
		c.ready.Store(true)
		resp, err := hc.Do(req)
		if err != nil {
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return
		}
		var page struct {
			Messages []struct{ ID, Data string }
			Next     string
			Gap      *struct{ Reason, Message string }
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return // a cut answer: poll again from the same cursor
		}
		if page.Gap != nil {
			c.Sub.Gap(page.Gap.Reason + ": " + page.Gap.Message)
		}
		for _, m := range page.Messages {
			c.Sub.Deliver(m.ID, m.Data)
		}
		c.set(page.Next)
	}
}
