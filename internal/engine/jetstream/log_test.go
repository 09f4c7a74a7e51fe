package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-push/herald/internal/hub"
)

func TestAppendOrderAndFields(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{})
		var batch []*hub.Message
		for i := range 300 {
			m := msg([]string{fmt.Sprintf("o/%d", i%7)}, fmt.Sprint(i))
			m.Event = "e.v"
			batch = append(batch, m)
		}
		appendOK(t, l, batch...)
		for i, m := range batch {
			if m.Seq != uint64(i+1) || m.ID != hub.FormatID(l.Epoch(), m.Seq) {
				t.Fatalf("message %d: seq %d id %q, want seq %d", i, m.Seq, m.ID, i+1)
			}
		}
		got := readAll(t, l, hub.MustFilter("o/**"))
		if len(got) != len(batch) {
			t.Fatalf("Read returned %d messages, want %d", len(got), len(batch))
		}
		for i, m := range got {
			want := batch[i]
			if m.Seq != want.Seq || string(m.Data) != string(want.Data) || m.Event != "e.v" ||
				m.Topics[0] != want.Topics[0] || !m.Time.Equal(want.Time) || m.ID != want.ID {
				t.Fatalf("Read[%d] = %+v, want %+v", i, m, want)
			}
		}
	})
}

func TestMultiTopicStoredOnce(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{})
		appendOK(t, l, msg([]string{"a", "b/c", "d.e"}, "x"))
		if last, _ := l.Last(testCtx(t)); last != 1 {
			t.Errorf("Last() = %d after one multi-topic message, want 1", last)
		}
		for _, f := range []string{"a", "b/*", "d.e", "**"} {
			got := readAll(t, l, hub.MustFilter(f))
			if len(got) != 1 || strings.Join(got[0].Topics, " ") != "a b/c d.e" {
				t.Errorf("Read(%s) = %v, want the message once with its three topics", f, got)
			}
		}
		if got := readAll(t, l, hub.MustFilter("b")); len(got) != 0 {
			t.Errorf("Read(b) = %d messages, want none", len(got))
		}
	})
}

func TestIdempotencyAcrossBatches(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{DuplicateWindow: time.Minute})
		a, b := msg([]string{"k"}, "1"), msg([]string{"k"}, "2")
		a.IdempotencyKey, b.IdempotencyKey = "ka", "kb"
		appendOK(t, l, a, b)
		again := msg([]string{"k"}, "1 again")
		again.IdempotencyKey = "kb"
		dup := appendOK(t, l, msg([]string{"k"}, "3"), again)
		if dup[0] || !dup[1] || again.Seq != b.Seq {
			t.Errorf("dup = %v, seq %d; want [false true], seq %d", dup, again.Seq, b.Seq)
		}
	})
}

// Reads must not leave consumers behind: each one costs server memory until it expires.
func TestReadLeavesNoConsumer(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{})
		r := msg([]string{"a"}, "r")
		r.Retain = true
		appendOK(t, l, msg([]string{"a"}, "1"), msg([]string{"a", "b"}, "2"), r)
		for range 5 {
			readAll(t, l, hub.MustFilter("a", "b/**"))
			if _, err := l.Retained(testCtx(t), hub.MustFilter("a")); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []string{l.stream, l.retainStream} {
			info, err := l.js.Stream(testCtx(t), s)
			if err != nil {
				t.Fatal(err)
			}
			if n := info.CachedInfo().State.Consumers; n != 0 {
				t.Errorf("stream %s has %d consumers after reads, want 0", s, n)
			}
		}
	})
}

func TestRetentionLimits(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{Retention: hub.Retention{MaxMsgs: 3}})
		for i := range 5 {
			appendOK(t, l, msg([]string{"m"}, fmt.Sprint(i)))
		}
		got := readAll(t, l, hub.MustFilter("m"))
		if len(got) != 3 || got[0].Seq != 3 {
			t.Fatalf("after MaxMsgs=3 Read = %d messages from seq %d, want 3 from 3", len(got), got[0].Seq)
		}
		for after, want := range map[uint64]bool{0: true, 1: true, 2: false, 5: false} {
			if got, err := l.Trimmed(testCtx(t), after, hub.MustFilter("other")); err != nil || got != want {
				t.Errorf("Trimmed(%d) = %v, %v; want %v (front trim concerns every filter)", after, got, err, want)
			}
		}
	})
}

func TestRetainedNewestWins(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{Retention: hub.Retention{PerTopic: 1}})
		// Concurrent retained publishes to one topic: whatever the interleaving, the retained
		// value is the message with the highest Seq.
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 10 {
					m := msg([]string{"hot"}, fmt.Sprintf("%d-%d", w, i))
					m.Retain = true
					if _, err := l.Append(testCtx(t), []*hub.Message{m}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		last, _ := l.Last(testCtx(t))
		got, err := l.Retained(testCtx(t), hub.MustFilter("hot"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Seq != last || !got[0].Retain || got[0].ID != hub.FormatID(l.Epoch(), last) {
			t.Fatalf("Retained(hot) = %v, want the message at seq %d", got, last)
		}
		// PerTopic=1 trims the log but not the retained value.
		appendOK(t, l, msg([]string{"hot"}, "not retained"))
		got, _ = l.Retained(testCtx(t), hub.MustFilter("**"))
		if len(got) != 1 || got[0].Seq != last {
			t.Errorf("Retained(**) after a plain message = %v, want seq %d", got, last)
		}
	})
}

func TestEpochKeptAndRenewed(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		cfg := Config{Stream: uniqueStream(), DataDir: t.TempDir()}
		l := open(t, cfg)
		appendOK(t, l, msg([]string{"e"}, "1"))
		epoch := l.Epoch()
		if l.cfg.URL != "" { // a second node on the same NATS shares the log
			if other := open(t, cfg); other.Epoch() != epoch {
				t.Errorf("second node epoch %q, want %q", other.Epoch(), epoch)
			}
		}
		// A wiped stream is a new log with a new epoch, and old retained values are dropped.
		r := msg([]string{"e"}, "r")
		r.Retain = true
		appendOK(t, l, r)
		if err := l.js.DeleteStream(testCtx(t), l.stream); err != nil {
			t.Fatal(err)
		}
		fresh := *l
		if err := fresh.setup(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if fresh.Epoch() == epoch {
			t.Errorf("recreated stream kept epoch %q", epoch)
		}
		if got, _ := fresh.Retained(testCtx(t), hub.MustFilter("e")); len(got) != 0 {
			t.Errorf("retained values of the old epoch survived: %v", got)
		}
	})
}

func TestTailDetectsRecreatedStream(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		l := open(t, Config{})
		l.epochCheck = 50 * time.Millisecond
		appendOK(t, l, msg([]string{"a"}, "1"))
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		delivered := make(chan *hub.Message, 10)
		done := make(chan error, 1)
		go func() { done <- l.Tail(ctx, 0, func(m *hub.Message) { delivered <- m }) }()
		<-delivered
		if err := l.js.DeleteStream(testCtx(t), l.stream); err != nil {
			t.Fatal(err)
		}
		other := *l
		if err := other.setup(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		appendOK(t, &other, msg([]string{"a"}, "new 1"), msg([]string{"a"}, "new 2"))
		select {
		case err := <-done:
			if !errors.Is(err, hub.ErrUnavailable) {
				t.Errorf("Tail returned %v, want an error wrapping hub.ErrUnavailable", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Tail did not notice the recreated stream")
		}
		select {
		case m := <-delivered:
			t.Errorf("Tail delivered %q from the new stream", m.Data)
		default:
		}
	})
}

func TestTailStopsWithContext(t *testing.T) {
	l := openEmbedded(t, Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- l.Tail(ctx, 0, func(*hub.Message) {}) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Tail after cancel = %v, want context.Canceled", err)
	}
}

func TestErrors(t *testing.T) {
	l := openEmbedded(t, Config{})
	big := msg([]string{"a"}, strings.Repeat("x", 2<<20))
	if _, err := l.Append(testCtx(t), []*hub.Message{big}); !errors.Is(err, hub.ErrTooLarge) {
		t.Errorf("Append(2 MiB) = %v, want hub.ErrTooLarge", err)
	}
	if _, err := l.Append(testCtx(t), []*hub.Message{msg([]string{"a/"}, "x")}); !errors.Is(err, hub.ErrBadTopic) {
		t.Errorf("Append(bad topic) = %v, want hub.ErrBadTopic", err)
	}
	l.Close()
	if _, err := l.Append(testCtx(t), []*hub.Message{msg([]string{"a"}, "x")}); !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Append after Close = %v, want hub.ErrUnavailable", err)
	}
	if _, err := l.Last(testCtx(t)); !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Last after Close = %v, want hub.ErrUnavailable", err)
	}
}

func TestErrFull(t *testing.T) {
	// A stream whose byte limit refuses new messages instead of dropping old ones stands for
	// a full disk: the same JetStream error family.
	l := openEmbedded(t, Config{})
	cfg := l.logS.CachedInfo().Config
	cfg.MaxBytes, cfg.Discard = 4096, jetstream.DiscardNew
	if _, err := l.js.UpdateStream(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = l.Append(testCtx(t), []*hub.Message{msg([]string{"f"}, strings.Repeat("x", 512))})
	}
	if !errors.Is(err, hub.ErrFull) {
		t.Errorf("Append to a full stream = %v, want hub.ErrFull", err)
	}
}
