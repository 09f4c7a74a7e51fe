package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Poll subscribes with GET /poll over one keep-alive connection, looping on the answer's next
// cursor as since. Open asks once with timeout=0: the answer's next is the log position the
// server has accounted for, so from then on every published message is owed to the poller.
type Poll struct{}

func (Poll) Name() string { return "poll" }

// pollTimeout is how long each request may be held: below the server's cap, and long enough
// that an idle run makes few requests.
const pollTimeout = "25"

func (Poll) Open(ctx context.Context, c net.Conn, base *url.URL, topics []string) (Conn, error) {
	p := &pollConn{c: c, br: bufio.NewReaderSize(c, 4096), host: base.Host, closed: make(chan struct{}),
		path: strings.TrimSuffix(base.Path, "/") + "/poll?" + url.Values{"topic": topics}.Encode()}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	resp, err := p.get("", "0")
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	p.next = resp.Next
	return p, nil
}

type pollConn struct {
	c          net.Conn
	br         *bufio.Reader
	host, path string
	next       string
	req, body  []byte // reused
	closed     chan struct{}
	refused    int64 // polls answered 503 and retried; only the reading goroutine writes it
}

// errRefused is a 503: the server is overloaded for now and says when to retry.
type errRefused struct{ after time.Duration }

func (e errRefused) Error() string {
	return fmt.Sprintf("bench: GET /poll: 503, retry after %s", e.after)
}

type pollAnswer struct {
	Messages []struct {
		Data string `json:"data"`
	} `json:"messages"`
	Next string          `json:"next"`
	Gap  json.RawMessage `json:"gap"`
}

// get sends one request and reads its answer.
func (p *pollConn) get(since, timeout string) (*pollAnswer, error) {
	p.req = append(p.req[:0], "GET "...)
	p.req = append(p.req, p.path...)
	if since != "" {
		p.req = append(p.req, "&since="...)
		p.req = append(p.req, url.QueryEscape(since)...)
	}
	p.req = append(p.req, "&timeout="...)
	p.req = append(p.req, timeout...)
	p.req = append(p.req, " HTTP/1.1\r\nHost: "...)
	p.req = append(p.req, p.host...)
	p.req = append(p.req, "\r\n\r\n"...)
	if _, err := p.c.Write(p.req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return nil, err
	}
	p.body = p.body[:0]
	for {
		if len(p.body) == cap(p.body) {
			p.body = slices.Grow(p.body, max(4096, int(resp.ContentLength)))
		}
		n, err := resp.Body.Read(p.body[len(p.body):cap(p.body)])
		p.body = p.body[:len(p.body)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, errRefused{time.Duration(max(after, 1)) * time.Second}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: GET /poll: %s: %s", resp.Status, p.body)
	}
	var a pollAnswer
	if err := json.Unmarshal(p.body, &a); err != nil {
		return nil, fmt.Errorf("bench: GET /poll: %w", err)
	}
	if a.Next == "" {
		return nil, fmt.Errorf("bench: GET /poll: no next cursor in %.200s", p.body)
	}
	return &a, nil
}

// Read makes one poll. A gap (the cursor fell out of history) shows up as lost messages. A
// 503 is retried as a client would: after Retry-After, jittered over [0.5, 1.5) of it so
// that the refused do not return as one herd; the cursor keeps every message owed.
func (p *pollConn) Read(deliver func([]byte, int64)) error {
	a, err := p.get(p.next, pollTimeout)
	var refused errRefused
	if errors.As(err, &refused) {
		p.refused++
		wait := refused.after/2 + rand.N(refused.after)
		select {
		case <-time.After(wait):
			return nil
		case <-p.closed:
			return net.ErrClosed
		}
	}
	if err != nil {
		return err
	}
	at := time.Now().UnixNano()
	for _, m := range a.Messages {
		deliver([]byte(m.Data), at)
	}
	p.next = a.Next
	return nil
}

func (p *pollConn) Close() error {
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return p.c.Close()
}

func (p *pollConn) refusals() int64 { return p.refused }
