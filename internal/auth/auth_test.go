package auth

import (
	"strings"
	"testing"

	"github.com/herald-push/herald/internal/hub"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		right, asked string
		want         bool
	}{
		{"users/17/**", "users/17/inbox", true},
		{"users/17/**", "users/17/inbox/x", true},
		{"users/17/**", "users/17/*", true},
		{"users/17/**", "users/17/**", true},
		{"users/17/**", "users/17", false},
		{"users/17/**", "users/**", false},
		{"users/17/**", "users/*/inbox", false},
		{"users/*/inbox", "users/17/inbox", true},
		{"users/*/inbox", "users/*/inbox", true},
		{"users/*/inbox", "users/**", false},
		{"chat/*", "chat/*", true},
		{"chat/*", "chat/**", false},
		{"chat/*", "chat/a/b", false},
		{"**", "anything/at/all", true},
		{"**", "**", true},
		{"*", "a", true},
		{"*", "a/b", false},
		{"*", "**", false},
		{"orders/42", "orders/42", true},
		{"orders/42", "orders/*", false},
		{"orders/42", "orders/420", false},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/*/*", false},
		{"a/**", "a/*/**", true},
		{"a/*/**", "a/**", false},
	}
	for _, tt := range tests {
		if got := Covers(tt.right, tt.asked); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.right, tt.asked, got, tt.want)
		}
	}
}

// bruteTopics lists every topic of 1..maxSegs segments over the alphabet: enough to find a
// witness against any pattern pair of at most maxSegs-1 segments, since "c" appears in no
// pattern and so stands for every literal the patterns do not name.
func bruteTopics(alphabet []string, maxSegs int) []string {
	var out []string
	level := []string{""}
	for n := 1; n <= maxSegs; n++ {
		var next []string
		for _, prefix := range level {
			for _, s := range alphabet {
				t := s
				if prefix != "" {
					t = prefix + "/" + s
				}
				next = append(next, t)
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

var topics5 = bruteTopics([]string{"a", "b", "c"}, 5)

// bruteCovers is the definition: every topic matched by a is matched by b.
func bruteCovers(b, a string) bool {
	for _, t := range topics5 {
		if hub.Match(a, t) && !hub.Match(b, t) {
			return false
		}
	}
	return true
}

// patternOf decodes bytes into a valid pattern of at most 3 segments over {a, b, *, **}.
func patternOf(data []byte) string {
	if len(data) == 0 {
		return "a"
	}
	n := int(data[0])%3 + 1
	segs := make([]string, 0, n)
	for i := range n {
		var c byte
		if i+1 < len(data) {
			c = data[i+1]
		}
		s := []string{"a", "b", "*", "**"}[c%4]
		if s == "**" && i != n-1 {
			s = "*"
		}
		segs = append(segs, s)
	}
	return strings.Join(segs, "/")
}

func TestCoversExhaustive(t *testing.T) {
	var pats []string
	for _, t := range bruteTopics([]string{"a", "b", "*", "**"}, 3) {
		if hub.ValidatePattern(t) == nil {
			pats = append(pats, t)
		}
	}
	for _, b := range pats {
		for _, a := range pats {
			if got, want := Covers(b, a), bruteCovers(b, a); got != want {
				t.Errorf("Covers(%q, %q) = %v, brute force says %v", b, a, got, want)
			}
		}
	}
}

func FuzzCovers(f *testing.F) {
	f.Add([]byte{2, 0, 2}, []byte{2, 0, 3})
	f.Add([]byte{1, 3}, []byte{2, 1, 1})
	f.Fuzz(func(t *testing.T, bb, ab []byte) {
		b, a := patternOf(bb), patternOf(ab)
		if got, want := Covers(b, a), bruteCovers(b, a); got != want {
			t.Fatalf("Covers(%q, %q) = %v, brute force says %v", b, a, got, want)
		}
	})
}

// FuzzCoversAny feeds arbitrary strings: Covers must not panic, and when both are valid
// patterns it must agree with Match on topics.
func FuzzCoversAny(f *testing.F) {
	f.Add("users/17/**", "users/**", "users/18/x")
	f.Add("a/*", "a/b", "a/b")
	f.Fuzz(func(t *testing.T, b, a, topic string) {
		got := Covers(b, a)
		if hub.ValidatePattern(b) != nil || hub.ValidatePattern(a) != nil || hub.ValidateTopic(topic) != nil {
			return
		}
		if got && hub.Match(a, topic) && !hub.Match(b, topic) {
			t.Fatalf("Covers(%q, %q) but %q matches only the second", b, a, topic)
		}
		if !hub.IsPattern(a) && got != hub.Match(b, a) {
			t.Fatalf("Covers(%q, topic %q) = %v, Match says %v", b, a, got, !got)
		}
	})
}
