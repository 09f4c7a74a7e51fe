package sse

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// No test may leave a goroutine behind: every subscription, stream and server it starts ends
// with the test. The SSE pool's hang-up watcher notices it has nothing left to watch at its
// next epoll timeout (500ms), later than goleak's default wait, so look again for 3 seconds
// before calling anything a leak.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		err := goleak.Find()
		for deadline := time.Now().Add(3 * time.Second); err != nil && time.Now().Before(deadline); err = goleak.Find() {
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}
