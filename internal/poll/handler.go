// Package poll serves subscriptions as HTTP long polling, for clients behind proxies that
// break streaming responses.
//
// Each request is a short-lived hub subscription resumed from the client's cursor (since), so
// a client looping on the returned cursor gets exactly the SSE semantics: every message once,
// in order, or a gap notice when that is impossible.
package poll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// ErrBadRequest is wrapped by errors in the request's query.
var ErrBadRequest = errors.New("poll: bad request")

// Subscriber is what the handler needs from the hub.
type Subscriber interface {
	Subscribe(ctx context.Context, req hub.Request) (*hub.Subscription, error)
}

// Handler answers GET /poll?topic=..&since=<id>&timeout=<seconds>&limit=<n> with
// {"messages":[...],"next":id,"gap"?}. Zero values mean the documented default.
type Handler struct {
	Hub        Subscriber
	Timeout    time.Duration // how long a request waits when nothing is waiting; 0 means 25s
	MaxTimeout time.Duration // the most a client may ask for; 0 means 55s (below common 60s proxy timeouts)
	Limit      int           // messages per response, and the most a client may ask for; 0 means 1000
	// Request turns the HTTP request into a hub request, checking rights; nil means no checks.
	Request func(r *http.Request, f *hub.Filter) (hub.Request, error)
	// Fail answers an error; nil means http.Error with status 400.
	Fail func(w http.ResponseWriter, r *http.Request, err error)
	// Waiting, if set, is told when a request has subscribed and caught up and starts to wait:
	// its setup is over, so admission control can count it as an open connection only.
	Waiting func(r *http.Request)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if h.Fail != nil {
		h.Fail(w, r, err)
		return
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func (h *Handler) limits() (timeout, maxTimeout time.Duration, limit int) {
	timeout, maxTimeout, limit = h.Timeout, h.MaxTimeout, h.Limit
	if maxTimeout <= 0 {
		maxTimeout = 55 * time.Second
	}
	if timeout <= 0 {
		timeout = 25 * time.Second
	}
	if limit <= 0 {
		limit = 1000
	}
	return min(timeout, maxTimeout), maxTimeout, limit
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	timeout, maxTimeout, limit := h.limits()
	q := r.URL.Query()
	if v := q.Get("timeout"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s < 0 || s != s {
			h.fail(w, r, fmt.Errorf("%w: timeout must be a number of seconds", ErrBadRequest))
			return
		}
		timeout = min(time.Duration(s*float64(time.Second)), maxTimeout)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			h.fail(w, r, fmt.Errorf("%w: limit must be a positive integer", ErrBadRequest))
			return
		}
		limit = min(n, limit)
	}
	f, err := hub.NewFilter(q["topic"])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req := hub.Request{Filter: f}
	if h.Request != nil {
		if req, err = h.Request(r, f); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	req.After = q.Get("since")
	sub, err := h.Hub.Subscribe(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer sub.Close()
	resp, err := collect(r.Context(), sub, req.After, limit, timeout, func() {
		if h.Waiting != nil {
			h.Waiting(r)
		}
	})
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		h.fail(w, r, err)
		return
	}
	write(w, resp)
}

// collect returns what is waiting (catch-up, then queued live messages), or else waits up to
// timeout for the first live batch. The cursor follows the stream: each message's id, and the
// position reported when catch-up ends.
// waiting is called when the poll starts to wait: its setup (subscription and catch-up) is over.
func collect(ctx context.Context, sub *hub.Subscription, since string, limit int, timeout time.Duration, waiting func()) (response, error) {
	resp := response{Next: since, Gap: sub.Gap()}
	take := func() error {
		b, err := sub.Take(ctx, limit-len(resp.Messages))
		if err != nil {
			return err
		}
		resp.Messages = append(resp.Messages, b.Messages...)
		if n := len(b.Messages); n > 0 {
			resp.Next = b.Messages[n-1].ID
		}
		if b.Position != "" {
			resp.Next = b.Position
		}
		return nil
	}
	for !sub.CaughtUp() && len(resp.Messages) < limit {
		if err := take(); err != nil {
			return resp, err
		}
	}
	if sub.CaughtUp() && len(resp.Messages) < limit {
		if err := take(); err != nil { // live messages already queued
			return resp, err
		}
	}
	if len(resp.Messages) > 0 || timeout == 0 {
		return resp, nil
	}
	waiting()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-sub.Ready():
		return resp, take()
	case <-timer.C:
	case <-sub.Done():
		// Shutting down: answer with the cursor so far; the next poll goes elsewhere or waits
		// for the restart.
	case <-ctx.Done():
		return resp, ctx.Err()
	}
	return resp, nil
}
