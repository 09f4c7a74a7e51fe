package sse

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// ErrBadRequest is wrapped by errors in the request's query, answered before the stream starts.
var ErrBadRequest = errors.New("sse: bad request")

// ErrExpired ends a stream whose credential expired.
var ErrExpired = errors.New("sse: credential expired")

// ErrClientGone ends a pooled stream whose client hung up (Linux: the pool's hang-up watch).
var ErrClientGone = errors.New("sse: client went away")

// Subscriber is what the handler needs from the hub.
type Subscriber interface {
	Subscribe(ctx context.Context, req hub.Request) (*hub.Subscription, error)
}

// Handler streams a subscription as text/event-stream. Query: topic (repeated: topics and
// patterns), lastEventId (first connect; the Last-Event-ID header wins), format (raw|envelope).
type Handler struct {
	Hub          Subscriber
	Heartbeat    time.Duration // comment line interval; 0 means 15s
	Retry        time.Duration // reconnection delay advised to clients; 0 means 2s
	WriteTimeout time.Duration // per write; 0 means 10s
	MaxBatch     int           // messages coalesced into one write; 0 means 256
	// Writers is the number of fan-out writer goroutines that serve caught-up HTTP/1.x
	// streams after hijacking their connections (see pool.go); 0 means one per CPU, and a
	// negative value keeps a goroutine per connection for the whole stream.
	Writers int

	// Request turns the HTTP request into a hub request, checking rights; nil means no checks.
	// An error is answered by Fail before the stream starts.
	Request func(r *http.Request, f *hub.Filter) (hub.Request, error)
	// Fail answers an error before the stream starts; nil means http.Error with status 400.
	Fail func(w http.ResponseWriter, r *http.Request, err error)
	// OnEnd, if set, is told why each stream ended (for metrics).
	OnEnd func(reason error)
	// OnWrite, if set, is told how many bytes the writer pool wrote to a connection it took
	// over (writes before the handoff go through the ResponseWriter).
	OnWrite func(n int)
	// Detach, if set, is called when the writer pool takes a connection over and the handler
	// is about to return: it returns what to call when the connection really ends (for
	// example to release a connection-limit slot that the wrapping middleware would
	// otherwise release when the handler returns).
	Detach func(r *http.Request) (release func())

	once sync.Once
	pool *pool
}

// defaults fills in zero settings and starts the writer pool, once: requests run
// concurrently, so nothing here may write to h after the first request.
func (h *Handler) defaults() {
	h.once.Do(func() {
		if h.Heartbeat <= 0 {
			h.Heartbeat = 15 * time.Second
		}
		if h.Retry <= 0 {
			h.Retry = 2 * time.Second
		}
		if h.WriteTimeout <= 0 {
			h.WriteTimeout = 10 * time.Second
		}
		if h.MaxBatch <= 0 {
			h.MaxBatch = 256
		}
		if h.Writers == 0 {
			h.Writers = runtime.GOMAXPROCS(0)
		}
		if h.Writers > 0 && hijackSupported {
			h.pool = newPool(h, h.Writers)
		}
	})
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if h.Fail != nil {
		h.Fail(w, r, err)
		return
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// LastEventID returns the resume point of a request: the Last-Event-ID header that EventSource
// sends on reconnect, else the lastEventId query parameter for a first connect.
func LastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("lastEventId")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.defaults()
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != FormatRaw && format != FormatEnvelope {
		h.fail(w, r, fmt.Errorf("%w: format must be raw or envelope", ErrBadRequest))
		return
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
	req.After = LastEventID(r)
	sub, err := h.Hub.Subscribe(r.Context(), req)
	if errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrClosed) {
		// Any status but 200 makes EventSource give up for good: answer 200, advise a
		// jittered retry, and end.
		h.header(w)
		w.Write(AppendRetry(AppendComment(nil, "unavailable: "+err.Error()), h.jitter()))
		h.end(err)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.stream(w, r, sub, format, req.Expires)
	if errors.Is(err, errHandedOff) {
		return // the writer pool owns the connection and the subscription now
	}
	sub.Close()
	h.end(err)
}

// errHandedOff ends stream when the writer pool took the connection over.
var errHandedOff = errors.New("sse: handed off to the writer pool")

// handoff hijacks the connection of a caught-up stream and gives it to the writer pool. It
// reports false when the connection cannot be hijacked (HTTP/2), and the handler goroutine
// keeps serving the stream.
func (h *Handler) handoff(w http.ResponseWriter, r *http.Request, sub *hub.Subscription, format string) bool {
	if h.pool == nil || r.ProtoMajor != 1 {
		return false
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return false
	}
	nc, _, err := rc.Hijack()
	if err != nil {
		return false
	}
	nc.SetDeadline(time.Time{})
	// net/http chose chunked encoding for an HTTP/1.1 response with no length; HTTP/1.0
	// responses end when the connection closes.
	release := func() {}
	if h.Detach != nil {
		release = h.Detach(r)
	}
	if err := h.pool.add(nc, sub, format, r.ProtoAtLeast(1, 1), release); err != nil {
		nc.Close()
		sub.Close()
		release()
		h.end(err)
	}
	return true
}

func (h *Handler) written(n int) {
	if h.OnWrite != nil && n > 0 {
		h.OnWrite(n)
	}
}

func (h *Handler) end(reason error) {
	if h.OnEnd != nil {
		h.OnEnd(reason)
	}
}

func (h *Handler) header(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer this response
	w.WriteHeader(http.StatusOK)
}

// jitter spreads reconnections over [Retry, 3*Retry) so that a restart is not a storm.
func (h *Handler) jitter() time.Duration {
	return h.Retry + rand.N(2*h.Retry)
}

// stream owns the connection until the client goes away or the subscription ends. All
// writes happen here; the hub only queues.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, sub *hub.Subscription, format string, expires time.Time) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 0, 4096)
	write := func() error {
		rc.SetWriteDeadline(time.Now().Add(h.WriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return err
		}
		buf = buf[:0]
		return rc.Flush()
	}

	// Headers and retry advice go out now: "has headers" means "is subscribed".
	h.header(w)
	buf = AppendRetry(buf, h.Retry)
	if g := sub.Gap(); g != nil {
		buf = AppendGap(buf, g)
	}
	if err := write(); err != nil {
		return err
	}

	heartbeat := time.NewTicker(h.Heartbeat)
	defer heartbeat.Stop()
	ctx := r.Context()
	var expired <-chan time.Time // the credential's end: the stream ends with it
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-expired: // checked here too: a busy stream may never reach the select below
			buf = AppendComment(buf, "closed: token expired")
			write()
			return ErrExpired
		default:
		}
		b, err := sub.Take(ctx, h.MaxBatch)
		if err != nil {
			return err
		}
		for _, m := range b.Messages {
			buf = append(buf, Encoded(m, format)...)
		}
		if b.Position != "" {
			buf = AppendID(buf, b.Position)
		}
		if len(buf) > 0 {
			if err := write(); err != nil {
				return err
			}
			heartbeat.Reset(h.Heartbeat)
			if len(b.Messages) > 0 || !sub.CaughtUp() {
				continue
			}
		}
		// Streams whose credential expires stay here, where the expiry timer is (the pool
		// has no per-connection timers yet).
		if sub.CaughtUp() && expires.IsZero() && h.handoff(w, r, sub, format) {
			return errHandedOff
		}
		select {
		case <-sub.Ready():
		case <-heartbeat.C:
			buf = append(buf, ":\n\n"...)
			if err := write(); err != nil {
				return err
			}
		case <-sub.Done():
			// Tell the client why, and when to come back; it resumes from its last id.
			err := sub.Err()
			if errors.Is(err, hub.ErrClosed) {
				buf = AppendRetry(buf, h.jitter())
			}
			buf = AppendComment(buf, "closed: "+err.Error())
			write()
			return err
		case <-expired:
			// The client reconnects after retry with a fresh token, or is refused with 401.
			buf = AppendComment(buf, "closed: token expired")
			write()
			return ErrExpired
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
