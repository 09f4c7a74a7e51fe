// Package deploy holds the files that run Herald in production (nginx, systemd, Docker). Its
// test starts a real nginx with deploy/nginx/herald.conf in front of a real Herald.
package deploy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/sse"
)

// heartbeat is long on purpose: an event that arrives through nginx well before it was not
// held in a proxy buffer (a buffered stream only moves when the heartbeat fills it).
const heartbeat = 30 * time.Second

type proxy struct {
	url    string // https://127.0.0.1:port
	client *http.Client
	tls    *tls.Config
	herald *heraldtest.Server
}

func startNginx(t *testing.T) *proxy {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("nginx is required in CI (apt-get install nginx-light)")
			}
			t.Skip("nginx not installed (apt-get install nginx-light); skipping (this fails under CI=true)")
		}
	}
	h := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Heartbeat: heartbeat}})
	dir := t.TempDir()
	_, _, pool := heraldtest.SelfSigned(t, dir)
	port, plain := freePort(t), freePort(t)

	conf, err := os.ReadFile("nginx/herald.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped file, with only addresses and paths changed. A replacement that finds
	// nothing fails, so the test cannot silently drift from the file.
	text := string(conf)
	for _, r := range [][2]string{
		{"server 127.0.0.1:8080;", "server " + strings.TrimPrefix(h.URL, "http://") + ";"},
		{"listen 443 ssl http2;", fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", port)},
		{"listen [::]:443 ssl http2;\n", ""},
		{"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", plain)},
		{"listen [::]:80;\n", ""},
		{"/etc/letsencrypt/live/push.example.com/fullchain.pem", filepath.Join(dir, "cert.pem")},
		{"/etc/letsencrypt/live/push.example.com/privkey.pem", filepath.Join(dir, "key.pem")},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("deploy/nginx/herald.conf no longer contains %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	os.WriteFile(filepath.Join(dir, "herald.conf"), []byte(text), 0o600)
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/herald.conf;
}
`, dir)
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600)

	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s after 10s: %s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	t.Cleanup(client.CloseIdleConnections)
	return &proxy{url: "https://" + addr, client: client, tls: tc, herald: h}
}

// TestNginxSSE: events pass through nginx at once, over HTTP/2, and publishing works through it.
func TestNginxSSE(t *testing.T) {
	p := startNginx(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/events?topic=through/nginx", nil)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("GET /events through nginx: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	// Headers arrived, so the subscription exists: publish now (through nginx too).
	pub, _ := http.NewRequest("POST", p.url+"/publish", strings.NewReader(`{"topic":"through/nginx","data":"prompt"}`))
	pub.Header.Set("Content-Type", "application/json")
	pub.Header.Set("Authorization", "Bearer "+heraldtest.Key)
	presp, err := p.client.Do(pub)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("publish through nginx: %s", presp.Status)
	}
	if id := presp.Header.Get("X-Request-Id"); len(id) != 32 {
		t.Errorf("X-Request-Id = %q, want nginx's 32-hex $request_id passed to Herald and echoed", id)
	}

	got := make(chan sse.Event, 1)
	go func() {
		r := sse.NewReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if ev.Data != "" {
				got <- ev
				return
			}
		}
	}()
	select {
	case ev := <-got:
		if ev.Data != "prompt" {
			t.Errorf("event data = %q, want %q", ev.Data, "prompt")
		}
	case <-time.After(heartbeat / 3):
		t.Fatalf("no event through nginx within %v (heartbeat %v): the stream is buffered", heartbeat/3, heartbeat)
	}
}

// TestNginxWebSocket: the upgrade handshake passes through nginx.
func TestNginxWebSocket(t *testing.T) {
	p := startNginx(t)
	requireRoute(t, p.herald.URL+"/ws?topic=x")
	conn, err := tls.Dial("tcp", strings.TrimPrefix(p.url, "https://"), &tls.Config{
		RootCAs: p.tls.RootCAs, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// As a browser on the proxied page sends it: Host with the port, Origin the page's origin.
	fmt.Fprintf(conn, "GET /ws?topic=through/nginx HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Origin: %s\r\n\r\n", strings.TrimPrefix(p.url, "https://"), p.url)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("WebSocket handshake through nginx: %s, Upgrade %q; want 101 websocket", resp.Status, resp.Header.Get("Upgrade"))
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("Sec-WebSocket-Accept = %q, want the RFC 6455 answer to the key", got)
	}
}

// TestNginxLongPoll: a long poll waits through nginx and returns the message published meanwhile.
func TestNginxLongPoll(t *testing.T) {
	p := startNginx(t)
	requireRoute(t, p.herald.URL+"/poll?topic=x&timeout=0")
	type page struct {
		Messages []struct{ Data string }
		Next     string
	}
	poll := func(since string) page {
		url := p.url + "/poll?topic=through/nginx&timeout=10"
		if since != "" {
			url += "&since=" + since
		}
		resp, err := p.client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /poll through nginx: %s %s", resp.Status, body)
		}
		var pg page
		if err := json.Unmarshal(body, &pg); err != nil {
			t.Fatalf("poll response %s: %v", body, err)
		}
		return pg
	}
	// Keep publishing until a poll returns the message: the test does not depend on whether a
	// first poll waits for news or answers at once with a cursor.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			heraldtest.Do(t, "POST", p.herald.URL+"/publish", "application/json", `{"topic":"through/nginx","data":"polled"}`, heraldtest.Auth())
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	since := ""
	for range 5 {
		pg := poll(since)
		for _, m := range pg.Messages {
			if m.Data == "polled" {
				return
			}
		}
		since = pg.Next
	}
	t.Fatal("5 long polls through nginx returned no published message")
}

// requireRoute skips until the transport is merged: the route answers 404 without it.
func requireRoute(t *testing.T, url string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Skipf("%s answers 404: this transport is not on this branch yet", url)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
