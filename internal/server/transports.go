package server

import (
	"net/http"

	"github.com/herald-push/herald/internal/metrics"
	"github.com/herald-push/herald/internal/poll"
	"github.com/herald-push/herald/internal/ws"
)

// transports wires the WebSocket and long-polling handlers onto the hub, the Principal seam
// and the one error table.
func (s *Server) transports() {
	s.ws = s.cfg.WS
	if s.ws == nil {
		s.ws = &ws.Handler{}
	}
	s.ws.Hub = s.cfg.Hub
	s.ws.Principal = func(r *http.Request) (ws.Principal, error) {
		p, err := s.principal(r)
		if err != nil {
			return nil, err
		}
		// The connection counts against its identity for as long as it lasts (admit).
		if err := s.admitIdentity(r.Context(), p.Identity()); err != nil {
			return nil, err
		}
		return p, nil
	}
	s.ws.Code = func(err error) string {
		_, name := status(err)
		return name
	}
	s.ws.Detach = detach // the connection keeps its admission after the handler returns
	s.ws.OnStart = func() { metrics.ConnOpened(metrics.WS) }
	s.ws.OnEnd = func(err error) { metrics.ConnClosed(metrics.WS, EndReason(err)) }
	if s.ws.Logger == nil {
		s.ws.Logger = s.cfg.Logger
	}
	s.poll = s.cfg.Poll
	if s.poll == nil {
		s.poll = &poll.Handler{}
	}
	s.poll.Hub = s.cfg.Hub
	s.poll.Request = s.subscribeRequest
	s.poll.Fail = s.writeError
	s.poll.Waiting = setupDone
}

// countPolls counts each held long-poll request as a connection while it lasts.
func countPolls(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		metrics.ConnOpened(metrics.Poll)
		defer metrics.ConnClosed(metrics.Poll, metrics.ReasonClient)
		next.ServeHTTP(w, r)
	})
}

// CloseWebSockets ends every WebSocket connection with 1001 and refuses new ones.
// http.Server.Shutdown does not wait for hijacked connections: register this with
// RegisterOnShutdown. Connections with subscriptions were already told to reconnect (1012)
// when the hub closed.
func (s *Server) CloseWebSockets() { s.ws.Shutdown() }
