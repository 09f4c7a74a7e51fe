package netpoll

import (
	"sync"
	"syscall"
)

// Supported reports whether Add can work on this platform.
const Supported = true

const (
	Readable Events = syscall.EPOLLIN    // data (or an end of stream) to read
	HangUp   Events = syscall.EPOLLRDHUP // the peer shut down its side or reset the connection
)

// Poller watches sockets. The zero value is ready to use; its goroutine runs only while
// something is watched, so an idle server (and a finished test) has none.
type Poller struct {
	mu      sync.Mutex
	epfd    int // 0 until the first Add
	watches map[int32]*Watch
	running bool
}

// Watch is one socket's registration. Every watch is one-shot (EPOLLONESHOT): after its
// callback it is disarmed until Rearm, so a readable socket is reported once, not once per
// epoll_wait until someone has read it.
type Watch struct {
	p      *Poller
	fd     int32
	events uint32
	fn     func(Events)
}

// Add watches the socket of rc for events. fn is called from the poller's goroutine, once
// per arming, and must not block. Call Stop before closing the socket: its number may be
// reused by the next one accepted.
func (p *Poller) Add(rc syscall.RawConn, events Events, fn func(Events)) (*Watch, error) {
	var fd int32 = -1
	if err := rc.Control(func(f uintptr) { fd = int32(f) }); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watches == nil {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		p.epfd, p.watches = epfd, make(map[int32]*Watch)
	}
	w := &Watch{p: p, fd: fd, events: uint32(events) | syscall.EPOLLONESHOT, fn: fn}
	ev := syscall.EpollEvent{Events: w.events, Fd: fd}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		return nil, err
	}
	p.watches[fd] = w
	if !p.running {
		p.running = true
		go p.run(p.epfd)
	}
	return w, nil
}

// Rearm watches the socket again after its callback. An event that is already pending (say,
// bytes that arrived in the meantime) is reported at once.
func (w *Watch) Rearm() error {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watches[w.fd] != w {
		return ErrStopped
	}
	ev := syscall.EpollEvent{Events: w.events, Fd: w.fd}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(w.fd), &ev)
}

// Stop ends the watch; a callback already under way may still run. It is safe to call more
// than once.
func (w *Watch) Stop() {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watches[w.fd] == w {
		delete(p.watches, w.fd)
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(w.fd), nil)
	}
}

// run waits for events and calls back, outside the lock (a callback may Stop or Rearm). It
// ends when nothing is watched; the timeout lets it notice.
func (p *Poller) run(epfd int) {
	events := make([]syscall.EpollEvent, 128)
	type call struct {
		fn func(Events)
		ev Events
	}
	var calls []call
	for {
		n, err := syscall.EpollWait(epfd, events, 500)
		if err != nil {
			n = 0 // EINTR
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if w := p.watches[ev.Fd]; w != nil {
				calls = append(calls, call{w.fn, Events(ev.Events)})
			}
		}
		if len(p.watches) == 0 && len(calls) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, c := range calls {
			c.fn(c.ev)
			calls[i] = call{}
		}
		calls = calls[:0]
	}
}
