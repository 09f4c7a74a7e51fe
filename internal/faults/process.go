package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build compiles the herald command into dir and returns the binary's path. moduleDir is the
// repository root.
func Build(moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "herald")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/herald")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address that was free a moment ago, so that a server can be
// restarted on the same address and clients reconnect to it.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Proc is a running `herald serve`.
type Proc struct {
	Cmd  *exec.Cmd
	URL  string
	Key  string
	Exit chan error // receives the exit once
	Err  *bytes.Buffer
}

var listening = regexp.MustCompile(`Herald is listening on (http://\S+)`)

// Start runs `bin serve --addr addr --data-dir dataDir args...` and waits until it listens.
func Start(bin, addr, dataDir string, args ...string) (*Proc, error) {
	args = append([]string{"serve", "--addr", addr, "--data-dir", dataDir, "--log-level", "warn"}, args...)
	p := &Proc{Cmd: exec.Command(bin, args...), Exit: make(chan error, 1), Err: new(bytes.Buffer)}
	stdout, err := p.Cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.Cmd.Stderr = p.Err
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.Exit <- p.Cmd.Wait() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-found:
		p.URL = strings.Replace(u, "localhost", "127.0.0.1", 1)
	case err := <-p.Exit:
		return nil, fmt.Errorf("herald exited before listening: %v\n%s", err, p.Err)
	case <-time.After(60 * time.Second):
		p.Cmd.Process.Kill()
		<-p.Exit
		return nil, fmt.Errorf("herald did not listen within 60s")
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "publisher.key"))
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.Key = strings.TrimSpace(string(key))
	return p, nil
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.Exit
}

// Term sends SIGTERM and waits for the exit, returning its error.
func (p *Proc) Term() error {
	p.Cmd.Process.Signal(syscall.SIGTERM)
	return <-p.Exit
}

// RSS returns the resident set size of the process, from /proc.
func (p *Proc) RSS() (int64, error) { return RSS(p.Cmd.Process.Pid) }

// RSS returns the resident set size of process pid in bytes, from /proc/PID/status.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// OpenFiles returns how many file descriptors process pid holds.
func OpenFiles(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
