//go:build !linux

package netpoll

import "syscall"

// Supported reports whether Add can work on this platform.
const Supported = false

const (
	Readable Events = 1 << iota
	HangUp
)

// Poller is a stub off Linux: Add always fails, and callers keep a goroutine per socket.
type Poller struct{}

// Watch is never returned off Linux.
type Watch struct{}

func (p *Poller) Add(syscall.RawConn, Events, func(Events)) (*Watch, error) {
	return nil, ErrUnsupported
}

func (w *Watch) Rearm() error { return ErrUnsupported }
func (w *Watch) Stop()        {}
