package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/sse"
)

// SSEClient is a subscriber that behaves as EventSource does: it reconnects whenever its
// stream ends, sending the last id it fully received, and reports every event and gap notice
// to its oracle record.
type SSEClient struct {
	Base   string // e.g. "http://127.0.0.1:1234"
	Topics []string
	Sub    *Subscriber
	HTTP   *http.Client  // nil means a fresh client without connection reuse
	Retry  time.Duration // pause before reconnecting; 0 means 10ms (tests), jittered x1-2

	mu     sync.Mutex
	lastID string
	cancel context.CancelFunc

	// ReadBuffer, when set, shrinks the socket's receive buffer, so that a paused client
	// pushes back on the server within a few frames instead of megabytes.
	ReadBuffer int

	paused atomic.Bool
	resume chan struct{}

	Connected atomic.Bool // headers received on the current connection
	Conns     atomic.Int64
}

// Pause stops reading, as a stuck browser tab or a congested mobile link does; Unpause reads on.
func (c *SSEClient) Pause() {
	c.mu.Lock()
	if !c.paused.Swap(true) {
		c.resume = make(chan struct{})
	}
	c.mu.Unlock()
}

// Unpause resumes reading.
func (c *SSEClient) Unpause() {
	c.mu.Lock()
	if c.paused.Swap(false) {
		close(c.resume)
	}
	c.mu.Unlock()
}

// pausable blocks reads while its client is paused.
type pausable struct {
	c   *SSEClient
	r   io.Reader
	ctx context.Context
}

func (p pausable) Read(b []byte) (int, error) {
	if p.c.paused.Load() {
		p.c.mu.Lock()
		ch := p.c.resume
		p.c.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-p.ctx.Done():
				return 0, p.ctx.Err()
			}
		}
	}
	return p.r.Read(b)
}

// NewSSEClient returns a client that starts from lastID ("" for a new subscriber).
func NewSSEClient(base string, topics []string, sub *Subscriber, lastID string) *SSEClient {
	return &SSEClient{Base: base, Topics: topics, Sub: sub, lastID: lastID}
}

// LastID is the id the client would resume from.
func (c *SSEClient) LastID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID
}

// Drop ends the current connection from the client side, as a page reload or a network change
// does; Run reconnects.
func (c *SSEClient) Drop() {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
}

// Run connects and reconnects until ctx ends.
func (c *SSEClient) Run(ctx context.Context) {
	retry := c.Retry
	if retry <= 0 {
		retry = 10 * time.Millisecond
	}
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			c.Sub.Resumed()
		}
		c.once(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(retry + rand.N(retry)):
		}
	}
}

func (c *SSEClient) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	tr := &http.Transport{DisableKeepAlives: true}
	if c.ReadBuffer > 0 {
		d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, c.ReadBuffer)
			})
		}}
		tr.DialContext = d.DialContext
	}
	return &http.Client{Transport: tr}
}

// once runs one connection until it ends.
func (c *SSEClient) once(ctx context.Context) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.cancel = cancel
	last := c.lastID
	c.mu.Unlock()

	q := url.Values{"topic": c.Topics}
	req, _ := http.NewRequestWithContext(cctx, "GET", c.Base+"/events?"+q.Encode(), nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return
	}
	c.Conns.Add(1)
	c.Connected.Store(true)
	defer c.Connected.Store(false)
	r := sse.NewReader(pausable{c, resp.Body, cctx})
	for {
		ev, err := r.Next()
		if id := r.LastID(); id != "" {
			c.mu.Lock()
			c.lastID = id
			c.mu.Unlock()
		}
		if err != nil {
			return
		}
		switch ev.Type {
		case sse.GapEvent:
			var g hub.Gap
			json.Unmarshal([]byte(ev.Data), &g)
			c.Sub.Gap(g.Reason + ": " + g.Message)
		default:
			c.Sub.Deliver(ev.ID, ev.Data)
		}
	}
}

// Publisher publishes "<name>:<n>" payloads to one topic, one at a time, and records each
// outcome in the oracle.
type Publisher struct {
	Name, Topic string
	Base, Key   string
	Oracle      *Oracle
	HTTP        *http.Client
	// Strict5xx records a 5xx answer as Refused (never to be delivered). Leave it false when a
	// 503 may come from a timeout after the log stored the message (see docs/guarantees.md).
	Strict5xx bool

	n int

	// LastID is the id of the last acknowledged publish.
	LastID string

	Statuses sync.Map // status code -> *atomic.Int64
}

// Loop publishes until stop is closed, pausing briefly after an answer other than 2xx (the
// server or its engine may be away), and counts acknowledged publishes in acked.
func (p *Publisher) Loop(stop <-chan struct{}, acked *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, _ := p.Publish(ctx)
		cancel()
		if code/100 == 2 {
			acked.Add(1)
		} else {
			time.Sleep(20 * time.Millisecond) // back off while the server is away
		}
	}
}

// Publish sends the next payload and returns the HTTP status (0 when there was no answer).
func (p *Publisher) Publish(ctx context.Context) (int, error) {
	p.n++
	payload := Payload(p.Name, p.n)
	body := fmt.Sprintf(`{"topic":%q,"data":%q}`, p.Topic, payload)
	req, _ := http.NewRequestWithContext(ctx, "POST", p.Base+"/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.Key)
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, errors.Join(err, p.Oracle.Record(p.Topic, payload, Uncertain, ""))
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	v, _ := p.Statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	switch {
	case rerr != nil:
		return resp.StatusCode, errors.Join(rerr, p.Oracle.Record(p.Topic, payload, Uncertain, ""))
	case resp.StatusCode/100 == 2:
		var r struct{ ID string }
		if err := json.Unmarshal(b, &r); err != nil {
			return resp.StatusCode, fmt.Errorf("publish %s: answer %q: %w", payload, b, err)
		}
		p.LastID = r.ID
		return resp.StatusCode, p.Oracle.Record(p.Topic, payload, Acked, r.ID)
	case resp.StatusCode/100 == 4 || p.Strict5xx:
		return resp.StatusCode, p.Oracle.Record(p.Topic, payload, Refused, "")
	default:
		return resp.StatusCode, p.Oracle.Record(p.Topic, payload, Uncertain, "")
	}
}
