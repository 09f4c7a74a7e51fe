package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/jetstream"
	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/heraldtest"
)

// smallDisk mounts an 8 MiB tmpfs for the data directory, or skips (fails under CI=true) when
// this environment may not mount.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a small tmpfs (%v: %s); the disk-full test needs root", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; skipping (this fails under CI=true)")
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestDiskFull fills the data directory's file system while publishing. Publishes then fail
// with 507 and are never delivered; subscribers and history keep working. The embedded store
// latches its write error, so recovery is: free space, restart Herald. After the restart,
// publishing works again and the subscriber, resuming, has everything acknowledged.
func TestDiskFull(t *testing.T) {
	disk := smallDisk(t)
	storeDir := filepath.Join(disk, "jetstream")
	open := func() *jetstream.Log {
		l, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: storeDir, Logger: quiet, AckTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	log1 := open()
	srv := heraldtest.NewServer(t, heraldtest.Options{Log: log1})
	o := faults.NewOracle()
	start, from := startID(t, srv)
	topics := []string{"disk"}
	s := o.Subscriber("sub", topics, from)
	c := faults.NewSSEClient(srv.URL, topics, s, start)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	waitConnected(t, []*faults.SSEClient{c})

	// Leave about 1 MiB free, then publish 8 KiB messages until the store refuses.
	filler := filepath.Join(disk, "filler")
	fill(t, filler, disk, 1<<20)
	pub := &faults.Publisher{Name: "p" + strings.Repeat("x", 8<<10), Topic: "disk", Base: srv.URL, Key: heraldtest.Key, Oracle: o, Strict5xx: true}
	var codes []int
	for i := 0; i < 1000 && len(codes) < 3; i++ {
		code, err := pub.Publish(context.Background())
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if code != 200 {
			codes = append(codes, code)
		}
	}
	t.Logf("answers once the disk filled: %v", codes)
	if len(codes) == 0 {
		t.Fatal("1,000 publishes of 8 KiB on an 8 MiB disk all succeeded")
	}
	for _, code := range codes {
		if code != 507 {
			t.Errorf("publish on a full disk answered %d, want 507", code)
		}
	}
	// Reads keep working: history answers and the subscriber has everything acknowledged.
	if code, body := heraldtest.Do(t, "GET", srv.URL+"/history?topic=disk&limit=1", "", "", nil); code != 200 {
		t.Errorf("history on a full disk: %d %s", code, body)
	}
	waitCaughtUp(t, o, []*faults.Subscriber{s}, 30*time.Second)
	cancel()
	<-done

	// Free the space and restart (a new store on the same directory): publishing recovers and
	// the subscriber resumes with its last id.
	os.Remove(filler)
	srv.Hub.Close()
	srv.HTTP.Close()
	log1.Close()
	srv2 := heraldtest.NewServer(t, heraldtest.Options{Log: open()})
	pub.Base = srv2.URL
	for range 5 {
		if code, err := pub.Publish(context.Background()); code != 200 {
			t.Fatalf("publish after freeing space and restarting: %d %v", code, err)
		}
	}
	c2 := faults.NewSSEClient(srv2.URL, topics, s, c.LastID())
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { c2.Run(ctx); close(done) }()
	waitCaughtUp(t, o, []*faults.Subscriber{s}, 30*time.Second)
	cancel()
	<-done
	verify(t, o, false)
}

// fill writes a file until the file system of dir has about free bytes left.
func fill(t *testing.T, name, dir string, free int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if avail := statFree(t, dir); avail <= free {
			return
		}
		if _, err := f.Write(chunk); err != nil {
			return
		}
	}
}
