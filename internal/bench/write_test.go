//go:build linux

package bench

import (
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLoopbackWrite measures the floor under low-rate fan-out: when messages are rare,
// every delivery is one write syscall of one small SSE frame to one socket, and one read on
// the subscriber's side. Each op writes a 100-byte frame to the next of 1,000 loopback
// connections whose readers drain them, as the bench client does. It reports the writer's
// CPU per write (its OS thread's rusage: the syscall plus the loopback TCP work done in the
// sender's context) and the CPU of the whole process per delivery (writer and readers), to
// compute what 10,000 subscribers at 10 msg/s cost at least on this machine:
//
//	go test -run '^$' -bench LoopbackWrite -benchtime 200000x ./internal/bench
func BenchmarkLoopbackWrite(b *testing.B) {
	const conns = 1000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var readers sync.WaitGroup
	accepted := make(chan net.Conn, conns)
	go func() {
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var writers []net.Conn
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s := <-accepted
		defer s.Close()
		writers = append(writers, s)
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 8192)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	frame := []byte("id: k3f9a2-1234\ndata: ")
	frame = appendPayload(frame, 0, 1234, time.Now().UnixNano(), 98-len(frame))
	frame = append(frame, "\n\n"...) // 100 bytes

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	thread0, proc0 := cpuTime(rusageThread), cpuTime(syscall.RUSAGE_SELF)
	b.ResetTimer()
	for i := range b.N {
		if _, err := writers[i%conns].Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Let the readers finish what was written before reading the process's CPU.
	time.Sleep(50 * time.Millisecond)
	thread1, proc1 := cpuTime(rusageThread), cpuTime(syscall.RUSAGE_SELF)
	b.ReportMetric(float64(thread1-thread0)/float64(b.N), "writer-cpu-ns/write")
	b.ReportMetric(float64(proc1-proc0)/float64(b.N), "process-cpu-ns/delivery")
	for _, w := range writers {
		w.Close()
	}
	readers.Wait()
}

const rusageThread = 1 // RUSAGE_THREAD (Linux)

// cpuTime is user plus system CPU time of who, in nanoseconds.
func cpuTime(who int) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
