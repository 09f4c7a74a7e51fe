// Package client publishes to and subscribes from a Herald server over HTTP.
//
// Publish and PublishBatch retry connection errors and 5xx answers with the same idempotency key,
// so a retry never delivers a message twice. Subscribe streams Server-Sent Events and hides
// reconnects: it resumes from the last id it saw, waits with full-jitter backoff between attempts,
// and reopens a stream that went silent. Loss is never silent: when the server cannot replay
// what was missed it says so, and Subscribe yields a *Gap.
//
// The package talks to the server only through its public HTTP API, so it works against any
// Herald version that speaks that API.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options configures a Client. Zero values mean the documented default.
type Options struct {
	// Key is sent as "Authorization: Bearer <Key>": a publisher key to publish, or a subscriber
	// token where the server requires one to subscribe. Empty sends no header.
	Key string

	// HTTPClient sends every request; nil means a client with no overall timeout (streams last
	// for hours; publishes are bounded by their context and by PublishTimeout).
	HTTPClient *http.Client

	// Retries is how many more times a publish is tried after a connection error or a 5xx
	// answer; 0 means 2, negative means none.
	Retries int

	// PublishTimeout bounds one publish attempt; 0 means 30s.
	PublishTimeout time.Duration

	// MinBackoff is the base of the reconnect backoff when the server advised no retry delay;
	// 0 means 1s. MaxBackoff caps it; 0 means 30s.
	MinBackoff, MaxBackoff time.Duration

	// IdleTimeout reopens a stream that received nothing, not even a heartbeat, for this long;
	// 0 means 45s (three of the server's default 15s heartbeats).
	IdleTimeout time.Duration

	// StableAfter is how long a stream must stay open for the backoff to start again from its
	// base; 0 means 10s.
	StableAfter time.Duration
}

// Client is safe for concurrent use.
type Client struct {
	base string // without a trailing slash
	opts Options
	hc   *http.Client
}

// New returns a client of the server at baseURL, e.g. "http://localhost:8080".
func New(baseURL string, opts Options) *Client {
	if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 30 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 45 * time.Second
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = 10 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), opts: opts, hc: hc}
}

// Message is a message to publish, or one received from a subscription.
type Message struct {
	ID     string   // set by the server; ignored when publishing
	Topic  string   // the topic; on a received message, the first of Topics
	Topics []string // further topics to publish to; on a received message, all of them when more than one
	Event  string   // optional event type, e.g. "order.updated"
	Data   string   // the payload, delivered as text
	Retain bool     // becomes the current value of its topics, sent first to new subscribers

	// IdempotencyKey makes a repeated publish return the first one's id instead of publishing
	// again. When empty and retries are enabled, the client generates one per call so that its
	// own retries are safe. It is never sent to subscribers.
	IdempotencyKey string

	Time time.Time // when the server accepted it; zero when publishing
}

// Error is an error answer of the server: Status is the HTTP status, Code the error code in
// the body ("unauthorized", "bad_topic", ...) and Message the server's explanation.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// temporary reports whether a request that got this answer may succeed later.
func (e *Error) temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// readError turns a non-2xx answer into an *Error, reading the server's JSON error body.
func readError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Code, e.Message = body.Error, body.Message
	} else {
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

// retryAfter returns the delay a 503 or 429 answer asked for, or 0.
func retryAfter(resp *http.Response) time.Duration {
	var s int
	if _, err := fmt.Sscan(resp.Header.Get("Retry-After"), &s); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, 5*time.Minute)
	}
	return 0
}

func (c *Client) url(path string, q url.Values) string {
	if len(q) == 0 {
		return c.base + path
	}
	return c.base + path + "?" + q.Encode()
}

func (c *Client) authorize(req *http.Request) {
	if c.opts.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Key)
	}
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return "go-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// postJSON posts body to path, retrying temporary failures, and decodes a 200 answer into out.
func (c *Client) postJSON(ctx context.Context, path string, body []byte, header http.Header, out any) error {
	var last error
	for attempt := 0; ; attempt++ {
		wait, err := c.postOnce(ctx, path, body, header, out)
		if err == nil {
			return nil
		}
		last = err
		var he *Error
		if errors.As(err, &he) && !he.temporary() || ctx.Err() != nil || attempt >= c.opts.Retries {
			return last
		}
		if wait == 0 {
			wait = fullJitter(c.opts.MinBackoff/4, c.opts.MaxBackoff, attempt)
		}
		if err := sleep(ctx, wait); err != nil {
			return last
		}
	}
}

func (c *Client) postOnce(ctx context.Context, path string, body []byte, header http.Header, out any) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.PublishTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path, nil), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("herald: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return retryAfter(resp), readError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return 0, fmt.Errorf("herald: reading the answer: %w", err)
	}
	return 0, nil
}
