package memory_test

import (
	"testing"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/hub/hubtest"
)

func TestConformance(t *testing.T) {
	hubtest.TestLog(t, func(t *testing.T, r hub.Retention) hub.Log {
		return memory.New(memory.Config{Retention: r})
	})
}
