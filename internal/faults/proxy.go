package faults

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards TCP connections to a target and injects faults on command: reset a connection
// in the middle of what the server is sending, stall it, or cut every connection. It runs in the
// test's process; Close stops it and waits for its goroutines.
type Proxy struct {
	ln      net.Listener
	targets []string

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup

	Accepted atomic.Int64
	Resets   atomic.Int64

	nextReset atomic.Int64 // resetAfter for the next accepted connection; -1: none
}

type proxyConn struct {
	client, server *net.TCPConn
	// resetAfter >= 0 makes the server-to-client copy forward that many more bytes and then
	// reset both sides; -1 means no pending reset.
	resetAfter atomic.Int64
	stalled    atomic.Bool
	stallCh    chan struct{} // closed and replaced to wake a stalled copier
	mu         sync.Mutex
	halfClosed atomic.Int32 // directions that ended with EOF; at 2 the connection is done
}

// NewProxy listens on a free loopback port and forwards to target (host:port). With fallbacks
// it is also a load balancer that takes a dead node out: each new connection goes to the first
// of target, fallbacks... that accepts it.
func NewProxy(target string, fallbacks ...string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, targets: append([]string{target}, fallbacks...), conns: make(map[*proxyConn]struct{})}
	p.nextReset.Store(-1)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		var s net.Conn
		for _, t := range p.targets {
			if s, err = net.Dial("tcp", t); err == nil {
				break
			}
		}
		if err != nil {
			reset(c.(*net.TCPConn))
			continue
		}
		pc := &proxyConn{client: c.(*net.TCPConn), server: s.(*net.TCPConn), stallCh: make(chan struct{})}
		pc.resetAfter.Store(p.nextReset.Swap(-1))
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			reset(pc.client)
			reset(pc.server)
			return
		}
		p.conns[pc] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		p.Accepted.Add(1)
		go p.pipe(pc, pc.server, pc.client, true)
		go p.pipe(pc, pc.client, pc.server, false)
	}
}

// pipe copies src to dst. The downstream copy (server to client) honours resetAfter, so a reset
// can land in the middle of an SSE frame.
func (p *Proxy) pipe(pc *proxyConn, src, dst *net.TCPConn, downstream bool) {
	defer p.wg.Done()
	buf := make([]byte, 8<<10)
	for {
		n, err := src.Read(buf)
		for pc.stalled.Load() {
			pc.mu.Lock()
			ch := pc.stallCh
			pc.mu.Unlock()
			if !pc.stalled.Load() {
				break
			}
			<-ch
		}
		if n > 0 && downstream {
			if left := pc.resetAfter.Load(); left >= 0 {
				if int64(n) >= left {
					dst.Write(buf[:left])
					p.Resets.Add(1)
					p.drop(pc) // resets both sides
					return
				}
				pc.resetAfter.Store(left - int64(n))
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				p.drop(pc)
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) { // pass the FIN on; the other direction may go on
				dst.CloseWrite()
				if pc.halfClosed.Add(1) < 2 {
					return
				}
			}
			p.drop(pc)
			return
		}
	}
}

func (p *Proxy) drop(pc *proxyConn) {
	p.mu.Lock()
	_, ok := p.conns[pc]
	delete(p.conns, pc)
	p.mu.Unlock()
	if ok {
		pc.unstall()
		reset(pc.client)
		reset(pc.server)
	}
}

// reset closes c with an RST instead of a FIN: the peer sees "connection reset".
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

func (pc *proxyConn) unstall() {
	pc.mu.Lock()
	if pc.stalled.Swap(false) {
		close(pc.stallCh)
		pc.stallCh = make(chan struct{})
	}
	pc.mu.Unlock()
}

func (p *Proxy) snapshot() []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		out = append(out, pc)
	}
	return out
}

// Conns returns how many connections are open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// ResetMidStream arranges for one open connection, chosen by pick (given the number open), to
// be reset after the server has sent after more bytes through it. It reports whether a
// connection was open.
func (p *Proxy) ResetMidStream(pick func(n int) int, after int64) bool {
	conns := p.snapshot()
	if len(conns) == 0 {
		return false
	}
	conns[pick(len(conns))].resetAfter.Store(after)
	return true
}

// ResetNextAfter makes the next accepted connection reset once the server has sent n bytes
// through it: with every n from 0 to the length of a stream, a test cuts every frame at every
// byte.
func (p *Proxy) ResetNextAfter(n int64) { p.nextReset.Store(n) }

// ResetAll resets every open connection now.
func (p *Proxy) ResetAll() {
	for _, pc := range p.snapshot() {
		p.Resets.Add(1)
		p.drop(pc)
	}
}

// Stall stops forwarding in both directions on every open connection without closing it, as a
// dead network path does; Unstall resumes.
func (p *Proxy) Stall() {
	for _, pc := range p.snapshot() {
		pc.stalled.Store(true)
	}
}

// Unstall resumes forwarding on every stalled connection.
func (p *Proxy) Unstall() {
	for _, pc := range p.snapshot() {
		pc.unstall()
	}
}

// Close stops accepting, resets every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	return err
}
