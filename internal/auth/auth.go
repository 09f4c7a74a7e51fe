// Package auth turns credentials (JWTs and API keys) into a Grant: who the caller is, which
// topics and patterns it may subscribe to, where it may publish, and until when.
//
// It knows nothing about HTTP: the server finds the credential in a request (header, cookie
// or query) and maps the errors below to status codes.
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

var (
	// ErrInvalidToken is wrapped by every authentication failure: malformed, badly signed,
	// expired, not yet valid, wrong audience or issuer, unknown key.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrForbidden is wrapped when a valid credential lacks the right asked for.
	ErrForbidden = errors.New("auth: forbidden")
)

// MaxRights bounds the patterns in one credential so that checking a request stays cheap.
const MaxRights = 256

// Rights are the topic patterns a credential may subscribe to and publish to. A right is a
// topic or a pattern in hub syntax ("orders/42", "users/17/**", "chat/*").
type Rights struct {
	Subscribe []string `json:"subscribe,omitempty" yaml:"subscribe"`
	Publish   []string `json:"publish,omitempty" yaml:"publish"`
}

// Validate checks every pattern and the total count.
func (r Rights) Validate() error {
	if n := len(r.Subscribe) + len(r.Publish); n > MaxRights {
		return fmt.Errorf("%d rights, at most %d", n, MaxRights)
	}
	for _, list := range [][]string{r.Subscribe, r.Publish} {
		for _, p := range list {
			if err := hub.ValidatePattern(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Grant is an authenticated caller.
type Grant struct {
	Subject string    // identity shown in presence and logs; "" for anonymous
	Kind    string    // "token", "key" or "anonymous"
	Rights  Rights    // what it may do
	Expires time.Time // zero: never
	// Rate and Burst limit publish requests per second for this caller; 0 means unlimited.
	Rate  float64
	Burst int
}

// Anonymous reports whether the grant carries no credential.
func (g *Grant) Anonymous() bool { return g.Kind == "anonymous" }

// CanSubscribe checks that every entry (topic or pattern) is covered by one subscribe right.
// A pattern wider than the rights is refused, not narrowed: asking for "users/**" with the
// right "users/17/**" fails, so a client never believes it receives what it does not.
func (g *Grant) CanSubscribe(entries []string) error {
	for _, e := range entries {
		if !CoveredBy(e, g.Rights.Subscribe) {
			return fmt.Errorf("%w: may not subscribe to %q", ErrForbidden, e)
		}
	}
	return nil
}

// CanPublish checks that every topic matches a publish right.
func (g *Grant) CanPublish(topics []string) error {
	for _, t := range topics {
		if !CoveredBy(t, g.Rights.Publish) {
			return fmt.Errorf("%w: may not publish to %q", ErrForbidden, t)
		}
	}
	return nil
}

// CoveredBy reports whether some right covers entry (see Covers).
func CoveredBy(entry string, rights []string) bool {
	for _, r := range rights {
		if Covers(r, entry) {
			return true
		}
	}
	return false
}

// Covers reports whether every topic matched by pattern a is also matched by pattern b. Both
// must be valid hub patterns (a topic is a pattern matching only itself). For a topic a it is
// hub.Match(b, a).
//
// Segments: a literal matches itself, "*" exactly one segment, a final "**" one or more.
// The check is structural and ignores the length limits on topics, so it may refuse a pair
// that the limits would make safe; it never accepts an unsafe one.
func Covers(b, a string) bool {
	for {
		bseg, brest, bmore := strings.Cut(b, "/")
		aseg, arest, amore := strings.Cut(a, "/")
		switch {
		case bseg == "**":
			return a != "" // a has at least one more segment here, as every match of a does
		case a == "" || aseg == "**":
			return false // b ends or has a single segment where a can match several
		case bseg != "*" && bseg != aseg:
			return false // a literal in b needs the same literal in a ("*" in a is wider)
		}
		if !bmore || !amore {
			return bmore == amore
		}
		b, a = brest, arest
	}
}
