package jetstream

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine that a Log, a Tail or the embedded server starts must end with Close or the
// Tail's context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
