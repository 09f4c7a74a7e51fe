package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// publisher sends bench messages with POST /publish, a JSON array per request.
type publisher struct {
	cfg    *Config
	url    string
	client *http.Client
	sent   atomic.Int64
	errors atomic.Int64
}

func newPublisher(cfg *Config, base *url.URL) *publisher {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: cfg.Concurrency + 1,
	}
	return &publisher{cfg: cfg, url: base.JoinPath("publish").String(),
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// post publishes one request; topics[i] is the topic index of message i and seqs[i] its
// sequence number in that topic.
func (p *publisher) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Key)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: POST /publish: %s", resp.Status)
	}
	return nil
}

// appendMessage appends one JSON message object to a batch body.
func appendMessage(b []byte, cfg *Config, topic int, seq, sent int64) []byte {
	b = append(b, `{"topic":"`...)
	b = append(b, topicName(topic)...)
	b = append(b, `","data":"`...)
	size := cfg.Size
	if topic == slowTopic && cfg.SlowSize > 0 {
		size = cfg.SlowSize
	}
	if cfg.Payload == "json" {
		b = appendJSONPayload(b, topic, seq, sent, size)
	} else {
		b = appendPayload(b, topic, seq, sent, size)
	}
	return append(b, `"}`...)
}

// rateLoop publishes at cfg.Rate messages/s (every Tick, what is due), or back to back when
// Rate is 0, from one goroutine so that each topic's sequence reaches the server in order. It
// records per topic how many messages were accepted. Shared-topic messages go at cfg.Shared/s,
// slow-topic messages at cfg.SlowRate/s, on top of Rate.
func (p *publisher) rateLoop(ctx context.Context, counts map[int]int64) error {
	cfg := p.cfg
	seqs := make(map[int]int64)
	start := time.Now()
	var due float64
	var sentShared, sentSlow int // extra messages sent, not counted against Rate
	var body []byte
	topic := rand.IntN(cfg.Topics)
	tick := time.NewTicker(cfg.Tick)
	defer tick.Stop()
	for ctx.Err() == nil {
		elapsed := time.Since(start).Seconds()
		n := cfg.Batch
		if cfg.Rate > 0 {
			due = cfg.Rate*elapsed - float64(p.sent.Load()-int64(sentShared+sentSlow))
			n = max(int(due), 0)
		}
		shared, slow := 0, 0
		if cfg.Shared > 0 {
			shared = max(int(cfg.Shared*elapsed)-sentShared, 0)
		}
		if cfg.SlowRate > 0 {
			slow = max(int(cfg.SlowRate*elapsed)-sentSlow, 0)
		}
		for n+shared+slow > 0 && ctx.Err() == nil {
			k := min(n, cfg.Batch)
			ks := min(shared, cfg.Batch-k)
			kl := min(slow, cfg.Batch-k-ks)
			if k+ks+kl == 0 {
				break
			}
			now := time.Now().UnixNano()
			body = append(body[:0], '[')
			var batch []int
			for i := 0; i < k+ks+kl; i++ {
				t := topic
				switch {
				case i >= k+ks:
					t = slowTopic
				case i >= k:
					t = sharedTopic
				default:
					topic = (topic + 1) % cfg.Topics
				}
				seqs[t]++
				if i > 0 {
					body = append(body, ',')
				}
				body = appendMessage(body, cfg, t, seqs[t], now)
				batch = append(batch, t)
			}
			body = append(body, ']')
			// A request once sent is not cancelled at the deadline: whether it was accepted
			// must be known for the loss count.
			if err := p.post(context.WithoutCancel(ctx), body); err != nil {
				p.errors.Add(1)
				return err
			}
			for _, t := range batch {
				counts[t]++
			}
			p.sent.Add(int64(k + ks + kl))
			sentShared += ks
			sentSlow += kl
			n -= k
			shared -= ks
			slow -= kl
			if cfg.Rate > 0 && n < cfg.Batch && shared+slow < cfg.Batch {
				break // what is left is due at the next tick
			}
		}
		if cfg.Rate > 0 || cfg.Shared > 0 || cfg.SlowRate > 0 {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}
	return ctx.Err()
}

// runPublish measures the publish API alone: Concurrency clients send batches of Batch
// messages (Batch 1: one JSON object per request) over keep-alive connections for Duration.
func runPublish(ctx context.Context, cfg *Config, base *url.URL, r *Result) error {
	p := newPublisher(cfg, base)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	proc := proc{append([]int{cfg.PID}, cfg.NodePIDs...)}
	cpu0, _ := proc.cpu()
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			var seq int64
			for ctx.Err() == nil {
				now := time.Now().UnixNano()
				body = body[:0]
				if cfg.Batch > 1 {
					body = append(body, '[')
				}
				for i := range cfg.Batch {
					seq++
					if i > 0 {
						body = append(body, ',')
					}
					body = appendMessage(body, cfg, w%cfg.Topics, seq, now)
				}
				if cfg.Batch > 1 {
					body = append(body, ']')
				}
				if err := p.post(ctx, body); err != nil {
					if ctx.Err() == nil {
						p.errors.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					continue
				}
				p.sent.Add(int64(cfg.Batch))
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.Published = p.sent.Load()
	r.PublishErrors = p.errors.Load()
	r.PublishedPerSec = float64(r.Published) / r.Seconds
	if cfg.PID > 0 {
		cpu1, _ := proc.cpu()
		r.CPUSeconds = (cpu1 - cpu0).Seconds()
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("bench: %d publish errors, first: %w", r.PublishErrors, err)
	}
	return nil
}

// runChurn opens and closes subscriptions at Rate connects/s (0: as fast as possible) from
// Concurrency clients for Duration, counting failures.
func runChurn(ctx context.Context, cfg *Config, base *url.URL, tr Transport, r *Result) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var ok, failed, next atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				if cfg.Rate > 0 {
					at := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(at)):
					}
				}
				// Connects started before the end are allowed to finish.
				c, _, err := open(context.WithoutCancel(ctx), cfg, base, kinds(tr)[int(i)%len(kinds(tr))], int(i), []string{topicName(int(i) % cfg.Topics)})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.Close()
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.ConnectErrors = failed.Load()
	r.ChurnPerSec = float64(ok.Load()) / r.Seconds
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("bench: %d of %d connects failed, first: %w", failed.Load(), ok.Load()+failed.Load(), err)
	}
	return nil
}
