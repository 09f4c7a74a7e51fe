package jetstream

import (
	"slices"
	"testing"
)

func TestSubjectEncoding(t *testing.T) {
	tests := []struct {
		topic, subject string
	}{
		{"news", "P.t.news"},
		{"news/sport", "P.t.news.sport"},
		{"a.b/c_d", "P.t.a_2Eb.c_5Fd"},
		{"a_2E", "P.t.a_5F2E"}, // an escape-looking topic cannot collide with "a."
		{"x~:@+=", "P.t.x_7E_3A_40_2B_3D"},
		{"Up-Case-9", "P.t.Up-Case-9"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := topicSubject("P.t", tt.topic)
		if got != tt.subject {
			t.Errorf("topicSubject(%q) = %q, want %q", tt.topic, got, tt.subject)
		}
		back, err := subjectTopic("P.t", got)
		if err != nil || back != tt.topic {
			t.Errorf("subjectTopic(%q) = %q, %v; want %q", got, back, err, tt.topic)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share subject %q", other, tt.topic, got)
		}
		seen[got] = tt.topic
	}
}

func TestPatternSubject(t *testing.T) {
	tests := []struct {
		pattern, subject string
	}{
		{"news/*", "P.t.news.*"},
		{"news/**", "P.t.news.>"},
		{"**", "P.t.>"},
		{"*/paris", "P.t.*.paris"},
		{"a.b/*/c", "P.t.a_2Eb.*.c"},
	}
	for _, tt := range tests {
		if got := patternSubject("P.t", tt.pattern); got != tt.subject {
			t.Errorf("patternSubject(%q) = %q, want %q", tt.pattern, got, tt.subject)
		}
	}
}

func TestFilterSubjectsDropCovered(t *testing.T) {
	tests := []struct {
		entries []string
		want    []string
	}{
		{[]string{"a"}, []string{"P.t.a", "P.m"}},
		{[]string{"a", "a/*", "a/**", "a/b"}, []string{"P.t.a", "P.t.a.>", "P.m"}},
		{[]string{"**", "x"}, []string{"P.t.>", "P.m"}},
		{[]string{"*/b", "a/*"}, []string{"P.t.*.b", "P.t.a.*", "P.m"}}, // overlap, neither covers
	}
	for _, tt := range tests {
		if got := filterSubjects("P.t", tt.entries, "P.m"); !slices.Equal(got, tt.want) {
			t.Errorf("filterSubjects(%q) = %q, want %q", tt.entries, got, tt.want)
		}
	}
}

func TestNewEpoch(t *testing.T) {
	for range 100 {
		e := newEpoch()
		if e == "" || len(e) > 13 {
			t.Fatalf("newEpoch() = %q, want 1-13 characters", e)
		}
		for _, c := range e {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
				t.Fatalf("newEpoch() = %q, want lowercase base 36", e)
			}
		}
	}
}
