package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/internal/ws"
)

func TestSubscribePublish(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression=%v", compress), func(t *testing.T) {
			srv := newServer(t, &ws.Handler{Compression: compress, CompressionThreshold: 64})
			cl := dial(t, srv, nil, compress)
			if got := cl.resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(got, "permessage-deflate") != compress {
				t.Errorf("Sec-WebSocket-Extensions = %q, want permessage-deflate negotiated: %v", got, compress)
			}
			if before, pos := cl.subscribe(t, []string{"chat/*"}, ""); len(before) != 0 || pos == "" {
				t.Fatalf("subscribe: frames %v and position %q, want none and a position", before, pos)
			}
			big := strings.Repeat("compress me ", 100) // over the threshold
			for _, data := range []string{"hello", big} {
				id := srv.PublishMsg(t, map[string]any{"topic": "chat/room", "event": "said", "data": data})
				f := cl.expect(t, "message")
				if f.ID != id || f.Topic != "chat/room" || f.Event != "said" || f.Data != data || f.Time == "" {
					t.Errorf("got %.200s, want id %s, topic chat/room, event said, the data and a time", f.raw, id)
				}
			}
			// Publishing over the socket needs rights: a publisher key here.
			pub := dial(t, srv, heraldtest.Auth(), compress)
			pub.send(t, map[string]any{"op": "publish", "topic": "chat/room", "data": map[string]any{"n": 1}, "ref": "p1"})
			ack := pub.expect(t, "ack")
			if ack.Ref != "p1" || ack.ID == "" {
				t.Fatalf("ack %s, want ref p1 and an id", ack.raw)
			}
			if f := cl.expect(t, "message"); f.ID != ack.ID || f.Data != `{"n":1}` {
				t.Errorf("subscriber got %s, want id %s with data {\"n\":1}", f.raw, ack.ID)
			}
			pub.send(t, `{"op":"ping","ref":7}`)
			if f := pub.expect(t, "pong"); !strings.Contains(f.raw, `"ref":7`) {
				t.Errorf("pong %s, want ref 7 echoed as a number", f.raw)
			}
		})
	}
}

func TestMessageFrameIsSharedJSONForm(t *testing.T) {
	srv := newServer(t, nil)
	cl := dial(t, srv, nil, false)
	cl.subscribe(t, []string{"a", "b"}, "")
	srv.PublishMsg(t, map[string]any{"topics": []string{"a", "b"}, "data": "x<y>\"z\""})
	f := cl.expect(t, "message")
	var obj map[string]any
	json.Unmarshal([]byte(f.raw), &obj)
	delete(obj, "type")
	code, body := heraldtest.Do(t, "GET", srv.URL+"/history?topic=a", "", "", nil)
	var page struct{ Messages []map[string]any }
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Messages) != 1 {
		t.Fatalf("history: %d %s", code, body)
	}
	if got, want := fmt.Sprint(obj), fmt.Sprint(page.Messages[0]); got != want {
		t.Errorf("ws message %s, want the history form %s plus type", got, want)
	}
}

func TestResumeAcrossReconnect(t *testing.T) {
	srv := newServer(t, nil)
	const total = 300
	cl := dial(t, srv, nil, false)
	cl.subscribe(t, []string{"load/*"}, "")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			srv.Publish(t, "load/"+strconv.Itoa(i%3), strconv.Itoa(i))
		}
	})
	var got []string
	last := ""
	for len(got) < total {
		if last != "" {
			cl = dial(t, srv, nil, len(got)%2 == 0)
			before, _ := cl.subscribe(t, []string{"load/*"}, last)
			for _, f := range before {
				got = append(got, f.Data)
				last = f.ID
			}
		}
		for n := 0; n < 29 && len(got) < total; n++ {
			f := cl.expect(t, "message")
			got = append(got, f.Data)
			last = f.ID
		}
		cl.c.Close(websocket.StatusNormalClosure, "")
	}
	wg.Wait()
	if len(got) != total {
		t.Fatalf("got %d messages, want %d", len(got), total)
	}
	for i, d := range got {
		if d != strconv.Itoa(i) {
			t.Fatalf("message %d = %s: loss or duplicate across reconnects", i, d)
		}
	}
}

func TestGapAndRetained(t *testing.T) {
	srv := newServer(t, nil)
	cur := srv.PublishMsg(t, map[string]any{"topic": "price/eur", "data": "1.08", "retain": true})
	srv.WaitDelivered(t, cur)
	cl := dial(t, srv, nil, false)
	before, pos := cl.subscribe(t, []string{"price/*"}, "")
	if len(before) != 1 || before[0].ID != cur || pos != cur {
		t.Fatalf("new subscriber: %v then position %s, want the retained %s then position %s", before, pos, cur, cur)
	}
	before, _ = cl.subscribe(t, []string{"news"}, "not-an-id")
	if len(before) != 1 || before[0].Type != "gap" || before[0].Reason != hub.GapBadID || before[0].LastEventID != "not-an-id" || before[0].Ref != "s" {
		t.Fatalf("resume from garbage: %v, want one gap frame (bad-id) with the ref", before)
	}
}

func TestSubscriptionsOnOneConnection(t *testing.T) {
	srv := newServer(t, nil)
	cl := dial(t, srv, nil, false)
	cl.subscribe(t, []string{"room/*"}, "")
	cl.subscribe(t, []string{"room/1", "other"}, "")
	ids := []string{srv.Publish(t, "room/1", "both"), srv.Publish(t, "room/2", "first only"), srv.Publish(t, "other", "second only")}
	for i, id := range ids {
		if f := cl.expect(t, "message"); f.ID != id {
			t.Fatalf("message %d: %s, want %s once", i, f.raw, id)
		}
	}
	cl.send(t, map[string]any{"op": "unsubscribe", "topics": []string{"room/1", "other"}, "ref": "u"})
	if f := cl.expect(t, "ack"); f.Ref != "u" {
		t.Fatalf("unsubscribe ack %s", f.raw)
	}
	next := srv.Publish(t, "other", "nobody")
	last := srv.Publish(t, "room/3", "still")
	srv.WaitDelivered(t, next)
	if f := cl.expect(t, "message"); f.ID != last {
		t.Fatalf("after unsubscribe: %s, want only %s", f.raw, last)
	}
}

func TestDedupeAgainstResumingSubscription(t *testing.T) {
	srv := newServer(t, nil)
	start := srv.Publish(t, "x/0", "before")
	cl := dial(t, srv, nil, false)
	cl.subscribe(t, []string{"x/*"}, "")
	a := srv.Publish(t, "x/1", "a")
	if f := cl.expect(t, "message"); f.ID != a {
		t.Fatalf("got %s, want %s", f.raw, a)
	}
	// The second subscription resumes from start: it replays a, which this connection has
	// already received through the first. It must not arrive twice.
	before, _ := cl.subscribe(t, []string{"x/1"}, start)
	if len(before) != 0 {
		t.Fatalf("replay sent %v again", before)
	}
	b := srv.Publish(t, "x/1", "b")
	if f := cl.expect(t, "message"); f.ID != b {
		t.Fatalf("got %s, want %s", f.raw, b)
	}
	c := srv.Publish(t, "x/2", "c")
	if f := cl.expect(t, "message"); f.ID != c {
		t.Fatalf("got %s, want %s (b only once)", f.raw, c)
	}
}

func TestSameMessageOnEveryTransport(t *testing.T) {
	srv := newServer(t, nil)
	st := srv.SSE(t, "/events?topic=t", "")
	cl := dial(t, srv, nil, true)
	_, pos := cl.subscribe(t, []string{"t"}, "")
	type poll struct {
		Messages []struct{ ID, Data string }
		Next     string
	}
	polled := make(chan poll, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/poll?topic=t&timeout=10&since=" + pos)
		if err != nil {
			polled <- poll{}
			return
		}
		defer resp.Body.Close()
		var p poll
		json.NewDecoder(resp.Body).Decode(&p)
		polled <- p
	}()
	id := srv.Publish(t, "t", "everyone")
	ev := st.Next(t)
	f := cl.expect(t, "message")
	p := <-polled
	if ev.ID != id || f.ID != id || len(p.Messages) != 1 || p.Messages[0].ID != id || p.Next != id {
		t.Errorf("sse %s, ws %s, poll %+v: want id %s everywhere", ev.ID, f.ID, p, id)
	}
}

func TestPublishRights(t *testing.T) {
	srv := newServer(t, nil)
	anon := dial(t, srv, nil, false)
	anon.send(t, `{"op":"publish","topic":"a","data":"x","ref":"1"}`)
	if f := anon.expect(t, "error"); f.Code != "unauthorized" || f.Ref != "1" {
		t.Errorf("anonymous publish: %s, want error unauthorized with ref 1", f.raw)
	}
	open := newServer(t, &ws.Handler{AllowAnonymousPublish: true})
	anon = dial(t, open, nil, false)
	anon.send(t, `{"op":"publish","topics":["a","b"],"data":"x","event":"e","ref":"2"}`)
	if f := anon.expect(t, "ack"); f.ID == "" {
		t.Errorf("allow_anonymous_publish: %s, want an ack with an id", f.raw)
	}
	for _, tt := range []struct{ op, code string }{
		{`{"op":"publish","topic":"a b","data":"x","ref":"3"}`, "bad_topic"},
		{`{"op":"publish","topic":"a","event":"x\ny","ref":"3"}`, "bad_event"},
		{`{"op":"publish","data":"x","ref":"3"}`, "bad_topic"},
	} {
		anon.send(t, tt.op)
		if f := anon.expect(t, "error"); f.Code != tt.code || f.Ref != "3" {
			t.Errorf("%s: %s, want error %s", tt.op, f.raw, tt.code)
		}
	}
}

func TestBadInputNeverHurtsOthers(t *testing.T) {
	srv := newServer(t, &ws.Handler{MaxMessage: 4096, MaxSubscriptions: 2})
	control := srv.SSE(t, "/events?topic=ok", "")
	other := dial(t, srv, nil, false)
	other.subscribe(t, []string{"ok"}, "")

	cl := dial(t, srv, nil, false)
	for _, tt := range []struct{ in, code string }{
		{`{"op":`, "bad_request"},
		{`[1,2]`, "bad_request"},
		{`{"op":"dance"}`, "bad_request"},
		{`{"ref":"r"}`, "bad_request"},
		{`{"op":"ping","ref":{"x":1}}`, "bad_request"},
		{`{"op":"subscribe","topics":[]}`, "bad_topic"},
		{`{"op":"subscribe","topics":["a/**/b"]}`, "bad_topic"},
		{`{"op":"publish","topic":"a","data":"x"}`, "unauthorized"},
	} {
		cl.send(t, tt.in)
		if f := cl.expect(t, "error"); f.Code != tt.code || f.Message == "" {
			t.Errorf("%s: %s, want error %s with a message", tt.in, f.raw, tt.code)
		}
	}
	ctx := context.Background()
	cl.c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2})
	if f := cl.expect(t, "error"); f.Code != "bad_request" {
		t.Errorf("binary frame: %s, want error bad_request", f.raw)
	}
	cl.subscribe(t, []string{"s1"}, "")
	cl.subscribe(t, []string{"s2"}, "")
	cl.send(t, `{"op":"subscribe","topics":["s3"],"ref":"x"}`)
	if f := cl.expect(t, "error"); f.Code != "too_many" || f.Ref != "x" {
		t.Errorf("third subscription: %s, want error too_many", f.raw)
	}

	// Invalid UTF-8 and oversized messages close the connection with the RFC's codes.
	cl.c.Write(ctx, websocket.MessageText, []byte("{\"op\":\"ping\",\"ref\":\"\xff\"}"))
	if code, _ := cl.closed(t); code != ws.CloseInvalidData {
		t.Errorf("invalid UTF-8: close %d, want %d", code, ws.CloseInvalidData)
	}
	big := dial(t, srv, nil, true)
	big.c.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","ref":"`+strings.Repeat("x", 5000)+`"}`))
	if code, _ := big.closed(t); code != websocket.StatusMessageTooBig {
		t.Errorf("oversized: close %d, want %d", code, websocket.StatusMessageTooBig)
	}

	id := srv.Publish(t, "ok", "still here")
	if ev := control.Next(t); ev.ID != id {
		t.Errorf("SSE control got %+v, want %s", ev, id)
	}
	if f := other.expect(t, "message"); f.ID != id {
		t.Errorf("WS control got %s, want %s", f.raw, id)
	}
}

func TestTooManyBadFramesClosesWithPolicy(t *testing.T) {
	srv := newServer(t, nil)
	cl := dial(t, srv, nil, false)
	for range 25 {
		cl.c.Write(context.Background(), websocket.MessageText, []byte(`nonsense`))
	}
	if code, _ := cl.closed(t); code != ws.ClosePolicy {
		t.Errorf("close %d, want %d", code, ws.ClosePolicy)
	}
}

func TestPublishRateLimit(t *testing.T) {
	srv := newServer(t, &ws.Handler{PublishRate: 0.001, PublishBurst: 2})
	cl := dial(t, srv, heraldtest.Auth(), false)
	var codes []string
	for i := range 3 {
		cl.send(t, map[string]any{"op": "publish", "topic": "r", "data": "x", "ref": strconv.Itoa(i)})
		f := cl.next(t)
		codes = append(codes, f.Type+" "+f.Code)
	}
	if got, want := strings.Join(codes, ","), "ack ,ack ,error rate_limited"; got != want {
		t.Errorf("replies %s, want %s", got, want)
	}
}

func TestOriginCheck(t *testing.T) {
	srv := newServer(t, &ws.Handler{OriginPatterns: []string{"app.example.com"}})
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{srv.URL, true},
		{"https://app.example.com", true},
		{"https://evil.example.com", false},
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, wsURL(srv), &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if (err == nil) != tt.ok {
			t.Errorf("Origin %q: err %v, want allowed %v", tt.origin, err, tt.ok)
		}
		if err == nil {
			c.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %q: response %v, want 403", tt.origin, resp)
		}
	}
}

func TestSlowConsumerIsEvicted(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Hub: hub.Config{QueueLen: 4}, Server: server.Config{WS: &ws.Handler{}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","topics":["flood"]}`))
	for { // until subscribed; then stop reading while the server keeps sending
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "subscribed") {
			break
		}
	}
	// 18 MB, more than the socket buffers hold, in batches of ten messages per request.
	batch, _ := json.Marshal(slices.Repeat([]map[string]string{{"topic": "flood", "data": strings.Repeat("x", 60000)}}, 10))
	var last string
	for range 30 {
		code, body := heraldtest.Do(t, "POST", srv.URL+"/publish", "application/json", string(batch), heraldtest.Auth())
		var r struct{ IDs []string }
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil || len(r.IDs) != 10 {
			t.Fatalf("publish: %d %.200s", code, body)
		}
		last = r.IDs[9]
	}
	srv.WaitDelivered(t, last)
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != ws.CloseSlowConsumer {
				t.Fatalf("ended with %v, want close %d", err, ws.CloseSlowConsumer)
			}
			return
		}
	}
}

func TestShutdownCloseCodes(t *testing.T) {
	srv := newServer(t, nil)
	sub := dial(t, srv, nil, false)
	sub.subscribe(t, []string{"a"}, "")
	idle := dial(t, srv, nil, false)
	idle.send(t, `{"op":"ping"}`)
	idle.expect(t, "pong")
	srv.Hub.Close()
	if code, _ := sub.closed(t); code != ws.CloseRestart {
		t.Errorf("subscriber at hub close: %d, want %d", code, ws.CloseRestart)
	}
	srv.Server.CloseWebSockets()
	if code, _ := idle.closed(t); code != ws.CloseGoingAway {
		t.Errorf("idle connection at shutdown: %d, want %d", code, ws.CloseGoingAway)
	}
}

func TestDeadPeerIsDropped(t *testing.T) {
	h := &ws.Handler{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}
	srv := newServer(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A client that never reads never answers pings: the server must drop it.
	c, _, err := websocket.Dial(ctx, wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for h.Conns() != 0 {
		if ctx.Err() != nil {
			t.Fatalf("%d connections still open after 10s, want the dead peer dropped", h.Conns())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
