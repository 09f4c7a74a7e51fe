package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/herald-push/herald/internal/auth"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/metrics"
	"github.com/herald-push/herald/internal/poll"
	"github.com/herald-push/herald/internal/sse"
)

// Errors of the HTTP layer itself.
var (
	ErrUnauthorized = errors.New("missing or invalid credentials")
	ErrForbidden    = errors.New("not allowed")
	ErrBadRequest   = errors.New("bad request")
	ErrBodyTooLarge = errors.New("request body too large")
	ErrDraining     = errors.New("server is shutting down")
	ErrRateLimited  = errors.New("rate limit exceeded")
	ErrOverloaded   = errors.New("too many connections")
)

// status is the only place that knows which error means which HTTP status, and which code
// name the JSON body carries.
func status(err error) (int, string) {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, ErrUnauthorized), errors.Is(err, auth.ErrInvalidToken):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrForbidden), errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrOrigin):
		return http.StatusForbidden, "origin"
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, "rate_limited"
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable, "overloaded"
	case errors.As(err, &maxBytes), errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, hub.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, hub.ErrBadTopic), errors.Is(err, hub.ErrBadPattern):
		return http.StatusBadRequest, "bad_topic"
	case errors.Is(err, hub.ErrBadEvent):
		return http.StatusBadRequest, "bad_event"
	case errors.Is(err, hub.ErrTooMany):
		return http.StatusBadRequest, "too_many"
	case errors.Is(err, hub.ErrBadMessage), errors.Is(err, ErrBadRequest), errors.Is(err, sse.ErrBadRequest),
		errors.Is(err, poll.ErrBadRequest):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, hub.ErrFull):
		return http.StatusInsufficientStorage, "storage_full"
	case errors.Is(err, hub.ErrUnavailable), errors.Is(err, hub.ErrClosed), errors.Is(err, ErrDraining),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable"
	}
	return http.StatusInternalServerError, "internal"
}

// writeError answers err as JSON: {"error": code, "message": text}.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, name := status(err)
	metrics.HTTPError(name)
	msg := err.Error()
	switch code {
	case http.StatusInternalServerError:
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client went away mid-request: nobody reads the answer, nothing failed
		}
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	case http.StatusServiceUnavailable, http.StatusInsufficientStorage, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(err)))
	case http.StatusUnauthorized:
		// RFC 6750: no error code when no credential was sent, invalid_token when one failed.
		if errors.Is(err, auth.ErrInvalidToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
	case http.StatusForbidden:
		if name == "forbidden" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="insufficient_scope"`)
		}
	}
	writeJSON(w, code, map[string]string{"error": name, "message": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
