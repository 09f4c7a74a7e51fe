package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Server is a server process started by the bench, so that its memory and CPU can be read
// from /proc and every scenario starts from a fresh process.
type Server struct {
	URL string
	PID int
	cmd *exec.Cmd
	dir string
}

// Spawn starts `exe args... --addr 127.0.0.1:PORT` on a free port and waits until GET /readyz
// answers 200. extra is appended after the address.
func Spawn(ctx context.Context, exe string, args []string, stderr io.Writer) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(exe, append(args, "--addr", addr)...)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + addr, PID: cmd.Process.Pid, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("bench: %s did not become ready at %s", exe, s.URL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SpawnHerald starts `exe serve` with an in-memory or embedded log in a temporary directory.
func SpawnHerald(ctx context.Context, exe, engine, key string, stderr io.Writer) (*Server, error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, err
	}
	s, err := Spawn(ctx, exe, []string{"serve", "--data-dir", dir, "--engine", engine,
		"--publish-keys", key, "--log-level", "warn", "--limits-max-batch", "10000"}, stderr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.dir = dir
	return s, nil
}

// Stop ends the process (SIGTERM, then SIGKILL after 15s) and removes its data directory.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
