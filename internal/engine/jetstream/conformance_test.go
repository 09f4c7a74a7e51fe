package jetstream

import (
	"testing"

	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/hub/hubtest"
)

func TestConformance(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		hubtest.TestLog(t, func(t *testing.T, r hub.Retention) hub.Log {
			return open(t, Config{Retention: r})
		})
	})
}
