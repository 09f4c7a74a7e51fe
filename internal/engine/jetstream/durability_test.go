package jetstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/herald-push/herald/internal/hub"
)

func TestReopenKeepsEverything(t *testing.T) {
	dir, stream := t.TempDir(), uniqueStream()
	l, err := Open(testCtx(t), Config{DataDir: dir, Stream: stream, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var acked []*hub.Message
	for b := range 10 {
		var batch []*hub.Message
		for i := range 50 {
			m := msg([]string{fmt.Sprintf("r/%d", i%5)}, fmt.Sprintf("%d.%d", b, i))
			m.Retain = i == 49
			batch = append(batch, m)
		}
		appendOK(t, l, batch...)
		acked = append(acked, batch...)
	}
	epoch := l.Epoch()
	l.Close()

	l = openEmbedded(t, Config{DataDir: dir, Stream: stream})
	if l.Epoch() != epoch {
		t.Errorf("epoch after reopen = %q, want %q", l.Epoch(), epoch)
	}
	got := readAll(t, l, nil)
	if len(got) != len(acked) {
		t.Fatalf("after reopen %d messages, want %d", len(got), len(acked))
	}
	for i, m := range got {
		if m.Seq != acked[i].Seq || string(m.Data) != string(acked[i].Data) {
			t.Fatalf("message %d after reopen = seq %d %q, want seq %d %q", i, m.Seq, m.Data, acked[i].Seq, acked[i].Data)
		}
	}
	ret, err := l.Retained(testCtx(t), hub.MustFilter("r/4"))
	if err != nil || len(ret) != 1 || ret[0].Seq != acked[len(acked)-1].Seq {
		t.Errorf("Retained after reopen = %v, %v; want the last message", ret, err)
	}
}

const killDirEnv = "HERALD_JETSTREAM_KILL_DIR"

// TestKillHelper is the process TestKill9 kills: it appends batches forever and prints the
// Seq of every acknowledged message.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("helper process for TestKill9")
	}
	l, err := Open(context.Background(), Config{DataDir: dir, Stream: "KILL", Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("epoch", l.Epoch())
	for b := 0; ; b++ {
		batch := make([]*hub.Message, 20)
		for i := range batch {
			batch[i] = msg([]string{fmt.Sprintf("k/%d", i%3)}, fmt.Sprintf("%d.%d", b, i))
		}
		if _, err := l.Append(context.Background(), batch); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		var line strings.Builder
		for _, m := range batch {
			fmt.Fprintf(&line, "acked %d\n", m.Seq)
		}
		os.Stdout.WriteString(line.String())
	}
}

// TestKill9 kills a process while it appends, with SIGKILL, and checks that every message it
// was told is stored is there after a restart, under the same epoch: an ack means the file
// store handed the message to the operating system.
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var epoch string
	acked := map[uint64]bool{}
	killed := false
	for sc.Scan() {
		word, arg, _ := strings.Cut(sc.Text(), " ")
		switch word {
		case "epoch":
			epoch = arg
		case "acked":
			seq, err := strconv.ParseUint(arg, 10, 64)
			if err != nil {
				t.Fatalf("helper printed %q", sc.Text())
			}
			acked[seq] = true
		case "error":
			t.Fatalf("helper failed: %s", arg)
		}
		if len(acked) >= 3000 && !killed {
			cmd.Process.Signal(syscall.SIGKILL) // lines already written still count
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper ended before the kill: %v", err)
	}

	l := openEmbedded(t, Config{DataDir: dir, Stream: "KILL"})
	if l.Epoch() != epoch {
		t.Errorf("epoch after kill -9 = %q, want %q", l.Epoch(), epoch)
	}
	stored := map[uint64]bool{}
	for _, m := range readAll(t, l, nil) {
		stored[m.Seq] = true
	}
	missing := 0
	for seq := range acked {
		if !stored[seq] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged messages missing after kill -9", missing, len(acked))
	}
	t.Logf("%d acknowledged, %d stored after kill -9", len(acked), len(stored))
}

// startTCP runs a nats-server on 127.0.0.1:port (0: any) storing JetStream under dir: an
// "external" NATS that the test can restart.
func startTCP(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// TestTailAcrossNATSRestart restarts the NATS server under a running Tail: the ordered
// consumer is recreated after the reconnect, and no message is skipped or repeated.
func TestTailAcrossNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startTCP(t, dir, 0)
	port := srv.Addr().(*net.TCPAddr).Port
	l, err := Open(testCtx(t), Config{URL: srv.ClientURL(), Stream: uniqueStream(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	ctx, cancel := context.WithCancel(testCtx(t))
	got := make(chan *hub.Message, 1000)
	done := make(chan error, 1)
	go func() { done <- l.Tail(ctx, 0, func(m *hub.Message) { got <- m }) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Tail ended with %v, want context.Canceled", err)
		}
	}()

	const half = 100
	appendN := func(from int) {
		for b := 0; b < half; b += 10 {
			batch := make([]*hub.Message, 10)
			for i := range batch {
				batch[i] = msg([]string{"x"}, strconv.Itoa(from+b+i))
			}
			appendOK(t, l, batch...)
		}
	}
	expect := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			select {
			case m := <-got:
				if m.Seq != uint64(i+1) || string(m.Data) != strconv.Itoa(i) {
					t.Fatalf("Tail delivered seq %d %q, want seq %d %q", m.Seq, m.Data, i+1, strconv.Itoa(i))
				}
			case err := <-done:
				t.Fatalf("Tail ended after %d messages: %v", i, err)
			case <-time.After(15 * time.Second):
				t.Fatalf("Tail delivered %d of %d messages", i, to)
			}
		}
	}

	appendN(0)
	expect(0, half)
	reconnected := l.nc.StatusChanged(nats.CONNECTED)
	srv.Shutdown()
	srv.WaitForShutdown()
	startTCP(t, dir, port)
	select {
	case <-reconnected:
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect to the restarted server")
	}
	appendN(half)
	expect(half, 2*half)
	select {
	case m := <-got:
		t.Fatalf("Tail delivered an extra message: seq %d", m.Seq)
	default:
	}
}

// TestNodesShareARecreatedStream restarts NATS on an empty store under two nodes (Logs) of one
// stream. The first to call Last recreates the stream with a new epoch; the other must not
// mint ids of the old epoch for the new stream's messages: its Append fails as unavailable
// until its Last adopts the new epoch. Found by the cluster data-loss test under the faults
// oracle: a node kept the old epoch, so the same message had two ids on two nodes.
func TestNodesShareARecreatedStream(t *testing.T) {
	srv := startTCP(t, t.TempDir(), 0)
	port := srv.Addr().(*net.TCPAddr).Port
	stream := uniqueStream()
	var nodes [2]*Log
	for i := range nodes {
		l, err := Open(testCtx(t), Config{URL: srv.ClientURL(), Stream: stream, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		nodes[i] = l
	}
	a, b := nodes[0], nodes[1]
	appendOK(t, a, msg([]string{"x"}, "old"))
	old := a.Epoch()

	reconnected := []<-chan nats.Status{a.nc.StatusChanged(nats.CONNECTED), b.nc.StatusChanged(nats.CONNECTED)}
	srv.Shutdown()
	srv.WaitForShutdown()
	startTCP(t, t.TempDir(), port) // empty: the log is lost
	for _, ch := range reconnected {
		select {
		case <-ch:
		case <-time.After(15 * time.Second):
			t.Fatal("no reconnect to the restarted server")
		}
	}
	if _, err := a.Last(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if a.Epoch() == old {
		t.Fatalf("recreated stream kept epoch %q", old)
	}
	m := msg([]string{"x"}, "new")
	if _, err := b.Append(testCtx(t), []*hub.Message{m}); !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Append on the node that did not recreate the stream = %v (id %q), want hub.ErrUnavailable until it adopts the new epoch", err, m.ID)
	}
	if _, err := b.Last(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if b.Epoch() != a.Epoch() {
		t.Errorf("after Last, the other node's epoch = %q, want the new stream's %q", b.Epoch(), a.Epoch())
	}
	m = msg([]string{"x"}, "new")
	appendOK(t, b, m)
	if want := hub.FormatID(a.Epoch(), 1); m.ID != want {
		t.Errorf("id after adopting = %q, want %q", m.ID, want)
	}
}
