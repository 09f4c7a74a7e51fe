package client

import (
	"testing"
	"time"
)

func TestFullJitter(t *testing.T) {
	tests := []struct {
		base, limit time.Duration
		attempt     int
		upper       time.Duration // every delay is in [0, upper)
	}{
		{time.Second, 30 * time.Second, 0, time.Second},
		{time.Second, 30 * time.Second, 3, 8 * time.Second},
		{time.Second, 30 * time.Second, 10, 30 * time.Second},
		{time.Second, 30 * time.Second, 200, 30 * time.Second}, // no overflow
		{time.Minute, 30 * time.Second, 0, time.Minute},        // a server's advice beats the cap
	}
	for _, tt := range tests {
		var most time.Duration
		for range 2000 {
			d := fullJitter(tt.base, tt.limit, tt.attempt)
			if d < 0 || d >= tt.upper {
				t.Fatalf("fullJitter(%v, %v, %d) = %v, want in [0, %v)", tt.base, tt.limit, tt.attempt, d, tt.upper)
			}
			most = max(most, d)
		}
		if most < tt.upper/2 {
			t.Errorf("fullJitter(%v, %v, %d): largest of 2000 draws %v, want spread up to %v", tt.base, tt.limit, tt.attempt, most, tt.upper)
		}
	}
}
