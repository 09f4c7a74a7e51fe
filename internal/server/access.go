package server

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// Principal is who a request acts for and what it may do. Every transport asks it before
// subscribing (including history, retained values and replay) and before publishing.
type Principal interface {
	Identity() string                 // shown in presence and logs; "" for anonymous
	CanSubscribe(f *hub.Filter) error // wraps ErrForbidden
	CanPublish(topics []string) error // wraps ErrForbidden
	Expires() time.Time               // zero: never; long-lived connections end at this time
}

// principal authenticates a request. Errors wrap ErrUnauthorized.
//
// For now a publisher key grants everything and anyone else may subscribe to anything and
// publish nothing; the access-control issue replaces this with tokens and per-topic rights.
func (s *Server) principal(r *http.Request) (Principal, error) {
	tok := bearer(r)
	if tok == "" {
		return anonymous{}, nil
	}
	for _, k := range s.cfg.PublishKeys {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(k)) == 1 {
			return publisherKey{}, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown key or token", ErrUnauthorized)
}

type anonymous struct{}

func (anonymous) Identity() string               { return "" }
func (anonymous) CanSubscribe(*hub.Filter) error { return nil }
func (anonymous) Expires() time.Time             { return time.Time{} }
func (anonymous) CanPublish([]string) error {
	return fmt.Errorf("%w: publishing needs a publisher key: send Authorization: Bearer <key>", ErrUnauthorized)
}

type publisherKey struct{}

func (publisherKey) Identity() string               { return "publisher" }
func (publisherKey) CanSubscribe(*hub.Filter) error { return nil }
func (publisherKey) CanPublish([]string) error      { return nil }
func (publisherKey) Expires() time.Time             { return time.Time{} }

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// allowPublish checks that the request may publish every message.
func (s *Server) allowPublish(r *http.Request, msgs []*hub.Message) error {
	p, err := s.principal(r)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := p.CanPublish(m.Topics); err != nil {
			return err
		}
	}
	return nil
}

// subscribeRequest checks that the request may subscribe to f and returns the hub request.
func (s *Server) subscribeRequest(r *http.Request, f *hub.Filter) (hub.Request, error) {
	p, err := s.principal(r)
	if err != nil {
		return hub.Request{}, err
	}
	if err := p.CanSubscribe(f); err != nil {
		return hub.Request{}, err
	}
	return hub.Request{Filter: f, Identity: p.Identity()}, nil
}
