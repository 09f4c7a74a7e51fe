// Package soak runs Herald for a long time under churn and faults and reports its memory and
// goroutines over time: `herald soak --duration 5m`. It starts a real server in this process
// (hub, HTTP handlers, the embedded JetStream store in a temporary directory), subscribers on
// SSE, WebSocket and long polling that reconnect through a fault proxy that resets connections mid-frame, publishers, and
// clients that leave and join; at the end the faults oracle checks that every subscriber got
// every acknowledged message once and in order, and that no subscription or goroutine is left.
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/internal/engine/jetstream"
	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/faults"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
)

// Config sets the size of a soak run. Zero values mean the documented default.
type Config struct {
	Duration   time.Duration // 0 means 1 minute
	Clients    int           // subscribers at any time; 0 means 50
	Publishers int           // 0 means 4
	Rate       int           // publishes per second per publisher; 0 means 50
	Interval   time.Duration // between report lines; 0 means Duration/12, at least 1s
	Churn      time.Duration // one client leaves and a new one joins this often; 0 means 1s
	Engine     string        // "embedded" (default) or "memory"
	Out        io.Writer     // report lines; nil means io.Discard
}

// Sample is one report line.
type Sample struct {
	Elapsed     time.Duration
	RSS         int64
	HeapInuse   uint64
	Goroutines  int
	Subscribers int64
	Acked       int
	Deliveries  int
	Resumes     int
	Faults      int64
}

func (s Sample) String() string {
	return fmt.Sprintf("t=%-6s rss=%4dMiB heap=%4dMiB goroutines=%-5d subscribers=%-4d acked=%-7d delivered=%-9d resumes=%-6d faults=%d",
		s.Elapsed.Round(time.Second), s.RSS>>20, s.HeapInuse>>20, s.Goroutines, s.Subscribers, s.Acked, s.Deliveries, s.Resumes, s.Faults)
}

// Result is the outcome of a run.
type Result struct {
	Samples []Sample
	Report  faults.Report
	// GoroutinesBefore and GoroutinesAfter are counted before the server started and after
	// everything stopped: a leak shows as a difference.
	GoroutinesBefore, GoroutinesAfter int
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = time.Minute
	}
	if c.Clients <= 0 {
		c.Clients = 50
	}
	if c.Publishers <= 0 {
		c.Publishers = 4
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Interval <= 0 {
		c.Interval = max(c.Duration/12, time.Second)
	}
	if c.Churn <= 0 {
		c.Churn = time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Run soaks a server for cfg.Duration (or until ctx ends) and returns the samples and the
// oracle's verdict. The error is non-nil when the promise was broken or something leaked.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	var res Result
	res.GoroutinesBefore = runtime.NumGoroutine()
	env, err := startServer(cfg)
	if err != nil {
		return res, err
	}
	defer env.close()
	proxy, err := faults.NewProxy(env.addr)
	if err != nil {
		return res, err
	}
	defer proxy.Close()
	base, direct := "http://"+proxy.Addr(), "http://"+env.addr

	o := faults.NewOracle()
	marker := &faults.Publisher{Name: "start", Topic: "start", Base: direct, Key: env.key, Oracle: o}
	if code, err := marker.Publish(ctx); code != 200 {
		return res, fmt.Errorf("soak: first publish: %d %v", code, err)
	}
	start := marker.LastID
	_, from, _ := hub.ParseID(start)
	topics := []string{"soak/a", "soak/b", "soak/c", "soak/d"}

	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	defer stopRun()
	clientsCtx, stopClients := context.WithCancel(context.Background())
	var clients sync.WaitGroup
	type running struct {
		c      faults.Client
		s      *faults.Subscriber
		cancel context.CancelFunc
	}
	var mu sync.Mutex
	var live []running
	joined := 0
	join := func() {
		mine := []string{topics[joined%len(topics)], topics[(joined+1)%len(topics)]}
		var c faults.Client
		var s *faults.Subscriber
		switch joined % 3 { // a third each on SSE, WebSocket and long polling
		case 0:
			s = o.Subscriber(fmt.Sprintf("sse%d", joined), mine, from)
			c = faults.NewSSEClient(base, mine, s, start)
		case 1:
			s = o.Subscriber(fmt.Sprintf("ws%d", joined), mine, from)
			c = faults.NewWSClient(base, mine, s, start)
		default:
			s = o.Subscriber(fmt.Sprintf("poll%d", joined), mine, from)
			c = faults.NewPollClient(base, mine, s, start)
		}
		joined++
		cctx, cancel := context.WithCancel(clientsCtx)
		clients.Add(1)
		go func() { defer clients.Done(); c.Run(cctx) }()
		mu.Lock()
		live = append(live, running{c, s, cancel})
		mu.Unlock()
	}
	for range cfg.Clients {
		join()
	}

	// Publishers, paced at cfg.Rate each.
	var pubs sync.WaitGroup
	for i := range cfg.Publishers {
		p := &faults.Publisher{Name: fmt.Sprintf("p%d", i), Topic: topics[i%len(topics)], Base: direct, Key: env.key, Oracle: o}
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			tick := time.NewTicker(time.Second / time.Duration(cfg.Rate))
			defer tick.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
					p.Publish(context.Background())
				}
			}
		}()
	}

	// Faults and churn until the time is up, with a report line every interval.
	began := time.Now()
	var faultsRun atomic.Int64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	faultTick := time.NewTicker(20 * time.Millisecond)
	churnTick := time.NewTicker(cfg.Churn)
	reportTick := time.NewTicker(cfg.Interval)
	defer faultTick.Stop()
	defer churnTick.Stop()
	defer reportTick.Stop()
	sample := func() {
		r := o.Check() // cheap enough at report intervals; problems are reported at the end
		s := Sample{Elapsed: time.Since(began), Goroutines: runtime.NumGoroutine(), Subscribers: env.hub.Subscribers(),
			Acked: r.Acked, Deliveries: r.Deliveries, Resumes: r.Resumes, Faults: faultsRun.Load()}
		s.RSS, _ = faults.RSS(os.Getpid())
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapInuse = ms.HeapInuse
		res.Samples = append(res.Samples, s)
		fmt.Fprintln(cfg.Out, s)
	}
	sample()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-faultTick.C:
			switch rng.IntN(20) {
			case 0:
				proxy.ResetAll()
			case 1, 2, 3, 4:
				mu.Lock()
				live[rng.IntN(len(live))].c.Drop()
				mu.Unlock()
			default:
				proxy.ResetMidStream(rng.IntN, rng.Int64N(2000))
			}
			faultsRun.Add(1)
		case <-churnTick.C:
			mu.Lock()
			i := rng.IntN(len(live))
			gone := live[i]
			live = append(live[:i], live[i+1:]...)
			mu.Unlock()
			gone.cancel()
			gone.s.Leave()
			join()
		case <-reportTick.C:
			sample()
		}
	}
	pubs.Wait()

	// Let every remaining client catch up (faults have stopped), then check.
	mu.Lock()
	var remaining []*faults.Subscriber
	for _, r := range live {
		remaining = append(remaining, r.s)
	}
	mu.Unlock()
	o.WaitCaughtUp(remaining, 60*time.Second)
	sample()
	stopClients()
	clients.Wait()
	res.Report = o.Check()
	fmt.Fprintln(cfg.Out, "oracle:", res.Report)

	var errs []error
	for _, p := range res.Report.Problems {
		errs = append(errs, errors.New(p))
	}
	for _, g := range res.Report.Gaps {
		errs = append(errs, fmt.Errorf("unexpected gap notice: %s", g))
	}
	if n := waitZero(env.hub); n != 0 {
		errs = append(errs, fmt.Errorf("%d subscriptions left after every client went away", n))
	}
	proxy.Close()
	env.close()
	res.GoroutinesAfter = settle(res.GoroutinesBefore)
	fmt.Fprintf(cfg.Out, "goroutines: %d before, %d after\n", res.GoroutinesBefore, res.GoroutinesAfter)
	if res.GoroutinesAfter > res.GoroutinesBefore+5 {
		errs = append(errs, fmt.Errorf("goroutines: %d before the run, %d after it: a leak", res.GoroutinesBefore, res.GoroutinesAfter))
	}
	return res, errors.Join(errs...)
}

func waitZero(h *hub.Hub) int64 {
	deadline := time.Now().Add(10 * time.Second)
	for h.Subscribers() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return h.Subscribers()
}

// settle waits a little for goroutines to end and returns their number.
func settle(target int) int {
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > target && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}

// env is the server under soak.
type env struct {
	addr, key string
	hub       *hub.Hub
	close     func()
}

const soakKey = "soak-publisher-key"

func startServer(cfg Config) (*env, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var log hub.Log
	closeLog := func() {}
	dir := ""
	switch cfg.Engine {
	case "", "embedded":
		var err error
		if dir, err = os.MkdirTemp("", "herald-soak"); err != nil {
			return nil, err
		}
		l, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: dir, Logger: quiet})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		log, closeLog = l, func() { l.Close(); os.RemoveAll(dir) }
	case "memory":
		log = memory.New(memory.Config{})
	default:
		return nil, fmt.Errorf("soak: engine %q: use embedded or memory", cfg.Engine)
	}
	h := hub.New(hub.Config{Log: log, Logger: quiet})
	srv := server.New(server.Config{Hub: h, PublishKeys: []string{soakKey}, Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeLog()
		return nil, err
	}
	hs := &http.Server{Handler: srv, ErrorLog: slog.NewLogLogger(quiet.Handler(), slog.LevelWarn)}
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	serveDone := make(chan struct{})
	go func() { hs.Serve(ln); close(serveDone) }()
	for deadline := time.Now().Add(30 * time.Second); !h.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	var once sync.Once
	return &env{addr: ln.Addr().String(), key: soakKey, hub: h, close: func() {
		once.Do(func() {
			h.Close()
			hs.Close()
			<-serveDone
			stopHub()
			<-hubDone
			closeLog()
		})
	}}, nil
}
