package jetstream

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Subjects. Every topic segment becomes one subject token. Bytes outside [A-Za-z0-9-] are
// escaped as '_' and two uppercase hex digits, '_' included, so the encoding is injective: no
// topic can produce a wildcard, an empty token, a '.' that splits a token, or another topic's
// subject. Escaping the hub's other valid bytes ("_.~:@+=") keeps subjects safe even if the
// topic rules grow.
//
//	news/sport     -> <prefix>.t.news.sport
//	a.b/c_d        -> <prefix>.t.a_2Eb.c_5Fd
//	news/*         -> <prefix>.t.news.*
//	news/**        -> <prefix>.t.news.>
//	several topics -> <prefix>.m (topics in a header)
//	retained news  -> <prefix>.r.news (second stream)

const hexDigits = "0123456789ABCDEF"

func plainByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// appendToken appends the escaped form of one topic segment.
func appendToken(b *strings.Builder, seg string) {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if plainByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

// topicSubject returns the subject of a valid topic under base (e.g. "HERALD.t").
func topicSubject(base, topic string) string {
	var b strings.Builder
	b.Grow(len(base) + len(topic) + 8)
	b.WriteString(base)
	for seg := range strings.SplitSeq(topic, "/") {
		b.WriteByte('.')
		appendToken(&b, seg)
	}
	return b.String()
}

// patternSubject is topicSubject for a valid topic or pattern: "*" stays a one-token wildcard
// and a trailing "**" (one or more segments) becomes ">", which NATS defines the same way.
func patternSubject(base, pattern string) string {
	var b strings.Builder
	b.WriteString(base)
	for seg := range strings.SplitSeq(pattern, "/") {
		b.WriteByte('.')
		switch seg {
		case "*":
			b.WriteByte('*')
		case "**":
			b.WriteByte('>')
		default:
			appendToken(&b, seg)
		}
	}
	return b.String()
}

// subjectTopic inverts topicSubject.
func subjectTopic(base, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, base+".")
	if !ok || rest == "" {
		return "", fmt.Errorf("jetstream: subject %q is not under %q", subject, base)
	}
	var b strings.Builder
	b.Grow(len(rest))
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '.':
			b.WriteByte('/')
		case c == '_':
			if i+2 >= len(rest) {
				return "", fmt.Errorf("jetstream: bad escape in subject %q", subject)
			}
			hi, lo := unhex(rest[i+1]), unhex(rest[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("jetstream: bad escape in subject %q", subject)
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// filterSubjects returns the subjects under base that cover the entries of f, plus extra,
// without any subject that another one covers: JetStream rejects a consumer whose filters
// overlap that way. Results are a superset of what f selects; callers filter exactly.
func filterSubjects(base string, entries []string, extra ...string) []string {
	subs := make([]string, 0, len(entries)+len(extra))
	for _, e := range entries {
		subs = append(subs, patternSubject(base, e))
	}
	subs = append(subs, extra...)
	out := make([]string, 0, len(subs))
	for i, s := range subs {
		covered := false
		for j, o := range subs {
			// Of two equal subjects keep the first; otherwise drop s if o covers it.
			if i != j && server.SubjectMatchesFilter(s, o) && (s != o || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	return out
}
