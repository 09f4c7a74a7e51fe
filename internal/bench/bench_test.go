package bench

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/ws"
)

// TestTransports runs a small fan-out over every transport against a real server: every
// published message reaches every subscriber once, and the wire bytes are counted.
func TestTransports(t *testing.T) {
	for _, tc := range []struct {
		transport string
		compress  bool
		payload   string
	}{
		{"sse", false, "text"},
		{"ws", false, "text"},
		{"ws", true, "json"},
		{"poll", false, "text"},
		{"mixed", false, "json"},
	} {
		name := tc.transport + "/compress=" + strconv.FormatBool(tc.compress) + "/" + tc.payload
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The config's default turns compression on; the handler's zero value does not.
			srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{WS: &ws.Handler{Compression: true}}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := Run(ctx, Config{URL: srv.URL, Key: heraldtest.Key, Transport: tc.transport,
				Compress: tc.compress, Payload: tc.payload, Size: 1024, N: 9, Topics: 2, Shared: 10,
				Rate: 50, Duration: 500 * time.Millisecond, Tick: 10 * time.Millisecond, Sources: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d deliveries, %.0f wire bytes each, p99 %.1f ms, dropped %d (%s)", r.Delivered, r.BytesPerDelivery, r.P99, r.Dropped, r.DropError)
			if r.Published == 0 || r.Expected == 0 {
				t.Fatalf("published %d, expected %d deliveries: want both above 0", r.Published, r.Expected)
			}
			if r.Lost != 0 || r.Duplicates != 0 {
				t.Errorf("lost %d, duplicates %d of %d: want 0 and 0", r.Lost, r.Duplicates, r.Expected)
			}
			// A 1 KiB payload takes at least ~1 KiB per delivery uncompressed; well under
			// with deflate (the JSON compresses; the text padding even more).
			switch {
			case r.BytesPerDelivery == 0:
				t.Errorf("wire bytes per delivery = 0, want the bytes counted")
			case tc.compress && r.BytesPerDelivery > 900:
				t.Errorf("with deflate: %.0f wire bytes per delivery of 1 KiB, want compressed", r.BytesPerDelivery)
			case !tc.compress && tc.transport != "poll" && r.BytesPerDelivery < 1000:
				t.Errorf("%.0f wire bytes per delivery of 1 KiB, want at least 1000", r.BytesPerDelivery)
			}
			if tc.transport == "mixed" {
				if len(r.ByTransport) != 3 {
					t.Fatalf("by transport: %+v, want sse, ws and poll", r.ByTransport)
				}
				for _, p := range r.ByTransport {
					if p.N != 3 || p.Delivered == 0 || p.Lost != 0 {
						t.Errorf("%s: %d subscribers, %d delivered, %d lost: want 3, > 0, 0", p.Transport, p.N, p.Delivered, p.Lost)
					}
				}
			}
		})
	}
}

// TestSlowTopic: subscribers that never read also listen on bench/slow, whose big messages
// fill their sockets until the server evicts them; the readers still get every message.
func TestSlowTopic(t *testing.T) {
	// QueueLen 64, not less: with 16, under -race, all 8 readers (20 msg/s) were sometimes cut
	// (EOF) midway in about half the runs, the workers being busy with the 60 KB writes.
	srv := heraldtest.NewServer(t, heraldtest.Options{Hub: hub.Config{QueueLen: 64}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Run(ctx, Config{URL: srv.URL, Key: heraldtest.Key, N: 10, Slow: 0.2, Rate: 20,
		SlowRate: 200, SlowSize: 60000, Duration: 2 * time.Second, Sources: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Slow != 2 {
		t.Errorf("slow subscribers = %d, want 2", r.Slow)
	}
	if r.Lost != 0 || r.Duplicates != 0 || r.Dropped != 0 {
		t.Errorf("readers: lost %d, duplicates %d, dropped %d (%s) of %d: want 0, 0, 0", r.Lost, r.Duplicates, r.Dropped, r.DropError, r.Expected)
	}
	// 2 s at 200/s of 60 KB is 24 MB per slow subscriber: more than a loopback socket holds.
	if got := srv.Hub.Stats().Evicted.Load(); got < 2 {
		t.Errorf("evicted = %d, want both slow subscribers evicted", got)
	}
	if r.Published <= r.Expected/8 {
		t.Errorf("published %d, expected %d deliveries to 8 readers: want the slow topic's messages on top", r.Published, r.Expected)
	}
}

// TestJSONPayload checks that the realistic payload is valid JSON once unescaped, of about
// the size asked, and carries the bench marker.
func TestJSONPayload(t *testing.T) {
	for _, size := range []int{200, 1024, 4096} {
		b := appendJSONPayload(nil, 3, 42, 1234567, size)
		var s string
		if err := json.Unmarshal(append(append([]byte{'"'}, b...), '"'), &s); err != nil {
			t.Fatalf("size %d: not a JSON string body: %v", size, err)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(s), &doc); err != nil {
			t.Fatalf("size %d: not a JSON document: %v\n%s", size, err, s)
		}
		if len(s) < size-150 || len(s) > size+150 {
			t.Errorf("size %d: document of %d bytes, want within 150 of it", size, len(s))
		}
		topic, seq, sent, ok := parsePayload([]byte(s))
		if !ok || topic != 3 || seq != 42 || sent != 1234567 {
			t.Errorf("size %d: marker = %d %d %d %v, want 3 42 1234567 true", size, topic, seq, sent, ok)
		}
	}
}
