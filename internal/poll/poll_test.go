package poll_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
)

type page struct {
	Messages []struct{ ID, Topic, Event, Data, Time string }
	Next     string
	Gap      *hub.Gap
}

func get(t *testing.T, srv *heraldtest.Server, query string) page {
	t.Helper()
	resp, err := http.Get(srv.URL + "/poll?" + query)
	if err != nil {
		t.Error(err)
		return page{}
	}
	defer resp.Body.Close()
	var p page
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&p) != nil {
		t.Errorf("GET /poll?%s: status %d, want 200 with JSON", query, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return p
}

func TestWaitingMessagesReturnAtOnce(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	first := srv.Publish(t, "a", "1")
	second := srv.PublishMsg(t, map[string]any{"topic": "a", "event": "e", "data": "2"})
	srv.Publish(t, "b", "not ours")
	last := srv.Publish(t, "b", "not ours either")
	srv.WaitDelivered(t, last)
	p := get(t, srv, "topic=a&timeout=50&since="+first)
	if len(p.Messages) != 1 || p.Messages[0].ID != second || p.Messages[0].Event != "e" || p.Next != last {
		t.Errorf("got %+v, want message %s and next %s (past messages of other topics)", p, second, last)
	}
}

func TestTimeoutKeepsCursor(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	id := srv.Publish(t, "a", "1")
	srv.WaitDelivered(t, id)
	p := get(t, srv, "topic=a&timeout=0.05&since="+id)
	if len(p.Messages) != 0 || p.Next != id {
		t.Errorf("got %+v, want no messages and next %s", p, id)
	}
	// Without since: wait for the next new message; the cursor is the current position.
	p = get(t, srv, "topic=a&timeout=0.05")
	if len(p.Messages) != 0 || p.Next != id {
		t.Errorf("no since: got %+v, want no messages and next %s", p, id)
	}
}

func TestGap(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	p := get(t, srv, "topic=a&timeout=0&since=%22%3Cgarbage%3E")
	if p.Gap == nil || p.Gap.Reason != hub.GapBadID || p.Gap.LastEventID != `"<garbage>` || p.Next == "" {
		t.Errorf("got %+v, want a bad-id gap echoing the id and a cursor", p)
	}
}

func TestBadRequest(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	for _, q := range []string{"", "topic=a%20b", "topic=a&timeout=x", "topic=a&timeout=-1", "topic=a&limit=0"} {
		code, body := heraldtest.Do(t, "GET", srv.URL+"/poll?"+q, "", "", nil)
		if code != 400 {
			t.Errorf("GET /poll?%s: %d %s, want 400", q, code, body)
		}
	}
}

// TestLoopUnderConcurrentPublishing is the long-polling contract: a client that loops on next
// while publishers publish receives every message exactly once, in order.
func TestLoopUnderConcurrentPublishing(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	const total = 400
	start := get(t, srv, "topic=load/*&timeout=0").Next
	var wg sync.WaitGroup
	for w := range 2 { // two publishers, each with its own order: check each one's sequence
		wg.Go(func() {
			for i := range total / 2 {
				srv.Publish(t, "load/"+strconv.Itoa(w), strconv.Itoa(i))
			}
		})
	}
	next := start
	seen := map[string]int{"load/0": 0, "load/1": 0}
	ids := map[string]bool{}
	polls := 0
	for n := 0; n < total; polls++ {
		p := get(t, srv, "topic=load/*&timeout=10&limit=37&since="+next)
		if t.Failed() {
			break
		}
		for _, m := range p.Messages {
			if ids[m.ID] {
				t.Fatalf("message %s received twice", m.ID)
			}
			ids[m.ID] = true
			if want := strconv.Itoa(seen[m.Topic]); m.Data != want {
				t.Fatalf("%s: got %s, want %s: loss or reordering", m.Topic, m.Data, want)
			}
			seen[m.Topic]++
			n++
		}
		next = p.Next
	}
	wg.Wait()
	if seen["load/0"] != total/2 || seen["load/1"] != total/2 {
		t.Errorf("received %v in %d polls, want %d per topic", seen, polls, total/2)
	}
}

func TestHeldPollReturnsOnPublish(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	start := get(t, srv, "topic=a&timeout=0").Next
	done := make(chan page, 1)
	go func() { done <- get(t, srv, "topic=a&timeout=30&since="+start) }()
	// The poll may subscribe before or after this publish: resuming from start, it gets the
	// message either way.
	id := srv.Publish(t, "a", "wake up")
	if p := <-done; len(p.Messages) != 1 || p.Messages[0].ID != id || p.Next != id {
		t.Errorf("got %+v, want %s", p, id)
	}
}

func TestShutdownEndsHeldPolls(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	id := srv.Publish(t, "a", "1")
	srv.WaitDelivered(t, id)
	done := make(chan page, 1)
	go func() { done <- get(t, srv, "topic=a&timeout=50&since="+id) }()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Hub.Subscribers() == 0 { // the poll is held
		if time.Now().After(deadline) {
			t.Fatal("poll not subscribed after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	srv.Hub.Close()
	if p := <-done; len(p.Messages) != 0 || p.Next != id {
		t.Errorf("got %+v, want an empty answer keeping cursor %s", p, id)
	}
}
