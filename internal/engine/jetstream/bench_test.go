package jetstream

import (
	"fmt"
	"testing"

	"github.com/herald-push/herald/internal/hub"
)

// BenchmarkAppendBatch measures Append throughput on the embedded file store with one batch
// per call: batch 1 is a publisher sending one message at a time (round-trip bound), batch
// 1000 the group-commit rate. The parallel case is many single-message publishers at once,
// which share the connection and so the server's batching; sync is SyncAlways, for comparison.
func BenchmarkAppendBatch(b *testing.B) {
	for _, bc := range []struct {
		n        int
		parallel bool
		sync     bool
	}{{1, false, false}, {1000, false, false}, {1, true, false}, {1000, false, true}} {
		name := fmt.Sprint(bc.n)
		if bc.parallel {
			name += "/parallel"
		}
		if bc.sync {
			name += "/sync"
		}
		b.Run(name, func(b *testing.B) {
			l := openEmbedded(b, Config{SyncAlways: bc.sync})
			ctx := testCtx(b)
			data := make([]byte, 200)
			appendBatch := func() {
				batch := make([]*hub.Message, bc.n)
				for i := range batch {
					batch[i] = &hub.Message{Topics: []string{"bench/topic"}, Data: data}
				}
				if _, err := l.Append(ctx, batch); err != nil {
					b.Error(err)
				}
			}
			if bc.parallel {
				b.SetParallelism(8) // 16 publishers on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						appendBatch()
					}
				})
			} else {
				for b.Loop() {
					appendBatch()
				}
			}
			b.ReportMetric(float64(b.N*bc.n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
