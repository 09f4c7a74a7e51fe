package hub

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"news", "news", true},
		{"news", "news/sport", false},
		{"news/*", "news/sport", true},
		{"news/*", "news", false},
		{"news/*", "news/sport/tennis", false},
		{"news/**", "news/sport", true},
		{"news/**", "news/sport/tennis", true},
		{"news/**", "news", false},
		{"*/sport", "news/sport", true},
		{"*/sport", "news/weather", false},
		{"*", "news", true},
		{"*", "news/sport", false},
		{"**", "a/b/c", true},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/d", false},
		{"a/*/**", "a/b/c/d", true},
		{"a/*/**", "a/b", false},
		{"orders/42", "orders/420", false},
		{"orders/4", "orders/42", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		s           string
		topic, patt bool // valid as a topic, as a pattern
	}{
		{"orders/42", true, true},
		{"a.b-c_d~e:f@g+h=i", true, true},
		{"", false, false},
		{"a//b", false, false},
		{"/a", false, false},
		{"a/", false, false},
		{"a b", false, false},
		{"a\nb", false, false},
		{"a\x00", false, false},
		{"é", false, false},
		{"a/*", false, true},
		{"a/**", false, true},
		{"**/a", false, false},
		{"a/b*", false, false},
		{"a?", false, false},
		{strings.Repeat("a", MaxTopicLen+1), false, false},
		{strings.Repeat("a/", MaxTopicSegments) + "a", false, false},
	}
	for _, tt := range tests {
		if err := ValidateTopic(tt.s); (err == nil) != tt.topic {
			t.Errorf("ValidateTopic(%q) = %v, want valid=%v", tt.s, err, tt.topic)
		} else if err != nil && !errors.Is(err, ErrBadTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want it to wrap ErrBadTopic", tt.s, err)
		}
		if err := ValidatePattern(tt.s); (err == nil) != tt.patt {
			t.Errorf("ValidatePattern(%q) = %v, want valid=%v", tt.s, err, tt.patt)
		}
	}
}

// matchRef is a slow, obviously correct matcher: segment by segment, with ** taking the rest.
func matchRef(pattern, topic string) bool {
	ps, ts := strings.Split(pattern, "/"), strings.Split(topic, "/")
	for i, p := range ps {
		if p == "**" {
			return len(ts) > i
		}
		if i >= len(ts) || (p != "*" && p != ts[i]) {
			return false
		}
	}
	return len(ps) == len(ts)
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"news/*", "news/sport"}, {"a/**", "a/b/c"}, {"*/b", "a/b"}, {"a", "a/b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		if ValidatePattern(pattern) != nil || ValidateTopic(topic) != nil {
			return
		}
		if got, want := Match(pattern, topic), matchRef(pattern, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, topic, got, want)
		}
		// A filter agrees with Match, whether the entry is exact or a pattern.
		if got := MustFilter(pattern).Match(topic); got != Match(pattern, topic) {
			t.Fatalf("Filter(%q).Match(%q) = %v, Match says the opposite", pattern, topic, got)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add("abc-12")
	f.Add("-1")
	f.Add("a-b-3")
	f.Fuzz(func(t *testing.T, id string) {
		epoch, seq, err := ParseID(id)
		if err != nil {
			return
		}
		e2, s2, err := ParseID(FormatID(epoch, seq))
		if err != nil || e2 != epoch || s2 != seq {
			t.Fatalf("ParseID(%q) = %q, %d, but ParseID(FormatID) = %q, %d, %v", id, epoch, seq, e2, s2, err)
		}
	})
}
