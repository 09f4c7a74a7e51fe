// Package hubtest is the conformance suite every hub.Log engine runs, like testing/slogtest:
// the same tests against memory, embedded JetStream, external NATS and Redis, so the choice of
// engine changes nothing a client can see.
package hubtest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// Open returns a new, empty log with the given retention. It registers its own cleanup.
type Open func(t *testing.T, r hub.Retention) hub.Log

// TestLog runs the whole suite.
func TestLog(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"Epoch", testEpoch},
		{"AppendRead", testAppendRead},
		{"ReadPatterns", testReadPatterns},
		{"MultiTopicOnce", testMultiTopicOnce},
		{"Idempotency", testIdempotency},
		{"Retained", testRetained},
		{"TailOrdered", testTailOrdered},
		{"PerTopicRetention", testPerTopicRetention},
		{"HubResumeSeam", testHubResumeSeam},
		{"HubRetainedThenLive", testHubRetainedThenLive},
		{"HubGaps", testHubGaps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Msg makes a message on one or more topics ("a,b") with the given data.
func Msg(topics, data string) *hub.Message {
	return &hub.Message{Topics: strings.Split(topics, ","), Data: []byte(data)}
}

func appendAll(t *testing.T, l hub.Log, msgs ...*hub.Message) {
	t.Helper()
	if _, err := l.Append(ctx(t), msgs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func datas(msgs []*hub.Message) string {
	var b []string
	for _, m := range msgs {
		b = append(b, string(m.Data))
	}
	return strings.Join(b, " ")
}

func testEpoch(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	e := l.Epoch()
	if e == "" || strings.Contains(e, "-") || len(e) > 32 {
		t.Errorf("Epoch() = %q, want 1-32 bytes without '-'", e)
	}
	if last, err := l.Last(ctx(t)); err != nil || last != 0 {
		t.Errorf("Last() on an empty log = %d, %v; want 0, nil", last, err)
	}
}

func testAppendRead(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	msgs := []*hub.Message{Msg("a", "1"), Msg("b", "2"), Msg("a", "3")}
	msgs[2].Event = "ev.x"
	appendAll(t, l, msgs...)
	if !(msgs[0].Seq > 0 && msgs[1].Seq > msgs[0].Seq && msgs[2].Seq > msgs[1].Seq) {
		t.Fatalf("seqs %d %d %d, want positive and increasing", msgs[0].Seq, msgs[1].Seq, msgs[2].Seq)
	}
	if msgs[0].Time.IsZero() {
		t.Errorf("Append did not set Time")
	}
	last, _ := l.Last(ctx(t))
	if last != msgs[2].Seq {
		t.Errorf("Last() = %d, want %d", last, msgs[2].Seq)
	}
	got, err := l.Read(ctx(t), 0, last, hub.MustFilter("a"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if datas(got) != "1 3" || got[1].Event != "ev.x" || got[1].Seq != msgs[2].Seq {
		t.Errorf("Read(a) = %q (event %q), want \"1 3\" with event ev.x", datas(got), got[len(got)-1].Event)
	}
	got, _ = l.Read(ctx(t), msgs[0].Seq, last, hub.MustFilter("a", "b"), 10)
	if datas(got) != "2 3" {
		t.Errorf("Read(after first) = %q, want \"2 3\"", datas(got))
	}
	got, _ = l.Read(ctx(t), 0, msgs[1].Seq, hub.MustFilter("a", "b"), 10)
	if datas(got) != "1 2" {
		t.Errorf("Read(upto second) = %q, want \"1 2\"", datas(got))
	}
	got, _ = l.Read(ctx(t), 0, last, hub.MustFilter("a", "b"), 2)
	if datas(got) != "1 2" {
		t.Errorf("Read(limit 2) = %q, want \"1 2\"", datas(got))
	}
}

func testReadPatterns(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	appendAll(t, l, Msg("news/sport", "1"), Msg("news/sport/tennis", "2"), Msg("news", "3"),
		Msg("weather/paris", "4"), Msg("news/a_b.c", "5"))
	last, _ := l.Last(ctx(t))
	for _, tc := range []struct{ pattern, want string }{
		{"news/*", "1 5"},
		{"news/**", "1 2 5"},
		{"*/paris", "4"},
		{"news/a_b.c", "5"},
		{"news/a_b", ""},
	} {
		got, err := l.Read(ctx(t), 0, last, hub.MustFilter(tc.pattern), 100)
		if err != nil {
			t.Fatal(err)
		}
		if datas(got) != tc.want {
			t.Errorf("Read(%q) = %q, want %q", tc.pattern, datas(got), tc.want)
		}
	}
}

func testMultiTopicOnce(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	appendAll(t, l, Msg("x/1,x/2", "both"), Msg("x/2", "two"))
	last, _ := l.Last(ctx(t))
	got, _ := l.Read(ctx(t), 0, last, hub.MustFilter("x/1", "x/2", "x/*"), 10)
	if datas(got) != "both two" {
		t.Errorf("Read = %q, want \"both two\"", datas(got))
	}
	if len(got) > 0 && strings.Join(got[0].Topics, ",") != "x/1,x/2" {
		t.Errorf("Topics = %v, want [x/1 x/2]", got[0].Topics)
	}
	got, _ = l.Read(ctx(t), 0, last, hub.MustFilter("x/1"), 10)
	if datas(got) != "both" {
		t.Errorf("Read(x/1) = %q, want \"both\"", datas(got))
	}
}

func testIdempotency(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	a := Msg("k", "first")
	a.IdempotencyKey = "order-42-paid"
	appendAll(t, l, a)
	b := Msg("k", "retry")
	b.IdempotencyKey = "order-42-paid"
	dup, err := l.Append(ctx(t), []*hub.Message{b, Msg("k", "other")})
	if err != nil {
		t.Fatal(err)
	}
	if !dup[0] || dup[1] || b.Seq != a.Seq {
		t.Errorf("dup = %v, retried seq %d; want [true false] and seq %d", dup, b.Seq, a.Seq)
	}
	last, _ := l.Last(ctx(t))
	got, _ := l.Read(ctx(t), 0, last, hub.MustFilter("k"), 10)
	if datas(got) != "first other" {
		t.Errorf("Read = %q, want \"first other\"", datas(got))
	}
}

func testRetained(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	r1, r2, r3 := Msg("s/a", "a1"), Msg("s/a", "a2"), Msg("s/b,t/c", "bc")
	r1.Retain, r2.Retain, r3.Retain = true, true, true
	appendAll(t, l, r1, Msg("s/b", "not retained"), r2, r3, Msg("s/a", "live only"))
	got, err := l.Retained(ctx(t), hub.MustFilter("s/*"))
	if err != nil {
		t.Fatal(err)
	}
	byData := map[string]uint64{}
	for _, m := range got {
		byData[string(m.Data)] = m.Seq
	}
	if len(byData) != 2 || byData["a2"] != r2.Seq || byData["bc"] != r3.Seq {
		t.Errorf("Retained(s/*) = %v, want a2@%d and bc@%d", byData, r2.Seq, r3.Seq)
	}
	got, _ = l.Retained(ctx(t), hub.MustFilter("t/c"))
	if len(got) != 1 || string(got[0].Data) != "bc" {
		t.Errorf("Retained(t/c) = %q, want bc", datas(got))
	}
	got, _ = l.Retained(ctx(t), hub.MustFilter("none"))
	if len(got) != 0 {
		t.Errorf("Retained(none) = %q, want nothing", datas(got))
	}
}

func testTailOrdered(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	appendAll(t, l, Msg("before", "0"))
	start, _ := l.Last(ctx(t))
	const writers, each = 4, 50
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	got := make(chan *hub.Message, writers*each+10)
	tailErr := make(chan error, 1)
	go func() { tailErr <- l.Tail(c, start, func(m *hub.Message) { got <- m }) }()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(c, []*hub.Message{Msg("w/"+strconv.Itoa(w), strconv.Itoa(i))}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var prev uint64 = start
	next := map[string]int{}
	for range writers * each {
		select {
		case m := <-got:
			if m.Seq <= prev {
				t.Fatalf("Tail delivered seq %d after %d", m.Seq, prev)
			}
			prev = m.Seq
			if want := strconv.Itoa(next[m.Topics[0]]); string(m.Data) != want {
				t.Fatalf("topic %s: got %s, want %s", m.Topics[0], m.Data, want)
			}
			next[m.Topics[0]]++
		case <-time.After(10 * time.Second):
			t.Fatalf("Tail delivered %d of %d messages", len(next), writers*each)
		}
	}
	cancel()
	<-tailErr
}

func testPerTopicRetention(t *testing.T, open Open) {
	l := open(t, hub.Retention{PerTopic: 3})
	var msgs []*hub.Message
	for i := range 5 {
		msgs = append(msgs, Msg("p", strconv.Itoa(i)))
	}
	appendAll(t, l, Msg("q", "q0"))
	appendAll(t, l, msgs...)
	last, _ := l.Last(ctx(t))
	got, _ := l.Read(ctx(t), 0, last, hub.MustFilter("p", "q"), 10)
	if datas(got) != "q0 2 3 4" {
		t.Errorf("Read after PerTopic=3 = %q, want \"q0 2 3 4\"", datas(got))
	}
	for _, tc := range []struct {
		after  uint64
		filter string
		want   bool
	}{
		{msgs[0].Seq, "p", true},  // 1 was removed
		{msgs[1].Seq, "p", false}, // everything after 1 remains
		{msgs[0].Seq, "q", false}, // q lost nothing
		{msgs[0].Seq, "*", true},  // a pattern reaching p
	} {
		got, err := l.Trimmed(ctx(t), tc.after, hub.MustFilter(tc.filter))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Trimmed(after %d, %s) = %v, want %v", tc.after, tc.filter, got, tc.want)
		}
	}
}

// startHub runs a hub over l until the test ends.
func startHub(t *testing.T, l hub.Log, cfg hub.Config) *hub.Hub {
	cfg.Log = l
	h := hub.New(cfg)
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(c); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !h.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("hub not ready after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return h
}

// WaitHead waits until the hub has fanned out seq, so that a new subscriber sees it as history
// or retained state rather than live.
func WaitHead(t *testing.T, h *hub.Hub, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Head() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("hub head %d, still short of %d after 10s", h.Head(), seq)
		}
		time.Sleep(time.Millisecond)
	}
}

// Collect takes from s until want messages arrived, in order, or the timeout passes.
func Collect(t *testing.T, s *hub.Subscription, want int) []*hub.Message {
	t.Helper()
	var out []*hub.Message
	timeout := time.After(20 * time.Second)
	for len(out) < want {
		b, err := s.Take(ctx(t), 256)
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		out = append(out, b.Messages...)
		if len(b.Messages) > 0 || b.Position != "" {
			continue
		}
		select {
		case <-s.Ready():
		case <-s.Done():
			t.Fatalf("subscription ended after %d of %d messages: %v", len(out), want, s.Err())
		case <-timeout:
			t.Fatalf("got %d of %d messages", len(out), want)
		}
	}
	return out
}

// testHubResumeSeam resumes from an id while a publisher keeps publishing: every message after
// the id arrives once, in order, across the history/live seam.
func testHubResumeSeam(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	h := startHub(t, l, hub.Config{QueueLen: 100000})
	const total = 600
	pub := func(i int) *hub.Message {
		m := Msg("seam/"+strconv.Itoa(i%3), strconv.Itoa(i))
		if _, err := h.Publish(ctx(t), []*hub.Message{m}); err != nil {
			t.Error(err)
		}
		return m
	}
	var from *hub.Message
	for i := range 100 {
		if m := pub(i); i == 49 {
			from = m
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 100; i < total; i++ {
			pub(i)
		}
	}()
	s, err := h.Subscribe(ctx(t), hub.Request{Filter: hub.MustFilter("seam/*"), After: from.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Gap() != nil {
		t.Fatalf("unexpected gap %+v", s.Gap())
	}
	got := Collect(t, s, total-50)
	<-done
	for i, m := range got {
		if want := strconv.Itoa(50 + i); string(m.Data) != want {
			t.Fatalf("message %d = %s, want %s (duplicate or loss at the seam)", i, m.Data, want)
		}
		if m.ID == "" {
			t.Fatalf("message %d has no id", i)
		}
	}
}

func testHubRetainedThenLive(t *testing.T, open Open) {
	l := open(t, hub.Retention{})
	h := startHub(t, l, hub.Config{})
	r := Msg("state/1", "current")
	r.Retain = true
	if _, err := h.Publish(ctx(t), []*hub.Message{Msg("state/1", "old"), r}); err != nil {
		t.Fatal(err)
	}
	WaitHead(t, h, r.Seq)
	s, err := h.Subscribe(ctx(t), hub.Request{Filter: hub.MustFilter("state/*")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := Collect(t, s, 1)
	if string(first[0].Data) != "current" || first[0].ID != r.ID {
		t.Fatalf("first = %s (%s), want the retained message %s", first[0].Data, first[0].ID, r.ID)
	}
	live := Msg("state/1", "live")
	h.Publish(ctx(t), []*hub.Message{live})
	got := Collect(t, s, 1)
	if string(got[0].Data) != "live" || got[0].ID != live.ID {
		t.Fatalf("then %s (%s), want live (%s)", got[0].Data, got[0].ID, live.ID)
	}
}

func testHubGaps(t *testing.T, open Open) {
	l := open(t, hub.Retention{PerTopic: 2})
	h := startHub(t, l, hub.Config{})
	var ids []string
	for i := range 4 {
		m := Msg("g", strconv.Itoa(i))
		h.Publish(ctx(t), []*hub.Message{m})
		ids = append(ids, m.ID)
	}
	epoch, seq, _ := hub.ParseID(ids[3])
	for _, tc := range []struct{ after, reason string }{
		{"garbage", hub.GapBadID},
		{hub.FormatID("other"+epoch, 1), hub.GapEpoch},
		{hub.FormatID(epoch, seq+1000), hub.GapUnknownID},
		{ids[0], hub.GapTrimmed},
		{ids[1], ""},
	} {
		s, err := h.Subscribe(ctx(t), hub.Request{Filter: hub.MustFilter("g"), After: tc.after})
		if err != nil {
			t.Fatal(err)
		}
		reason := ""
		if s.Gap() != nil {
			reason = s.Gap().Reason
		}
		if reason != tc.reason {
			t.Errorf("resume from %q: gap %q, want %q", tc.after, reason, tc.reason)
		}
		s.Close()
	}
}
