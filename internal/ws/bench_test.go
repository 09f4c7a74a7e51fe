package ws_test

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/ws"
)

// payload is a typical 2 KB JSON event: repetitive keys, some varying values.
func payload() string {
	var b strings.Builder
	b.WriteString(`[`)
	for i := range 20 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"order":%d,"status":"paid","customer":"c-%04d","total":%d.%02d}`, 4000+i, i*37, i*13, i)
	}
	b.WriteString(`]`)
	return b.String()
}

// BenchmarkFanout publishes one message to conns WebSocket subscribers per op, with and
// without permessage-deflate, and reports deliveries/s and the bytes each delivery took on
// the wire. coder/websocket compresses each write itself, so with compression every
// connection pays one deflate per message: compare the two deliveries/s figures.
func BenchmarkFanout(b *testing.B) {
	const conns = 50
	data := payload()
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("compression=%v", compress), func(b *testing.B) {
			srv := heraldtest.NewServer(b, heraldtest.Options{
				Hub:    hub.Config{QueueLen: 1 << 16},
				Server: server.Config{WS: &ws.Handler{Compression: compress, PingInterval: 1 << 40}},
			})
			var wire atomic.Int64
			var clients []*websocket.Conn
			for range conns {
				opts := &websocket.DialOptions{HTTPClient: countingClient(&wire)}
				if compress {
					opts.CompressionMode = websocket.CompressionNoContextTakeover
				}
				c, _, err := websocket.Dial(context.Background(), wsURL(srv), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer c.CloseNow()
				c.SetReadLimit(1 << 20)
				c.Write(context.Background(), websocket.MessageText, []byte(`{"op":"subscribe","topics":["bench"]}`))
				c.Read(context.Background()) // subscribed
				clients = append(clients, c)
			}
			wire.Store(0)
			b.ResetTimer()
			done := make(chan error, conns)
			for _, c := range clients {
				go func() {
					for range b.N {
						if _, _, err := c.Read(context.Background()); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
			}
			for range b.N {
				srv.Publish(b, "bench", data)
			}
			for range conns {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*conns)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(wire.Load())/float64(b.N*conns), "wire-B/delivery")
			b.ReportMetric(float64(len(data)), "data-B")
		})
	}
}

// BenchmarkDeflateMessage is what compressing a message costs at flate.BestSpeed; the handler
// compresses each message once for all its connections (frame.go), at DefaultCompression.
func BenchmarkDeflateMessage(b *testing.B) {
	data := []byte(`{"type":"message","id":"k3f9a2-1","topic":"orders","data":` + fmt.Sprintf("%q", payload()) + `}`)
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestSpeed)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		out.Reset()
		w.Reset(&out)
		w.Write(data)
		w.Flush()
	}
	b.ReportMetric(float64(out.Len())/float64(len(data)), "ratio")
}

func countingClient(n *atomic.Int64) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return &countingConn{c, n}, err
	}}}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
