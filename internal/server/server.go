// Package server is Herald's HTTP API: routes, the publish and history endpoints, health, and
// the wiring of transports onto the hub. It maps errors to status codes in one place (errors.go).
package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/clients/js"
	"github.com/herald-push/herald/internal/auth"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/metrics"
	"github.com/herald-push/herald/internal/poll"
	"github.com/herald-push/herald/internal/presence"
	"github.com/herald-push/herald/internal/sse"
	"github.com/herald-push/herald/internal/ws"
)

// Config configures a Server. Zero values mean the documented default.
type Config struct {
	Hub          *hub.Hub // required
	PublishKeys  []string // bearer keys allowed to publish; empty means nobody may
	Heartbeat    time.Duration
	Retry        time.Duration
	MaxBody      int64         // bytes per publish request; 0 means 8 MiB
	MaxBatch     int           // messages per publish request; 0 means 10,000
	HistoryLimit int           // most messages per history page; 0 means 1,000
	WS           *ws.Handler   // WebSocket settings; New sets its Hub, Principal and Code; nil means defaults
	Poll         *poll.Handler // long-polling settings; New sets its Hub, Request and Fail; nil means defaults
	Web          http.Handler  // served at /; nil means none
	Logger       *slog.Logger  // nil means slog.Default()

	// Auth turns credentials into rights. nil means: PublishKeys may do everything and anyone
	// may subscribe to anything (tests and the open development default).
	Auth       *auth.Authenticator
	Cookie     string        // cookie carrying a token; "" means herald_token
	QueryToken bool          // accept ?token= (last resort: URLs end up in logs and history)
	Origins    []string      // CORS allow-list of exact origins; "*" allows any, without credentials
	CORSMaxAge time.Duration // preflight cache; 0 means 10m
	Limits     Limits        // connection admission and rates; zero values mean no limit

	// Presence answers GET /presence; nil means this node's subscribers only.
	Presence *presence.Tracker

	// Operations (observe.go).
	LogRequests bool   // log every request at info level; otherwise at debug (5xx always at error)
	Metrics     bool   // serve /metrics here; otherwise only on the admin handler (Admin)
	Engine      string // engine name, for herald_build_info and the dashboard
	Version     string
}

// Server is an http.Handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	sse      *sse.Handler
	ws       *ws.Handler
	poll     *poll.Handler
	draining atomic.Bool
	access                // authentication, origins, admission and rates (middleware.go)
	handler  http.Handler // mux wrapped in observe
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 8 << 20
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 10000
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Presence == nil {
		cfg.Presence = presence.New(presence.Config{Hub: cfg.Hub})
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.setupAccess()
	s.handler = s.observe(s.cors(s.mux))
	s.sse = &sse.Handler{
		Hub:       cfg.Hub,
		Heartbeat: cfg.Heartbeat,
		Retry:     cfg.Retry,
		Fail:      s.failSSE,
		Request:   s.subscribeRequest,
		OnEnd:     func(err error) { metrics.ConnClosed(metrics.SSE, EndReason(err)) },
		Detach:    detach,
		OnWrite:   func(n int) { metrics.Written(metrics.SSE, n) },
	}
	s.transports()
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /publish", s.handlePublish)
	s.mux.Handle("GET /events", s.admit(s.sse))
	s.mux.Handle("GET /ws", s.admit(s.ws))
	s.mux.Handle("GET /poll", s.admit(countPolls(s.poll)))
	s.mux.HandleFunc("GET /history", s.handleHistory)
	s.mux.HandleFunc("GET /presence", s.handlePresence)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("GET /herald.js", heraldjs.Handler())
	if s.cfg.Metrics {
		s.mux.Handle("GET /metrics", s.Metrics())
	}
	if s.cfg.Web != nil {
		s.mux.HandleFunc("GET /api/stats", s.handleStats)
		s.mux.Handle("GET /", s.cfg.Web)
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Drain marks the server as shutting down: /readyz turns false and publishes are refused with
// 503, so a load balancer moves traffic away before streams are closed.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	case !s.cfg.Hub.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "log unavailable"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

type historyResponse struct {
	Messages []jsonMessage `json:"messages"`
	Next     string        `json:"next"`
	Gap      *hub.Gap      `json:"gap,omitempty"`
}

// jsonMessage embeds a message's pre-encoded JSON form.
type jsonMessage struct{ m *hub.Message }

func (j jsonMessage) MarshalJSON() ([]byte, error) { return j.m.AppendJSON(nil), nil }

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := hub.NewFilter(q["topic"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.subscribeRequest(r, f); err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			s.writeError(w, r, fmt.Errorf("%w: limit must be a positive integer", ErrBadRequest))
			return
		}
	}
	limit = min(limit, s.cfg.HistoryLimit)
	page, err := s.cfg.Hub.History(r.Context(), f, q.Get("since"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := historyResponse{Messages: make([]jsonMessage, len(page.Messages)), Next: page.Next, Gap: page.Gap}
	for i, m := range page.Messages {
		resp.Messages[i] = jsonMessage{m}
	}
	writeJSON(w, http.StatusOK, resp)
}
