package ws

import "testing"

// UseBlockingReads has connections opened during the test read with a goroutine each, as on
// systems without epoll.
func UseBlockingReads(t *testing.T) {
	blockingReads.Store(true)
	t.Cleanup(func() { blockingReads.Store(false) })
}
