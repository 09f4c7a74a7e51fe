package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/herald-push/herald/internal/auth"
	"github.com/herald-push/herald/internal/hub"
)

// Principal is who a request acts for and what it may do. Every transport asks it before
// subscribing (including history, retained values and replay) and before publishing.
//
// A long-lived connection (SSE, WebSocket, long poll) must end at Expires: SSE ends the
// stream with a comment and the client reconnects with a fresh token; WebSocket closes with
// 4001 ("token expired") and long poll answers the pending request empty, then 401 on the
// next one if the token was not refreshed.
type Principal interface {
	Identity() string                 // shown in presence and logs; "" for anonymous
	CanSubscribe(f *hub.Filter) error // wraps ErrForbidden, or ErrUnauthorized for anonymous
	CanPublish(topics []string) error // wraps ErrForbidden, or ErrUnauthorized for anonymous
	Expires() time.Time               // zero: never; long-lived connections end at this time
}

// ErrOrigin is wrapped when a request authenticated by cookie comes from a page of another
// origin that is not in the allow-list: cross-site request forgery, or cross-site WebSocket
// hijacking.
var ErrOrigin = errors.New("origin not allowed")

// grant adapts an auth.Grant to Principal.
type grant struct{ g *auth.Grant }

func (p grant) Identity() string   { return p.g.Subject }
func (p grant) Expires() time.Time { return p.g.Expires }
func (p grant) CanSubscribe(f *hub.Filter) error {
	return p.refusal(p.g.CanSubscribe(f.Entries()), "subscribing")
}
func (p grant) CanPublish(topics []string) error {
	if len(p.g.Rights.Publish) == 0 {
		return p.refusal(fmt.Errorf("%w: no publish rights", ErrForbidden), "publishing")
	}
	return p.refusal(p.g.CanPublish(topics), "publishing")
}

// refusal turns a refusal for an anonymous caller into 401: a credential might help. A caller
// that has one and lacks the right gets 403: another attempt with the same token cannot help.
func (p grant) refusal(err error, what string) error {
	if err != nil && p.g.Anonymous() {
		return fmt.Errorf("%w: %s this needs a token or key (Authorization: Bearer): %v", ErrUnauthorized, what, err)
	}
	return err
}

// Grant returns the auth grant behind a principal, or nil.
func Grant(p Principal) *auth.Grant {
	if g, ok := p.(grant); ok {
		return g.g
	}
	return nil
}

// principal authenticates a request. Errors wrap ErrUnauthorized, auth.ErrInvalidToken or
// ErrOrigin. A request without a credential is anonymous; a request with a bad one is refused,
// never downgraded to anonymous, so that a client learns its token needs refreshing.
func (s *Server) principal(r *http.Request) (Principal, error) {
	cred, source := credential(r, s.cfg.Cookie, s.cfg.QueryToken)
	switch {
	case source == "":
		return grant{s.auth.Anonymous()}, nil
	case cred == "":
		return nil, fmt.Errorf("%w: use Authorization: Bearer <token>", ErrUnauthorized)
	case source == "cookie" && !s.sameOriginOrAllowed(r):
		// Browsers attach cookies to requests that other sites trigger; a Bearer header or a
		// query token cannot be added by a page that does not already hold it.
		return nil, fmt.Errorf("%w: a cookie credential from origin %q", ErrOrigin, r.Header.Get("Origin"))
	}
	g, err := s.auth.Authenticate(r.Context(), cred)
	if err != nil {
		return nil, err
	}
	return grant{g}, nil
}

// credential finds the token of a request: the Authorization header, else the cookie, else
// (if enabled) the token query parameter. source is "" when there is none.
func credential(r *http.Request, cookie string, query bool) (cred, source string) {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:]), "header"
		}
		return "", "header" // Basic or anything else: refused, not ignored
	}
	if c, err := r.Cookie(cookie); err == nil && c.Value != "" {
		return c.Value, "cookie"
	}
	if query {
		if v, ok := r.URL.Query()["token"]; ok {
			return v[0], "query"
		}
	}
	return "", ""
}

// sameOriginOrAllowed reports whether the request has no Origin (not a browser, or a
// same-origin GET), an Origin naming this host, or one in the exact allow-list.
func (s *Server) sameOriginOrAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if s.origins[o] {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// allowPublish checks that the request may publish every message, and its rate.
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
	if g := Grant(p); g != nil && g.Rate > 0 {
		if wait := s.rates.take(g.Subject, g.Rate, g.Burst, time.Now()); wait > 0 {
			return &retryError{fmt.Errorf("%w: %s may publish %g requests per second", ErrRateLimited, g.Subject, g.Rate), wait}
		}
	}
	return nil
}

// subscribeRequest checks that the request may subscribe to f and returns the hub request.
// On a streaming route (see admit) it also counts the connection against its identity.
func (s *Server) subscribeRequest(r *http.Request, f *hub.Filter) (hub.Request, error) {
	p, err := s.principal(r)
	if err != nil {
		return hub.Request{}, err
	}
	if err := p.CanSubscribe(f); err != nil {
		return hub.Request{}, err
	}
	if err := s.admitIdentity(r.Context(), p.Identity()); err != nil {
		return hub.Request{}, err
	}
	return hub.Request{Filter: f, Identity: p.Identity(), Expires: p.Expires()}, nil
}
