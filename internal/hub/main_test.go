package hub_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No test may leave a goroutine behind: every subscription, stream and server it starts ends
// with the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
