package sse_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/sse"
)

// Requests are served concurrently by one Handler: filling in its defaults must not race
// (go test -race found it when many clients connected at once).
func TestHandlerConcurrentFirstRequests(t *testing.T) {
	h := hub.New(hub.Config{Log: memory.New(memory.Config{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { h.Close(); cancel(); <-done }()
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	handler := &sse.Handler{Hub: h}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, rcancel := context.WithCancel(context.Background())
			rcancel() // the stream ends at once: only the start of ServeHTTP matters here
			req := httptest.NewRequestWithContext(rctx, "GET", "/events?topic=a", nil)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Errorf("status %d, want 200", rec.Code)
			}
		}()
	}
	wg.Wait()
}
