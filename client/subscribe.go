package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/herald-push/herald/internal/sse"
)

// Gap is a notice that the server could not continue a subscription exactly after the id it
// was asked to resume from (the log was reset, or retention removed messages). Subscribe
// yields it as an error and goes on with what follows: reload the state the messages
// maintained, then keep reading.
type Gap struct {
	Reason      string `json:"reason"` // "epoch", "trimmed", "unknown-id" or "bad-id"
	LastEventID string `json:"lastEventId"`
	Message     string `json:"message"`
}

func (g *Gap) Error() string {
	return fmt.Sprintf("herald: gap after %q (%s): %s", g.LastEventID, g.Reason, g.Message)
}

var (
	errStopped = errors.New("herald: stopped by the caller")
	errIdle    = errors.New("herald: stream silent for too long")
	// ErrNoContent is yielded when the server answers 204 No Content: it asks the client to
	// stop reconnecting.
	ErrNoContent = errors.New("herald: server asked the client to stop (204)")
)

// envelope is a message in the server's JSON form (format=envelope).
type envelope struct {
	ID     string    `json:"id"`
	Topic  string    `json:"topic"`
	Topics []string  `json:"topics"`
	Event  string    `json:"event"`
	Data   string    `json:"data"`
	Time   time.Time `json:"time"`
}

// Subscribe receives the messages of the topics and patterns given ("orders/42", "news/*",
// "news/**"), starting after lastID, or with the current retained values when lastID is empty.
//
// The sequence reconnects by itself, resuming after the last id it received, so it yields
// every message once and in order. Errors come in two kinds: a *Gap is a notice and the
// sequence goes on; any other error (such as an *Error with status 401, 403 or 400, or
// ErrNoContent) is the last value yielded. Connection failures, 5xx answers and silent streams
// are retried with full-jitter backoff and not yielded. The sequence ends without an error when
// ctx ends or the loop breaks.
//
// The loop body runs on the reading goroutine: a consumer that falls far behind is dropped by
// the server and resumes from history, without loss.
func (c *Client) Subscribe(ctx context.Context, patterns []string, lastID string) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		s := &subscription{c: c, lastID: lastID}
		s.query = url.Values{"topic": patterns, "format": {sse.FormatEnvelope}}
		for attempt := 0; ; attempt++ {
			opened, wait, err := s.stream(ctx, yield)
			if errors.Is(err, errStopped) || ctx.Err() != nil {
				return
			}
			var he *Error
			if errors.Is(err, ErrNoContent) || errors.As(err, &he) && !he.temporary() {
				yield(Message{}, err)
				return
			}
			if !opened.IsZero() && time.Since(opened) >= c.opts.StableAfter {
				attempt = 0
			}
			if wait == 0 {
				base := c.opts.MinBackoff
				if s.retry > 0 {
					base = s.retry
				}
				wait = fullJitter(base, c.opts.MaxBackoff, attempt)
			}
			if sleep(ctx, wait) != nil {
				return
			}
		}
	}
}

// subscription is the state kept across the reconnects of one Subscribe.
type subscription struct {
	c      *Client
	query  url.Values
	lastID string        // resume point: the last id seen, including ids sent without data
	retry  time.Duration // the server's advised reconnection delay
}

// stream opens one stream and reads it until it fails. It returns when the stream was opened
// (zero if it never was), and how long the server asked to wait before the next attempt.
func (s *subscription) stream(ctx context.Context, yield func(Message, error) bool) (opened time.Time, wait time.Duration, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.c.url("/events", s.query), nil)
	if err != nil {
		return opened, 0, &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: err.Error()}
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	s.c.authorize(req)
	resp, err := s.c.hc.Do(req)
	if err != nil {
		return opened, 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return opened, 0, ErrNoContent
	case resp.StatusCode != http.StatusOK:
		return opened, retryAfter(resp), readError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// A proxy's error page, say: worth another try, not a stream.
		return opened, 0, &Error{Status: http.StatusBadGateway, Message: "not an event stream: " + mt}
	}
	opened = time.Now()

	// The watchdog: every byte received, heartbeats included, pushes the deadline back.
	idle := s.c.opts.IdleTimeout
	watchdog := time.AfterFunc(idle, func() { cancel(errIdle) })
	defer watchdog.Stop()
	r := sse.NewReader(&activity{r: resp.Body, t: watchdog, d: idle})
	for {
		ev, err := r.Next()
		s.lastID = r.LastID()
		if d := r.Retry(); d > 0 {
			s.retry = d // includes the jittered advice of a server shutting down
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				err = cause
			}
			return opened, 0, err
		}
		if ev.Type == sse.GapEvent {
			g := &Gap{}
			if json.Unmarshal([]byte(ev.Data), g) != nil {
				g.Message = ev.Data
			}
			if !yield(Message{}, g) {
				return opened, 0, errStopped
			}
			continue
		}
		m := Message{ID: ev.ID, Data: ev.Data}
		var e envelope
		if json.Unmarshal([]byte(ev.Data), &e) == nil && e.ID != "" {
			m = Message{ID: e.ID, Topic: e.Topic, Topics: e.Topics, Event: e.Event, Data: e.Data, Time: e.Time}
		} else if ev.Type != "message" {
			m.Event = ev.Type
		}
		if !yield(m, nil) {
			return opened, 0, errStopped
		}
	}
}

// activity resets a watchdog timer whenever bytes arrive.
type activity struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (a *activity) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.t.Reset(a.d)
	}
	return n, err
}
