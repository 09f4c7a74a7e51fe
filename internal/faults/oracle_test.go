package faults_test

import (
	"strings"
	"testing"

	"github.com/herald-push/herald/internal/faults"
)

// TestOracleEpochs checks the oracle's rules when the log loses its data and starts a new
// epoch whose sequences start again: a subscriber told with a gap notice passes, whatever the
// old epoch still owed it; one moved to the new epoch silently fails; order and "acknowledged
// as" compare epochs first.
func TestOracleEpochs(t *testing.T) {
	tests := []struct {
		name string
		// run delivers to s; the oracle has acknowledged p:1..p:3 as old-1..old-3 and p:4, p:5
		// as new-1, new-2.
		run  func(s *faults.Subscriber)
		want []string // substrings of the problems, in order; none means it passes
	}{
		{"everything", func(s *faults.Subscriber) {
			for i, id := range []string{"old-1", "old-2", "old-3", "new-1", "new-2"} {
				if i == 3 {
					s.Gap("epoch: the log was recreated")
				}
				s.Deliver(id, faults.Payload("p", i+1))
			}
		}, nil},
		{"gap covers the lost tail and the new epoch's start", func(s *faults.Subscriber) {
			s.Deliver("old-1", "p:1")
			s.Gap("epoch: the log was recreated")
			s.Deliver("new-2", "p:5")
		}, nil},
		{"gap and nothing after", func(s *faults.Subscriber) {
			s.Deliver("old-1", "p:1")
			s.Gap("epoch: the log was recreated")
		}, nil},
		{"silent new epoch", func(s *faults.Subscriber) {
			s.Deliver("old-1", "p:1")
			s.Deliver("new-1", "p:4")
			s.Deliver("new-2", "p:5")
		}, []string{"starts a new epoch without a gap notice", "2 acknowledged publishes never delivered"}},
		{"old epoch after the new one", func(s *faults.Subscriber) {
			s.Gap("epoch: the log was recreated")
			s.Deliver("new-1", "p:4")
			s.Deliver("old-3", "p:3")
		}, []string{"out of order", "1 acknowledged publishes never delivered"}},
		{"acknowledged in one epoch, delivered in another", func(s *faults.Subscriber) {
			s.Gap("epoch: the log was recreated")
			s.Deliver("new-1", "p:1")
		}, []string{"acknowledged as", "1 acknowledged publishes never delivered"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := faults.NewOracle()
			for i, id := range []string{"old-1", "old-2", "old-3", "new-1", "new-2"} {
				if err := o.Record("t", faults.Payload("p", i+1), faults.Acked, id); err != nil {
					t.Fatal(err)
				}
			}
			tt.run(o.Subscriber("s", []string{"t"}, 0))
			got := o.Check().Problems
			match := len(got) == len(tt.want)
			for i := 0; match && i < len(got); i++ {
				match = strings.Contains(got[i], tt.want[i])
			}
			if !match {
				t.Errorf("problems = %q, want %d matching %q", got, len(tt.want), tt.want)
			}
		})
	}
}
