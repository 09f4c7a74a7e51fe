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
	URL string // the server, e.g. http://127.0.0.1:8080
	Key string // publisher key (Authorization: Bearer)
	PID int    // the server's process id, for RSS and CPU; 0 means not measured
	// Nodes are more servers of the same cluster: subscriber i connects to
	// [URL, Nodes...][i mod (1+len(Nodes))]; messages are published to URL. NodePIDs are their
	// process ids: RSS and CPU are summed over every node.
	Nodes     []string
	NodePIDs  []int
	Transport string // sse, ws, ws-deflate, poll or mixed; "" means sse
	Compress  bool   // ws and mixed: offer permessage-deflate (ws-deflate)
	Payload   string // text (default: ~seq~ and padding) or json (a realistic JSON event)

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
	SlowRate    float64       // messages/s to bench/slow, which only the slow subscribers also listen on
	SlowSize    int           // bytes of data per bench/slow message; 0 means Size
	Sources     int           // loopback source addresses to spread sockets over; 0 means 4
	Dialers     int           // parallel connects; 0 means 64
	Settle      time.Duration // wait before the idle memory sample; 0 means 2s

	Progress io.Writer // one line a second while running; nil means none
}

func (c *Config) defaults() {
	if c.Transport == "" {
		c.Transport = "sse"
	}
	if c.Payload == "" {
		c.Payload = "text"
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
	Payload   string  `json:"payload"`
	Seconds   float64 `json:"seconds"`
	// The machine's 1-minute load average when the run started and ended (this bench and its
	// server included): on a shared machine, the context every figure needs.
	LoadStart float64 `json:"load_start,omitempty"`
	LoadEnd   float64 `json:"load_end,omitempty"`

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
	Dropped         int64   `json:"dropped_subscribers"`     // connections that ended before the run did
	DropError       string  `json:"drop_error,omitempty"`    // the first of their errors
	Refused         int64   `json:"refused_polls,omitempty"` // long polls answered 503 and retried
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

	// Bytes read by the subscribers from the start of publishing to the end of the drain,
	// at the TCP level: what the server put on the wire (framing and compression included).
	WireBytes        int64   `json:"wire_bytes,omitempty"`
	BytesPerDelivery float64 `json:"wire_bytes_per_delivery,omitempty"`

	// ByTransport splits deliveries and latency by transport when subscribers were mixed.
	ByTransport []TransportResult `json:"by_transport,omitempty"`

	// With a shared topic (Config.Shared): latency of its deliveries and of the others apart.
	SharedP50 float64 `json:"shared_latency_p50_ms,omitempty"`
	SharedP99 float64 `json:"shared_latency_p99_ms,omitempty"`
	OwnP50    float64 `json:"own_topic_latency_p50_ms,omitempty"`
	OwnP99    float64 `json:"own_topic_latency_p99_ms,omitempty"`

	ChurnPerSec float64 `json:"connects_per_sec,omitempty"`
}

// TransportResult is the share of one transport in a mixed run.
type TransportResult struct {
	Transport        string  `json:"transport"`
	N                int     `json:"subscribers"`
	Delivered        int64   `json:"deliveries"`
	Lost             int64   `json:"lost"`
	P50              float64 `json:"latency_p50_ms"`
	P99              float64 `json:"latency_p99_ms"`
	BytesPerDelivery float64 `json:"wire_bytes_per_delivery"`
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
	tr, err := transportFor(&cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Payload != "text" && cfg.Payload != "json" {
		return nil, fmt.Errorf("bench: unknown payload %q (text or json)", cfg.Payload)
	}
	name := cfg.Transport
	if cfg.Compress && name == "ws" {
		name = "ws-deflate"
	}
	r := &Result{Target: cfg.URL, Mode: cfg.Mode, Transport: name, N: cfg.N, Topics: cfg.Topics,
		Rate: cfg.Rate, Size: cfg.Size, Payload: cfg.Payload}
	r.LoadStart = loadAvg()
	defer func() { r.LoadEnd = loadAvg() }()
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

// transportFor resolves cfg.Transport, applying cfg.Compress to its WebSocket subscribers.
func transportFor(cfg *Config) (Transport, error) {
	tr, ok := Transports[cfg.Transport]
	if !ok {
		return nil, fmt.Errorf("bench: unknown transport %q (sse, ws, ws-deflate, poll or mixed)", cfg.Transport)
	}
	if !cfg.Compress {
		return tr, nil
	}
	switch t := tr.(type) {
	case WS:
		return WS{Compress: true}, nil
	case Mixed:
		m := make(Mixed, len(t))
		for i, k := range t {
			if _, ok := k.(WS); ok {
				k = WS{Compress: true}
			}
			m[i] = k
		}
		return m, nil
	}
	return nil, fmt.Errorf("bench: --ws-compress needs a WebSocket transport (ws or mixed), not %q", cfg.Transport)
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
	wire   *countingConn
	wire0  int64    // wire.n when publishing started
	kind   int      // index into kinds(transport)
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
	shared   histogram // with a shared topic (Config.Shared): its deliveries
	own      histogram // and those of each subscriber's own topic
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
	if i == slowTopic {
		return "bench/slow"
	}
	if i < 0 {
		return "bench/shared"
	}
	return "bench/" + strconv.Itoa(i)
}

// sharedTopic is the index of the shared topic in sequence bookkeeping.
const sharedTopic = -1

// slowTopic is the index of the topic only slow subscribers listen on (Config.SlowRate): it
// fills their sockets without loading the readers.
const slowTopic = -3

func runFanout(ctx context.Context, cfg *Config, base *url.URL, tr Transport, r *Result) error {
	p := proc{append([]int{cfg.PID}, cfg.NodePIDs...)}
	if cfg.PID > 0 {
		r.RSSBase, _ = p.rss()
	}
	subs := make([]*subscriber, cfg.N)
	trs := kinds(tr)
	sh := make([][shards]shard, len(trs))
	slowEvery := 0
	if cfg.Slow > 0 {
		slowEvery = int(1 / cfg.Slow)
	}
	for i := range subs {
		k := i % len(trs)
		s := &subscriber{topics: [2]int{i % cfg.Topics, -2}, kind: k, shard: &sh[k][(i/len(trs))%shards]}
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
				if s.slow && cfg.SlowRate > 0 {
					topics = append(topics, topicName(slowTopic))
				}
				c, wire, err := open(ctx, cfg, base, trs[s.kind], i, topics)
				if err != nil {
					connErrs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				s.conn, s.wire = c, wire
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
	// A connection that ends before the bench closes it is dropped: counted, first error kept.
	var closing atomic.Bool
	var dropped atomic.Int64
	var dropErr atomic.Value
	windowEnd.Store(1 << 62)
	var readers sync.WaitGroup
	for _, s := range subs {
		s.wire0 = s.wire.n
		if s.slow {
			continue
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := s.read(&windowEnd); err != nil && !closing.Load() {
				dropped.Add(1)
				dropErr.CompareAndSwap(nil, err)
			}
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
		for k := range sh {
			for i := range sh[k] {
				sh[k][i].mu.Lock()
				t += sh[k][i].total
				sh[k][i].mu.Unlock()
			}
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
	// Drain: wait until everything arrived, or nothing arrived for 2s (at most 15s). A refused
	// long poll retries after up to 1.5s, having waited a second for admission: give it 5s.
	deadline := time.Now().Add(15 * time.Second)
	quiet, quietFor := time.Now(), 2*time.Second
	for _, k := range trs {
		if _, ok := k.(Poll); ok {
			quietFor = 5 * time.Second
		}
	}
	for prev := int64(-1); time.Now().Before(deadline) && time.Since(quiet) < quietFor; {
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
	closing.Store(true)
	for _, s := range subs {
		if s.conn != nil {
			s.conn.Close()
		}
	}
	readers.Wait()
	r.Dropped = dropped.Load()
	for _, s := range subs {
		if rc, ok := s.conn.(interface{ refusals() int64 }); ok {
			r.Refused += rc.refusals()
		}
	}
	if err, ok := dropErr.Load().(error); ok {
		r.DropError = err.Error()
	}

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var hist, shared, own histogram
	var inWindow int64
	per := make([]TransportResult, len(trs))
	perHist := make([]histogram, len(trs))
	perWire := make([]int64, len(trs))
	for k := range sh {
		for i := range sh[k] {
			hist.merge(&sh[k][i].hist)
			shared.merge(&sh[k][i].shared)
			own.merge(&sh[k][i].own)
			perHist[k].merge(&sh[k][i].hist)
			inWindow += sh[k][i].inWindow
			r.Duplicates += sh[k][i].dups
		}
	}
	for _, s := range subs {
		r.Delivered += s.unique
		per[s.kind].N++
		per[s.kind].Delivered += s.unique
		if !s.slow {
			per[s.kind].Lost += counts[s.topics[0]]
			if s.topics[1] == sharedTopic {
				per[s.kind].Lost += counts[sharedTopic]
			}
		}
		w := s.wire.n - s.wire0
		r.WireBytes += w
		perWire[s.kind] += w
	}
	r.Lost = r.Expected - r.Delivered
	if r.Delivered > 0 {
		r.BytesPerDelivery = float64(r.WireBytes) / float64(r.Delivered)
	}
	if len(trs) > 1 {
		for k := range per {
			per[k].Transport = trs[k].Name()
			per[k].Lost -= per[k].Delivered
			per[k].P50, per[k].P99 = ms(perHist[k].quantile(.5)), ms(perHist[k].quantile(.99))
			if per[k].Delivered > 0 {
				per[k].BytesPerDelivery = float64(perWire[k]) / float64(per[k].Delivered)
			}
		}
		r.ByTransport = per
	}
	r.Requested = float64(r.Expected) / cfg.Duration.Seconds()
	if cfg.Rate > 0 {
		perMsg := float64(r.Expected) / float64(max(r.Published-counts[slowTopic], 1)) // bench/slow: no reader
		r.Requested = cfg.Rate * perMsg
	}
	r.Achieved = float64(inWindow) / cfg.Duration.Seconds()
	r.P50, r.P90, r.P99, r.Max = ms(hist.quantile(.5)), ms(hist.quantile(.9)), ms(hist.quantile(.99)), ms(hist.max)
	if cfg.Shared > 0 {
		// The shared topic's messages are bursts to every subscriber, the others one delivery
		// each: their latencies differ in kind, so they are reported apart as well.
		r.SharedP50, r.SharedP99 = ms(shared.quantile(.5)), ms(shared.quantile(.99))
		r.OwnP50, r.OwnP99 = ms(own.quantile(.5)), ms(own.quantile(.99))
	}
	if r.Delivered > 0 && r.CPUSeconds > 0 {
		r.CPUPerMillion = r.CPUSeconds / float64(r.Delivered) * 1e6
	}
	return nil
}

// open dials from the i-th source address and subscribes with tr. The returned countingConn
// counts the bytes the subscriber reads.
func open(ctx context.Context, cfg *Config, base *url.URL, tr Transport, i int, topics []string) (Conn, *countingConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if k := i % (1 + len(cfg.Nodes)); k > 0 {
		node, err := url.Parse(cfg.Nodes[k-1])
		if err != nil {
			return nil, nil, err
		}
		base = node
	}
	nc, err := dialer(cfg, base, i).DialContext(ctx, "tcp", hostPort(base))
	if err != nil {
		return nil, nil, err
	}
	wire := &countingConn{Conn: nc}
	c, err := tr.Open(ctx, wire, base, topics)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, wire, nil
}

func (s *subscriber) read(windowEnd *atomic.Int64) error {
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
		if s.topics[1] == sharedTopic {
			if k == 1 {
				sh.shared.add(time.Duration(at - sent))
			} else {
				sh.own.add(time.Duration(at - sent))
			}
		}
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
			return err
		}
	}
}
