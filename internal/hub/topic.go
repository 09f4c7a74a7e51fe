package hub

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on names. They keep topics cheap to index and safe to embed in any engine's key space,
// in URLs and in SSE fields.
const (
	MaxTopicLen      = 256 // bytes, for topics and patterns
	MaxTopicSegments = 16
)

var (
	ErrBadTopic   = errors.New("hub: bad topic")
	ErrBadPattern = errors.New("hub: bad topic pattern")
)

// validByte reports whether c may appear in a topic segment. The set is deliberately small:
// it excludes '/', '*', whitespace, control bytes and anything that needs escaping in a URL path
// segment, so a topic can never address another one in an engine or inject a field on the wire.
func validByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', ':', '@', '+', '=':
		return true
	}
	return false
}

// ValidateTopic returns an error wrapping ErrBadTopic unless topic is a valid topic name:
// 1 to 16 non-empty segments separated by '/', made of ASCII letters, digits and "-_.~:@+=",
// at most 256 bytes in all.
func ValidateTopic(topic string) error {
	return validate(topic, false)
}

// ValidatePattern is ValidateTopic for subscription patterns: a segment may also be "*"
// (exactly one segment), and the last segment may be "**" (one or more segments).
func ValidatePattern(pattern string) error {
	return validate(pattern, true)
}

func validate(s string, pattern bool) error {
	bad := ErrBadTopic
	if pattern {
		bad = ErrBadPattern
	}
	if s == "" {
		return fmt.Errorf("%w: empty", bad)
	}
	if len(s) > MaxTopicLen {
		return fmt.Errorf("%w: longer than %d bytes", bad, MaxTopicLen)
	}
	n := strings.Count(s, "/") + 1
	if n > MaxTopicSegments {
		return fmt.Errorf("%w: more than %d segments", bad, MaxTopicSegments)
	}
	for i, seg := range strings.Split(s, "/") {
		if seg == "" {
			return fmt.Errorf("%w: %q has an empty segment", bad, s)
		}
		if pattern && seg == "*" {
			continue
		}
		if pattern && seg == "**" {
			if i != n-1 {
				return fmt.Errorf("%w: %q: ** is allowed only as the last segment", bad, s)
			}
			continue
		}
		for j := 0; j < len(seg); j++ {
			if !validByte(seg[j]) {
				return fmt.Errorf("%w: %q: byte %q not allowed (use letters, digits and -_.~:@+=)", bad, s, seg[j])
			}
		}
	}
	return nil
}

// IsPattern reports whether s contains a wildcard segment.
func IsPattern(s string) bool {
	return s == "*" || s == "**" || strings.HasPrefix(s, "*/") || strings.HasPrefix(s, "**") ||
		strings.Contains(s, "/*/") || strings.HasSuffix(s, "/*") || strings.HasSuffix(s, "/**")
}

// Match reports whether topic matches pattern. Both must be valid; an exact pattern matches
// only itself. It does not allocate.
func Match(pattern, topic string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		if pseg == "**" {
			return topic != ""
		}
		tseg, trest, tmore := strings.Cut(topic, "/")
		if topic == "" || (pseg != "*" && pseg != tseg) {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}

// Filter is an immutable set of topics and patterns: what one subscription receives.
type Filter struct {
	exact    map[string]struct{}
	patterns []string
	all      []string
}

// NewFilter validates every entry and returns the filter. Duplicates are removed.
func NewFilter(entries []string) (*Filter, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no topic given", ErrBadTopic)
	}
	f := &Filter{exact: make(map[string]struct{})}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if seen[e] {
			continue
		}
		seen[e] = true
		if IsPattern(e) {
			if err := ValidatePattern(e); err != nil {
				return nil, err
			}
			f.patterns = append(f.patterns, e)
		} else {
			if err := ValidateTopic(e); err != nil {
				return nil, err
			}
			f.exact[e] = struct{}{}
		}
		f.all = append(f.all, e)
	}
	return f, nil
}

// MustFilter is NewFilter for constants in tests and examples; it panics on a bad entry.
func MustFilter(entries ...string) *Filter {
	f, err := NewFilter(entries)
	if err != nil {
		panic(err)
	}
	return f
}

// Entries returns the topics and patterns of the filter in the order given. Do not modify it.
func (f *Filter) Entries() []string { return f.all }

// Match reports whether topic is selected by the filter.
func (f *Filter) Match(topic string) bool {
	if _, ok := f.exact[topic]; ok {
		return true
	}
	for _, p := range f.patterns {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// MatchAny reports whether any of topics is selected by the filter.
func (f *Filter) MatchAny(topics []string) bool {
	for _, t := range topics {
		if f.Match(t) {
			return true
		}
	}
	return false
}
