package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// fullJitter returns a delay drawn uniformly from [0, min(limit, base·2^attempt)): the "full
// jitter" of exponential backoff, which spreads the reconnects of many clients after a server
// restart instead of synchronising them. limit never cuts below base, so a server that advises
// a long retry delay is obeyed.
func fullJitter(base, limit time.Duration, attempt int) time.Duration {
	limit = max(limit, base)
	d := limit
	if attempt < 32 {
		if e := base << attempt; e > 0 && e < limit {
			d = e
		}
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
