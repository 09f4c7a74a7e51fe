package soak

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestShortSoak runs the soak runner as CI does: 60 seconds under CI=true, 10 seconds locally
// (HERALD_SOAK=5m for longer). Every line of its report is logged.
func TestShortSoak(t *testing.T) {
	d := 10 * time.Second
	if os.Getenv("CI") == "true" {
		d = time.Minute
	}
	if v := os.Getenv("HERALD_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("HERALD_SOAK=%q: %v", v, err)
		}
	}
	var out strings.Builder
	res, err := Run(context.Background(), Config{Duration: d, Clients: 30, Publishers: 3, Rate: 40, Interval: d / 5, Churn: 500 * time.Millisecond, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.Acked == 0 || res.Report.Resumes == 0 {
		t.Errorf("the soak proved nothing: %s", res.Report)
	}
}
