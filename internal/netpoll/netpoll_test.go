package netpoll_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/netpoll"
)

func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func raw(t *testing.T, c net.Conn) syscall.RawConn {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func wait(t *testing.T, events chan netpoll.Events, want bool) netpoll.Events {
	t.Helper()
	select {
	case ev := <-events:
		if !want {
			t.Fatalf("event %#x, want none", ev)
		}
		return ev
	case <-time.After(300 * time.Millisecond):
		if want {
			t.Fatal("no event within 300ms")
		}
	}
	return 0
}

// A watch reports readability once per arming; Rearm reports what is still pending; Stop ends
// it; a hang-up is reported too.
func TestWatch(t *testing.T) {
	if !netpoll.Supported {
		t.Skip("no epoll here")
	}
	var p netpoll.Poller
	server, client := pair(t)
	events := make(chan netpoll.Events, 8)
	w, err := p.Add(raw(t, server), netpoll.Readable|netpoll.HangUp, func(ev netpoll.Events) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	wait(t, events, false) // nothing to read yet
	client.Write([]byte("a"))
	if ev := wait(t, events, true); ev&netpoll.Readable == 0 {
		t.Errorf("event %#x, want readable", ev)
	}
	client.Write([]byte("b"))
	wait(t, events, false) // one-shot: not re-armed yet
	if err := w.Rearm(); err != nil {
		t.Fatal(err)
	}
	wait(t, events, true) // "ab" is still unread
	buf := make([]byte, 2)
	server.Read(buf)
	w.Rearm()
	wait(t, events, false)
	client.Close()
	if ev := wait(t, events, true); ev&netpoll.HangUp == 0 {
		t.Errorf("event %#x after the peer closed, want hang-up", ev)
	}
	w.Stop()
	if err := w.Rearm(); err != netpoll.ErrStopped {
		t.Errorf("Rearm after Stop: %v, want ErrStopped", err)
	}
	w.Stop() // twice is fine
}
