// Package bench is the load generator behind `herald bench`: it opens many subscribers to a
// push server, publishes to them at a set rate, and measures what arrives, how late, and what
// the server spent (memory and CPU, read from /proc when the server runs on this machine).
//
// It works against Herald and against anything that speaks the same small API (POST /publish
// with a JSON array, GET /events), such as the naive baseline in package naive, so that every
// figure can be a ratio measured in one run.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one scenario. Zero values mean the documented default.
type Config struct {
	URL       string // the server, e.g. http://127.0.0.1:8080
	Key       string // publisher key (Authorization: Bearer)
	PID       int    // the server's process id, for RSS and CPU; 0 means not measured
	Transport string // sse; "" means sse

	Mode        string        // fanout (default), publish or churn
	N           int           // subscribers
	Topics      int           // subscriber i listens on topic i mod Topics; 0 means 1
	Shared      float64       // messages/s to a topic every subscriber also listens on; 0: none
	Rate        float64       // messages/s; 0 means as fast as the server accepts
	Size        int           // bytes of data per message; 0 means 64
	Duration    time.Duration // publishing time; 0 means 10s
	Tick        time.Duration // publish every Tick (rate mode); 0 means 20ms
	Batch       int           // messages per publish request; 0 means 100 (publish mode: as given)
	Concurrency int           // publish and churn mode: parallel clients; 0 means 4
	Slow        float64       // fraction of subscribers that never read
	Sources     int           // loopback source addresses to spread sockets over; 0 means 4
	Dialers     int           // parallel connects; 0 means 64
	Settle      time.Duration // wait before the idle memory sample; 0 means 2s

	Progress io.Writer // one line a second while running; nil means none
}

func (c *Config) defaults() {
	if c.Transport == "" {
		c.Transport = "sse"
	}
	if c.Mode == "" {
		c.Mode = "fanout"
	}
	if c.Topics <= 0 {
		c.Topics = 1
	}
	if c.Size <= 0 {
		c.Size = 64
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 20 * time.Millisecond
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Sources <= 0 {
		c.Sources = 4
	}
	if c.Dialers <= 0 {
		c.Dialers = 64
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Result is what one scenario measured. Durations are in milliseconds in JSON.
type Result struct {
	Target    string  `json:"target"`
	Mode      string  `json:"mode"`
	Transport string  `json:"transport"`
	N         int     `json:"subscribers"`
	Slow      int     `json:"slow_subscribers,omitempty"`
	Topics    int     `json:"topics"`
	Rate      float64 `json:"rate_requested"` // messages/s; 0: as fast as accepted
	Size      int     `json:"size"`
	Seconds   float64 `json:"seconds"`

	ConnectSeconds float64 `json:"connect_seconds,omitempty"`
	ConnectErrors  int64   `json:"connect_errors"`

	Published       int64   `json:"published"`
	PublishedPerSec float64 `json:"published_per_sec"`
	PublishErrors   int64   `json:"publish_errors"`
	Requested       float64 `json:"deliveries_per_sec_requested,omitempty"`
	Achieved        float64 `json:"deliveries_per_sec,omitempty"` // received within the publish window
	Expected        int64   `json:"deliveries_expected,omitempty"`
	Delivered       int64   `json:"deliveries,omitempty"` // distinct messages received, any time
	Lost            int64   `json:"lost"`
	Duplicates      int64   `json:"duplicates"`
	P50             float64 `json:"latency_p50_ms,omitempty"`
	P90             float64 `json:"latency_p90_ms,omitempty"`
	P99             float64 `json:"latency_p99_ms,omitempty"`
	Max             float64 `json:"latency_max_ms,omitempty"`

	RSSBase       int64   `json:"rss_base_bytes,omitempty"`
	RSSIdle       int64   `json:"rss_idle_bytes,omitempty"`
	RSSLoad       int64   `json:"rss_load_bytes,omitempty"` // highest sample while publishing
	IdlePerConn   float64 `json:"rss_idle_per_conn_bytes,omitempty"`
	LoadPerConn   float64 `json:"rss_load_per_conn_bytes,omitempty"`
	CPUSeconds    float64 `json:"cpu_seconds,omitempty"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million_deliveries,omitempty"`

	ChurnPerSec float64 `json:"connects_per_sec,omitempty"`
}

// LossFreeRate is the deliveries/s achieved when nothing was lost or duplicated, else 0.
func (r *Result) LossFreeRate() float64 {
	if r.Lost > 0 || r.Duplicates > 0 {
		return 0
	}
	return r.Achieved
}

// Run runs one scenario against cfg.URL.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	base, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	tr, ok := Transports[cfg.Transport]
	if !ok {
		return nil, fmt.Errorf("bench: unknown transport %q", cfg.Transport)
	}
	r := &Result{Target: cfg.URL, Mode: cfg.Mode, Transport: tr.Name(), N: cfg.N, Topics: cfg.Topics,
		Rate: cfg.Rate, Size: cfg.Size}
	switch cfg.Mode {
	case "fanout":
		err = runFanout(ctx, &cfg, base, tr, r)
	case "publish":
		err = runPublish(ctx, &cfg, base, r)
	case "churn":
		err = runChurn(ctx, &cfg, base, tr, r)
	default:
		err = fmt.Errorf("bench: unknown mode %q (fanout, publish or churn)", cfg.Mode)
	}
	return r, err
}

// dialer spreads connections over 127.0.0.1..127.0.0.k when the target is on loopback: each
// source address has its own ~28,000 ephemeral ports towards one server port.
func dialer(cfg *Config, base *url.URL, i int) *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second}
	if ip := net.ParseIP(base.Hostname()); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%cfg.Sources))}
	}
	return d
}

func hostPort(base *url.URL) string {
	if base.Port() != "" {
		return base.Host
	}
	return net.JoinHostPort(base.Hostname(), "80")
}

// subscriber is one connection's bookkeeping, touched only by its reader goroutine until the
// run ends.
type subscriber struct {
	conn   Conn
	topics [2]int   // topic indexes; topics[1] is -1 without a shared topic
	last   [2]int64 // highest sequence number seen per topic
	unique int64
	shard  *shard
	slow   bool
}

// shard is a slice of the counters, so that thousands of readers do not share one lock.
type shard struct {
	mu       sync.Mutex
	hist     histogram
	total    int64
	inWindow int64
	dups     int64
	_        [64]byte
}

const shards = 64

// payload is the data of one bench message: ~topic~seq~sentUnixNano~ then padding. A server
// may wrap it (the naive baseline sends JSON); the reader finds the first '~'.
func appendPayload(b []byte, topic int, seq int64, sent int64, size int) []byte {
	start := len(b)
	b = append(b, '~')
	b = strconv.AppendInt(b, int64(topic+1), 10) // the shared topic, -1, is 0 on the wire
	b = append(b, '~')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '~')
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, '~')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

func parsePayload(d []byte) (topic int, seq, sent int64, ok bool) {
	i := bytes.IndexByte(d, '~')
	if i < 0 {
		return 0, 0, 0, false
	}
	d = d[i+1:]
	var f [3]int64
	for k := range f {
		var v int64
		j := 0
		for ; j < len(d) && d[j] >= '0' && d[j] <= '9'; j++ {
			v = v*10 + int64(d[j]-'0')
		}
		if j == 0 || j == len(d) || d[j] != '~' {
			return 0, 0, 0, false
		}
		f[k] = v
		d = d[j+1:]
	}
	return int(f[0]) - 1, f[1], f[2], true
}

func topicName(i int) string {
	if i < 0 {
		return "bench/shared"
	}
	return "bench/" + strconv.Itoa(i)
}

// sharedTopic is the index of the shared topic in sequence bookkeeping.
const sharedTopic = -1

func runFanout(ctx context.Context, cfg *Config, base *url.URL, tr Transport, r *Result) error {
	p := proc{cfg.PID}
	if cfg.PID > 0 {
		r.RSSBase, _ = p.rss()
	}
	subs := make([]*subscriber, cfg.N)
	var sh [shards]shard
	slowEvery := 0
	if cfg.Slow > 0 {
		slowEvery = int(1 / cfg.Slow)
	}
	for i := range subs {
		s := &subscriber{topics: [2]int{i % cfg.Topics, -2}, shard: &sh[i%shards]}
		if cfg.Shared > 0 {
			s.topics[1] = sharedTopic
		}
		s.slow = slowEvery > 0 && i%slowEvery == slowEvery-1
		if s.slow {
			r.Slow++
		}
		subs[i] = s
	}

	// Connect everyone, in parallel, and time it.
	fmt.Fprintf(cfg.Progress, "%s: connecting %d %s subscribers\n", cfg.URL, cfg.N, tr.Name())
	start := time.Now()
	var next, connErrs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range min(cfg.Dialers, max(cfg.N, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(subs) || ctx.Err() != nil {
					return
				}
				s := subs[i]
				topics := []string{topicName(s.topics[0])}
				if s.topics[1] == sharedTopic {
					topics = append(topics, topicName(sharedTopic))
				}
				c, err := open(ctx, cfg, base, tr, i, topics)
				if err != nil {
					connErrs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				s.conn = c
			}
		}()
	}
	wg.Wait()
	r.ConnectSeconds = time.Since(start).Seconds()
	r.ConnectErrors = connErrs.Load()
	defer func() {
		for _, s := range subs {
			if s.conn != nil {
				s.conn.Close()
			}
		}
	}()
	if r.ConnectErrors > 0 {
		return fmt.Errorf("bench: %d of %d connects failed, first: %v", r.ConnectErrors, cfg.N, firstErr.Load())
	}
	fmt.Fprintf(cfg.Progress, "%s: %d connected in %.2fs\n", cfg.URL, cfg.N, r.ConnectSeconds)

	// Idle memory: after the connects settle.
	if cfg.PID > 0 {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		r.RSSIdle, _ = p.rss()
		r.IdlePerConn = float64(r.RSSIdle-r.RSSBase) / float64(max(cfg.N, 1))
	}

	// Readers. windowEnd is set when publishing starts; deliveries after it are late.
	var windowEnd atomic.Int64
	windowEnd.Store(1 << 62)
	var readers sync.WaitGroup
	for _, s := range subs {
		if s.slow {
			continue
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			s.read(&windowEnd)
		}()
	}

	// Publish.
	cpu0, _ := p.cpu()
	pub := newPublisher(cfg, base)
	pubStart := time.Now()
	windowEnd.Store(pubStart.Add(cfg.Duration).UnixNano())
	counts := make(map[int]int64) // per topic index: messages published
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	pubCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- pub.rateLoop(pubCtx, counts) }()
	var lastTotal int64
	total := func() int64 {
		var t int64
		for i := range sh {
			sh[i].mu.Lock()
			t += sh[i].total
			sh[i].mu.Unlock()
		}
		return t
	}
	var pubErr error
wait:
	for {
		select {
		case pubErr = <-done:
			break wait
		case <-progress.C:
			t := total()
			if cfg.PID > 0 {
				if rss, err := p.rss(); err == nil {
					r.RSSLoad = max(r.RSSLoad, rss)
				}
			}
			fmt.Fprintf(cfg.Progress, "%s: %4.0fs published %d, %d deliveries/s, server RSS %d MiB\n",
				cfg.URL, time.Since(pubStart).Seconds(), pub.sent.Load(), t-lastTotal, r.RSSLoad>>20)
			lastTotal = t
		}
	}
	r.Seconds = time.Since(pubStart).Seconds()
	r.Published = pub.sent.Load()
	r.PublishErrors = pub.errors.Load()
	r.PublishedPerSec = float64(r.Published) / r.Seconds
	if pubErr != nil && !errors.Is(pubErr, context.DeadlineExceeded) && !errors.Is(pubErr, context.Canceled) {
		return pubErr
	}

	// Expected deliveries: every reading subscriber gets every message of its topics.
	for _, s := range subs {
		if !s.slow {
			r.Expected += counts[s.topics[0]]
			if s.topics[1] == sharedTopic {
				r.Expected += counts[sharedTopic]
			}
		}
	}
	// Drain: wait until everything arrived, or nothing arrived for 2s (at most 15s).
	deadline := time.Now().Add(15 * time.Second)
	quiet := time.Now()
	for prev := int64(-1); time.Now().Before(deadline) && time.Since(quiet) < 2*time.Second; {
		t := total()
		if t >= r.Expected {
			break
		}
		if t != prev {
			prev, quiet = t, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cfg.PID > 0 {
		cpu1, _ := p.cpu()
		r.CPUSeconds = (cpu1 - cpu0).Seconds()
		r.LoadPerConn = float64(r.RSSLoad-r.RSSBase) / float64(max(cfg.N, 1))
	}
	for _, s := range subs {
		if s.conn != nil {
			s.conn.Close()
		}
	}
	readers.Wait()

	var hist histogram
	var inWindow int64
	for i := range sh {
		hist.merge(&sh[i].hist)
		inWindow += sh[i].inWindow
		r.Duplicates += sh[i].dups
	}
	for _, s := range subs {
		r.Delivered += s.unique
	}
	r.Lost = r.Expected - r.Delivered
	r.Requested = float64(r.Expected) / cfg.Duration.Seconds()
	if cfg.Rate > 0 {
		perMsg := float64(r.Expected) / float64(max(r.Published, 1))
		r.Requested = cfg.Rate * perMsg
	}
	r.Achieved = float64(inWindow) / cfg.Duration.Seconds()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.P50, r.P90, r.P99, r.Max = ms(hist.quantile(.5)), ms(hist.quantile(.9)), ms(hist.quantile(.99)), ms(hist.max)
	if r.Delivered > 0 && r.CPUSeconds > 0 {
		r.CPUPerMillion = r.CPUSeconds / float64(r.Delivered) * 1e6
	}
	return nil
}

func open(ctx context.Context, cfg *Config, base *url.URL, tr Transport, i int, topics []string) (Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := dialer(cfg, base, i).DialContext(ctx, "tcp", hostPort(base))
	if err != nil {
		return nil, err
	}
	c, err := tr.Open(ctx, nc, base, topics)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (s *subscriber) read(windowEnd *atomic.Int64) {
	deliver := func(d []byte, at int64) {
		topic, seq, sent, ok := parsePayload(d)
		if !ok {
			return
		}
		k := 0
		if topic != s.topics[0] {
			k = 1
		}
		sh := s.shard
		sh.mu.Lock()
		sh.total++
		if at < windowEnd.Load() {
			sh.inWindow++
		}
		sh.hist.add(time.Duration(at - sent))
		if seq <= s.last[k] {
			sh.dups++
		} else {
			s.unique++
			s.last[k] = seq
		}
		sh.mu.Unlock()
	}
	for {
		if err := s.conn.Read(deliver); err != nil {
			return
		}
	}
}
