package server

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/herald-push/herald/internal/auth"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/metrics"
	"github.com/herald-push/herald/internal/sse"
)

// This file is what operators see of a request: its id, its log line and its metrics.

type ctxKey struct{}

// RequestID returns the id of the request that ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// requestID keeps a well-formed X-Request-Id set by a proxy (so one id follows the request
// through nginx and Herald) and makes one otherwise.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && safeID(id) {
		return id
	}
	return strconv.FormatUint(rand.Uint64(), 36)
}

func safeID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// transport names the subscriber transport a path serves, for byte counts; "" for others.
func transport(path string) string {
	switch path {
	case "/events":
		return metrics.SSE
	case "/poll":
		return metrics.Poll
	}
	return ""
}

// observe wraps every request: it sets the request id, counts bytes to subscribers, times
// publishes and logs one line when the request ends. The line never holds the query string
// (it may carry a token), headers or bodies: only method, path, route, status, sizes and time.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		rec := &recorder{ResponseWriter: w, transport: transport(r.URL.Path)}
		next.ServeHTTP(rec, r)

		d := time.Since(start)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		metrics.Request(route)
		if route == "POST /publish" && rec.status == http.StatusOK {
			metrics.ObservePublish(d)
		}
		level := slog.LevelDebug
		switch {
		case rec.status >= 500 && rec.status != http.StatusServiceUnavailable: // 503: draining, expected
			level = slog.LevelError
		case s.cfg.LogRequests:
			level = slog.LevelInfo
		}
		if s.cfg.Logger.Enabled(r.Context(), level) {
			s.cfg.Logger.LogAttrs(r.Context(), level, "request",
				slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.String("route", route), slog.Int("status", rec.statusOr200()), slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", d), slog.String("remote", s.clientIP(r)))
		}
	})
}

// recorder notes the status and size of a response. A 200 on a subscriber transport counts
// the connection as open; the transport's end hook counts it closed.
type recorder struct {
	http.ResponseWriter
	transport string
	status    int
	bytes     int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		if code == http.StatusOK && r.transport == metrics.SSE {
			metrics.ConnOpened(metrics.SSE)
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	if r.transport != "" {
		metrics.Written(r.transport, n)
	}
	return n, err
}

func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the connection (write deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() { http.NewResponseController(r.ResponseWriter).Flush() }

// Hijack hands the connection to a WebSocket library; its bytes are counted by the transport.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// EndReason names why a subscriber connection ended, for herald_disconnects_total.
func EndReason(err error) string {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, sse.ErrClientGone):
		return metrics.ReasonClient
	case errors.Is(err, hub.ErrSlow):
		return metrics.ReasonSlow
	case errors.Is(err, hub.ErrClosed), errors.Is(err, hub.ErrUnavailable), errors.Is(err, ErrDraining):
		return metrics.ReasonShutdown
	case errors.Is(err, hub.ErrEpoch):
		return metrics.ReasonEpoch
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden), errors.Is(err, sse.ErrExpired),
		errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrForbidden):
		return metrics.ReasonAuth
	case errors.Is(err, hub.ErrTooMany), errors.Is(err, hub.ErrTooLarge), errors.Is(err, ErrRateLimited):
		return metrics.ReasonLimit
	case errors.Is(err, context.DeadlineExceeded), isNetErr(err):
		return metrics.ReasonWrite
	}
	return metrics.ReasonError
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// Admin returns the handler of the admin listener: metrics, health and the Go profiler. The
// profiler is never on the public listener: it reveals internals and costs CPU on demand.
func (s *Server) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics())
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Metrics returns the Prometheus handler for this server and its hub.
func (s *Server) Metrics() http.Handler { return metrics.Handler(source{s}) }

// source adapts the server and hub to metrics.Source.
type source struct{ s *Server }

func (x source) Subscribers() int64 { return x.s.cfg.Hub.Subscribers() }
func (x source) Published() uint64  { return x.s.cfg.Hub.Stats().Published.Load() }
func (x source) Delivered() uint64  { return x.s.cfg.Hub.Stats().Delivered.Load() }
func (x source) Evicted() uint64    { return x.s.cfg.Hub.Stats().Evicted.Load() }
func (x source) Resumed() uint64    { return x.s.cfg.Hub.Stats().Resumed.Load() }
func (x source) LogReads() uint64   { return x.s.cfg.Hub.Stats().LogReads.Load() }
func (x source) Ready() bool        { return x.s.cfg.Hub.Ready() }
func (x source) Draining() bool     { return x.s.draining.Load() }
func (x source) Engine() string     { return x.s.cfg.Engine }
func (x source) Version() string    { return x.s.cfg.Version }

// statsResponse is GET /api/stats, read by the dashboard every second. Rates are left to the
// reader (difference of two samples over their time difference): the server keeps no history.
type statsResponse struct {
	Time          int64            `json:"time"` // Unix milliseconds
	Version       string           `json:"version"`
	Engine        string           `json:"engine"`
	Ready         bool             `json:"ready"`
	Draining      bool             `json:"draining"`
	Connections   map[string]int64 `json:"connections"`
	Subscriptions int64            `json:"subscriptions"`
	Published     uint64           `json:"published"`
	Delivered     uint64           `json:"delivered"`
	Evicted       uint64           `json:"evicted"`
	Resumed       uint64           `json:"resumed"`
	BytesWritten  uint64           `json:"bytesWritten"`
	TopTopics     []hub.TopicCount `json:"topTopics"`
}

// handleStats answers the dashboard. It lists topic names, so it is served only where the
// dashboard is (Config.Web), which deployments that keep topic names private turn off.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	h, snap := s.cfg.Hub, metrics.Read()
	var bytes uint64
	for _, n := range snap.BytesOut {
		bytes += n
	}
	writeJSON(w, http.StatusOK, statsResponse{
		Time: time.Now().UnixMilli(), Version: s.cfg.Version, Engine: s.cfg.Engine,
		Ready: h.Ready(), Draining: s.draining.Load(),
		Connections: snap.Connections, Subscriptions: h.Subscribers(),
		Published: h.Stats().Published.Load(), Delivered: h.Stats().Delivered.Load(),
		Evicted: h.Stats().Evicted.Load(), Resumed: h.Stats().Resumed.Load(),
		BytesWritten: bytes, TopTopics: h.TopTopics(10),
	})
}
