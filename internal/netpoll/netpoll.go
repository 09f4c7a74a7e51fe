// Package netpoll tells when a socket is readable or hung up, without a goroutine per socket:
// one goroutine waits in epoll for every watched socket, alongside the Go runtime's own
// registration of the same socket, and calls back. Transports use it to hold idle
// connections with no goroutine (internal/ws) or to notice a client hanging up
// (internal/sse).
//
// It owns no socket and reads nothing: after a callback the caller reads through the net.Conn
// as usual, and the Go runtime parks that read as it always does.
package netpoll

import "errors"

// Events is a set of socket events.
type Events uint32

// ErrUnsupported is returned by Add where there is no epoll.
var ErrUnsupported = errors.New("netpoll: not supported on this platform")

// ErrStopped is returned by Rearm once the watch has been stopped.
var ErrStopped = errors.New("netpoll: watch stopped")
