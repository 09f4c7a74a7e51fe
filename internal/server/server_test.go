package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/herald-push/herald/internal/engine/memory"
	. "github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/sse"
)

func TestPublishForms(t *testing.T) {
	srv := NewServer(t, Options{})
	st := srv.SSE(t, "/events?topic=orders/*&topic=b", "")
	tests := []struct {
		name, contentType, body string
		wantIDs                 int
		wantData                []string
	}{
		{"form", "application/x-www-form-urlencoded", "topic=orders/42&event=order.updated&data=%7B%22status%22%3A%22paid%22%7D", 1, []string{`{"status":"paid"}`}},
		{"json object data", "application/json", `{"topic":"orders/1","data":{"a":[1, 2]}}`, 1, []string{`{"a":[1,2]}`}},
		{"json string data", "application/json", `{"topic":"orders/1","data":"plain text"}`, 1, []string{"plain text"}},
		{"json several topics", "application/json", `{"topics":["orders/7","b"],"data":"once"}`, 1, []string{"once"}},
		{"json array", "application/json", `[{"topic":"orders/1","data":"x"},{"topic":"b","data":"y"}]`, 2, []string{"x", "y"}},
		{"ndjson", "application/x-ndjson", "{\"topic\":\"b\",\"data\":\"n1\"}\n\n{\"topic\":\"b\",\"data\":\"n2\"}\n", 2, []string{"n1", "n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := Do(t, "POST", srv.URL+"/publish", tt.contentType, tt.body, Auth())
			if code != 200 {
				t.Fatalf("status %d %s", code, body)
			}
			var r struct {
				ID  string
				IDs []string
			}
			json.Unmarshal([]byte(body), &r)
			ids := r.IDs
			if r.ID != "" {
				ids = []string{r.ID}
			}
			if len(ids) != tt.wantIDs {
				t.Fatalf("response %s: want %d ids", body, tt.wantIDs)
			}
			for i, want := range tt.wantData {
				ev := st.Next(t)
				if ev.Data != want || ev.ID != ids[i] {
					t.Errorf("event %d = %q id %s, want %q id %s", i, ev.Data, ev.ID, want, ids[i])
				}
			}
		})
	}
}

func TestPublishErrors(t *testing.T) {
	srv := NewServer(t, Options{Hub: hub.Config{MaxData: 100}, Server: server.Config{MaxBody: 2000}})
	control := srv.SSE(t, "/events?topic=ok", "")
	big := strings.Repeat("x", 101)
	tests := []struct {
		name, contentType, body string
		header                  http.Header
		status                  int
		code                    string
	}{
		{"no key", "application/json", `{"topic":"a","data":"x"}`, nil, 401, "unauthorized"},
		{"wrong key", "application/json", `{"topic":"a","data":"x"}`, http.Header{"Authorization": {"Bearer nope"}}, 401, "unauthorized"},
		{"bad topic", "application/json", `{"topic":"a b","data":"x"}`, Auth(), 400, "bad_topic"},
		{"pattern as topic", "application/json", `{"topic":"a/*","data":"x"}`, Auth(), 400, "bad_topic"},
		{"no topic", "application/json", `{"data":"x"}`, Auth(), 400, "bad_topic"},
		{"bad json", "application/json", `{"topic":`, Auth(), 400, "bad_request"},
		{"unknown field", "application/json", `{"topic":"a","dta":"x"}`, Auth(), 400, "bad_request"},
		{"event with newline", "application/json", `{"topic":"a","event":"x\ndata: injected"}`, Auth(), 400, "bad_event"},
		{"data too large", "application/json", `{"topic":"a","data":"` + big + `"}`, Auth(), 413, "too_large"},
		{"body too large", "application/json", `{"topic":"a","data":"` + strings.Repeat("y", 3000) + `"}`, Auth(), 413, "too_large"},
		{"content type", "text/plain", `hello`, Auth(), 400, "bad_request"},
		{"empty batch", "application/json", `[]`, Auth(), 400, "bad_request"},
		{"bad retain", "application/x-www-form-urlencoded", `topic=a&retain=maybe`, Auth(), 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := Do(t, "POST", srv.URL+"/publish", tt.contentType, tt.body, tt.header)
			var r struct{ Error, Message string }
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			if code != tt.status || r.Error != tt.code || r.Message == "" {
				t.Errorf("got %d %s, want %d with error %q and a message", code, body, tt.status, tt.code)
			}
		})
	}
	// Nobody else was harmed: the control subscriber still receives.
	id := srv.Publish(t, "ok", "still here")
	if ev := control.Next(t); ev.ID != id || ev.Data != "still here" {
		t.Errorf("control got %+v, want %s", ev, id)
	}
}

func TestUnauthorizedHasChallenge(t *testing.T) {
	srv := NewServer(t, Options{})
	resp, err := http.Post(srv.URL+"/publish", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
	}
}

func TestIdempotencyKey(t *testing.T) {
	srv := NewServer(t, Options{})
	st := srv.SSE(t, "/events?topic=pay", "")
	h := Auth()
	h.Set("Idempotency-Key", "order-42")
	_, first := Do(t, "POST", srv.URL+"/publish", "application/json", `{"topic":"pay","data":"1"}`, h)
	_, again := Do(t, "POST", srv.URL+"/publish", "application/json", `{"topic":"pay","data":"1"}`, h)
	var a, b struct {
		ID        string
		Duplicate bool
	}
	json.Unmarshal([]byte(first), &a)
	json.Unmarshal([]byte(again), &b)
	if a.ID == "" || a.ID != b.ID || a.Duplicate || !b.Duplicate {
		t.Fatalf("first %s, retry %s: want the same id, the retry marked duplicate", first, again)
	}
	next := srv.Publish(t, "pay", "2")
	if ev := st.Next(t); ev.ID != a.ID {
		t.Errorf("first event %s, want %s", ev.ID, a.ID)
	}
	if ev := st.Next(t); ev.ID != next {
		t.Errorf("second event %s (%q), want %s: the retry was delivered twice", ev.ID, ev.Data, next)
	}
}

func TestSSEHeadersAndFraming(t *testing.T) {
	srv := NewServer(t, Options{})
	st := srv.SSE(t, "/events?topic=a", "")
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := st.Resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	id := srv.PublishMsg(t, map[string]any{"topic": "a", "event": "order.updated", "data": "l1\r\nl2\rl3\nevent: x\n\nid: 1"})
	ev := st.Next(t)
	if ev.ID != id || ev.Type != "order.updated" || ev.Data != "l1\nl2\nl3\nevent: x\n\nid: 1" {
		t.Errorf("got %+v, want id %s, type order.updated and the data with LF line ends", ev, id)
	}
	if ev.Retry == 0 {
		t.Errorf("no retry field before the first event")
	}
}

func TestSSEResume(t *testing.T) {
	srv := NewServer(t, Options{})
	first := srv.Publish(t, "news", "one")
	srv.Publish(t, "other", "not for us")
	second := srv.Publish(t, "news", "two")
	srv.WaitDelivered(t, second)
	st := srv.SSE(t, "/events?topic=news", first)
	if ev := st.Next(t); ev.Data != "two" || ev.ID != second {
		t.Errorf("first event after resume = %q (%s), want two (%s)", ev.Data, ev.ID, second)
	}
	// The query parameter works for a first connect, where EventSource cannot set the header.
	st2 := srv.SSE(t, "/events?topic=news&lastEventId="+first, "")
	if ev := st2.Next(t); ev.Data != "two" {
		t.Errorf("lastEventId query: first event %q, want two", ev.Data)
	}
}

// TestSSEResumeUnderLoad reconnects again and again while a publisher keeps publishing, and
// checks that the union of what the client saw is every message once, in order.
func TestSSEResumeUnderLoad(t *testing.T) {
	srv := NewServer(t, Options{})
	const total = 400
	st := srv.SSE(t, "/events?topic=load/*", "") // subscribed before the first publish
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			srv.Publish(t, "load/"+strconv.Itoa(i%4), strconv.Itoa(i))
		}
	})
	var got []string
	last := ""
	for len(got) < total {
		if last != "" {
			st = srv.SSE(t, "/events?topic=load/*&lastEventId="+last, "")
		}
		for range 37 {
			if len(got) == total {
				break
			}
			ev := st.Next(t)
			got = append(got, ev.Data)
			last = ev.ID
		}
		st.Close()
	}
	wg.Wait()
	for i, d := range got {
		if d != strconv.Itoa(i) {
			t.Fatalf("message %d = %s: loss or duplicate across reconnects", i, d)
		}
	}
}

func TestSSEGapNotice(t *testing.T) {
	srv := NewServer(t, Options{})
	st := srv.SSE(t, "/events?topic=a", "not-an-id")
	ev := st.Next(t)
	var g hub.Gap
	if ev.Type != sse.GapEvent || json.Unmarshal([]byte(ev.Data), &g) != nil || g.Reason != hub.GapBadID {
		t.Fatalf("first event %+v, want a herald.gap with reason %s", ev, hub.GapBadID)
	}
	id := srv.Publish(t, "a", "live")
	if ev := st.Next(t); ev.ID != id {
		t.Errorf("after the gap: %+v, want live %s", ev, id)
	}
}

func TestSSERetainedThenLive(t *testing.T) {
	srv := NewServer(t, Options{})
	srv.Publish(t, "price/eur", "old")
	cur := srv.PublishMsg(t, map[string]any{"topic": "price/eur", "data": "1.08", "retain": true})
	other := srv.Publish(t, "price/usd", "not retained")
	srv.WaitDelivered(t, other)
	st := srv.SSE(t, "/events?topic=price/*", "")
	if ev := st.Next(t); ev.ID != cur || ev.Data != "1.08" {
		t.Fatalf("first event %+v, want the retained 1.08 (%s)", ev, cur)
	}
	live := srv.Publish(t, "price/eur", "1.09")
	ev := st.Next(t)
	if ev.ID != live {
		t.Fatalf("then %+v, want live %s", ev, live)
	}
	// The id line sent after the retained values moved the client's cursor to the head, so a
	// reconnect does not replay history it never asked for.
	if st.Reader.LastID() != live {
		t.Errorf("LastID = %s, want %s", st.Reader.LastID(), live)
	}
}

func TestSSEBadRequest(t *testing.T) {
	srv := NewServer(t, Options{})
	for _, path := range []string{"/events", "/events?topic=a%20b", "/events?topic=a/**/b", "/events?topic=a&format=xml"} {
		code, body := Do(t, "GET", srv.URL+path, "", "", nil)
		if code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %s, want 400 with a JSON error", path, code, body)
		}
	}
}

func TestSSEShutdownAdvisesReconnect(t *testing.T) {
	srv := NewServer(t, Options{})
	st := srv.SSE(t, "/events?topic=a", "")
	var comments []string
	var mu sync.Mutex
	st.Reader.OnComment = func(c string) { mu.Lock(); comments = append(comments, c); mu.Unlock() }
	srv.Hub.Close()
	st.End(t)
	mu.Lock()
	defer mu.Unlock()
	if len(comments) == 0 || !strings.Contains(comments[len(comments)-1], "shutting down") {
		t.Errorf("comments %q, want a closing reason", comments)
	}
	code, _ := Do(t, "GET", srv.URL+"/readyz", "", "", nil)
	if code != 503 {
		t.Errorf("/readyz after close = %d, want 503", code)
	}
}

func TestHistory(t *testing.T) {
	srv := NewServer(t, Options{})
	var ids []string
	for i := range 5 {
		ids = append(ids, srv.Publish(t, "h/"+strconv.Itoa(i%2), fmt.Sprint(i)))
	}
	type page struct {
		Messages []struct{ ID, Topic, Data string }
		Next     string
		Gap      *hub.Gap
	}
	get := func(q string) page {
		code, body := Do(t, "GET", srv.URL+"/history?"+q, "", "", nil)
		if code != 200 {
			t.Fatalf("history %s: %d %s", q, code, body)
		}
		var p page
		json.Unmarshal([]byte(body), &p)
		return p
	}
	p := get("topic=h/*&limit=2")
	if len(p.Messages) != 2 || p.Messages[0].ID != ids[0] || p.Messages[1].Data != "1" || p.Next != ids[1] {
		t.Fatalf("first page %+v", p)
	}
	p = get("topic=h/*&limit=10&since=" + p.Next)
	if len(p.Messages) != 3 || p.Messages[2].ID != ids[4] {
		t.Fatalf("second page %+v", p)
	}
	p = get("topic=h/0&since=" + ids[0])
	if len(p.Messages) != 2 || p.Messages[0].Data != "2" || p.Messages[1].Data != "4" {
		t.Fatalf("h/0 page %+v", p)
	}
	if p := get("topic=h/0&since=garbage"); p.Gap == nil || p.Gap.Reason != hub.GapBadID {
		t.Fatalf("garbage since: %+v, want a gap", p)
	}
}

func TestHealth(t *testing.T) {
	srv := NewServer(t, Options{})
	if code, _ := Do(t, "GET", srv.URL+"/healthz", "", "", nil); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := Do(t, "GET", srv.URL+"/readyz", "", "", nil); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	srv.Server.Drain()
	if code, _ := Do(t, "GET", srv.URL+"/readyz", "", "", nil); code != 503 {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	code, body := Do(t, "POST", srv.URL+"/publish", "application/json", `{"topic":"a"}`, Auth())
	if code != 503 {
		t.Errorf("publish while draining = %d %s, want 503", code, body)
	}
}

// cancelLog fails every Last with the caller's context error, as a real engine does when the
// client goes away during the call.
type cancelLog struct{ hub.Log }

func (l cancelLog) Last(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return l.Log.Last(ctx)
}

// A client that disconnects while its request is served is not a server error: nothing is
// logged at error level (the reconnect storm filled the log with such lines).
func TestClientGoneIsNotAnError(t *testing.T) {
	var logs bytes.Buffer
	srv := NewServer(t, Options{
		Log:    cancelLog{memory.New(memory.Config{})},
		Server: server.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/history?topic=a&since="+srv.Hub.Epoch()+"-0", nil)
	srv.Server.ServeHTTP(httptest.NewRecorder(), req)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a canceled request was logged as an error:\n%s", logs.String())
	}
}
