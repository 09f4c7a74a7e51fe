package sse

import (
	"sync"
	"syscall"
)

// hijackSupported: the pool needs non-blocking socket writes and epoll.
const hijackSupported = true

// watcher finds clients that hung up, without a goroutine per connection: one goroutine
// waits in epoll for EPOLLRDHUP on every pooled socket (alongside the Go runtime's own
// registration) and tells the connection's worker. It stops when nothing is watched.
type watcher struct {
	mu      sync.Mutex
	epfd    int
	conns   map[int32]*conn
	running bool
}

func fdOf(c *conn) int32 {
	var fd int32 = -1
	c.raw.Control(func(f uintptr) { fd = int32(f) })
	return fd
}

func (wt *watcher) add(c *conn) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.conns == nil {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return // heartbeats and write errors still find dead peers
		}
		wt.epfd, wt.conns = epfd, make(map[int32]*conn)
	}
	fd := fdOf(c)
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP, Fd: fd}
	if syscall.EpollCtl(wt.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) != nil {
		return
	}
	wt.conns[fd] = c
	if !wt.running {
		wt.running = true
		go wt.run(wt.epfd)
	}
}

// remove stops watching c; call it before closing the socket, whose number may be reused.
func (wt *watcher) remove(c *conn) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	fd := fdOf(c)
	if wt.conns[fd] == c {
		delete(wt.conns, fd)
		syscall.EpollCtl(wt.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	}
}

func (wt *watcher) run(epfd int) {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(epfd, events, 500)
		wt.mu.Lock()
		if err != nil && err != syscall.EINTR {
			n = 0
		}
		for _, ev := range events[:max(n, 0)] {
			if c := wt.conns[ev.Fd]; c != nil {
				delete(wt.conns, ev.Fd)
				syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
				gone := ErrClientGone
				c.failed.CompareAndSwap(nil, &gone)
				c.w.schedule(c)
			}
		}
		if len(wt.conns) == 0 {
			wt.running = false
			wt.mu.Unlock()
			return
		}
		wt.mu.Unlock()
	}
}
