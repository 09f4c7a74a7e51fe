//go:build !linux

package sse

import (
	"errors"
	"net"

	"github.com/herald-push/herald/internal/hub"
)

// hijackSupported is false off Linux: streams keep a goroutine per connection.
const hijackSupported = false

type pool struct{}

func newPool(*Handler, int) *pool { return nil }

func (*pool) add(net.Conn, *hub.Subscription, string, bool, func()) error {
	return errors.New("sse: writer pool not supported on this platform")
}
