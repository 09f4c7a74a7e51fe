package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/sse"
)

// BenchmarkAppendEvent encodes one event with a 64-byte payload.
func BenchmarkAppendEvent(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 64)
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = sse.AppendEvent(buf[:0], "a1b2c3-123456", "update", data)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncoded is the per-delivery cost once a message is encoded: a cache hit.
func BenchmarkEncoded(b *testing.B) {
	m := &hub.Message{ID: "a1b2c3-1", Topics: []string{"t"}, Data: []byte("hello")}
	for b.Loop() {
		sse.Encoded(m, sse.FormatRaw)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkStream fans b.N messages out to subs SSE connections of a real server and reports
// deliveries per second as read by the clients.
func BenchmarkStream(b *testing.B) {
	const subs = 50
	srv := heraldtest.NewServer(b, heraldtest.Options{Hub: hub.Config{QueueLen: 1 << 20}})
	var wg sync.WaitGroup
	for range subs {
		resp, err := http.Get(srv.URL + "/events?topic=bench")
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for got := 0; got < b.N; {
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if strings.HasPrefix(string(line), "data: ") {
					got++
				}
			}
		}()
	}
	b.ResetTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < b.N; i += 100 {
		batch := make([]*hub.Message, min(100, b.N-i))
		for j := range batch {
			batch[j] = &hub.Message{Topics: []string{"bench"}, Data: []byte(fmt.Sprint("message ", i+j))}
		}
		if _, err := srv.Hub.Publish(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
}
