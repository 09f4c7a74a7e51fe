package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/sse"
)

// TestMeasure compares one node with three on the same engine: deliveries/s, delivery latency
// percentiles and herald CPU per million deliveries. It is a measurement, not a check, so it
// runs only with HERALD_MEASURE=1:
//
//	HERALD_MEASURE=1 go test -run Measure -v ./internal/cluster/
//
// All processes share one machine, so three nodes compete for the same cores: the figures
// show what clustering costs per delivery, not how it scales across machines.
func TestMeasure(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") != "1" {
		t.Skip("set HERALD_MEASURE=1 to measure")
	}
	for _, eng := range []struct {
		name string
		url  func(*testing.T) string
	}{{"nats", sharedNATS}, {"redis", sharedRedis}} {
		for _, k := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%dnode", eng.name, k), func(t *testing.T) { measure(t, eng.url(t), k) })
		}
	}
}

func measure(t *testing.T, engine string, k int) {
	const subs, msgs, batch = 200, 5000, 20
	var nodes []*node
	for range k {
		nodes = append(nodes, startNode(t, engine, "127.0.0.1:0", true))
	}
	topic := "bench/" + randomName("")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var mu sync.Mutex
	lat := make([]time.Duration, 0, subs*msgs)
	var delivered atomic.Int64
	var wg sync.WaitGroup
	for i := range subs {
		n := nodes[i%k]
		req, _ := http.NewRequestWithContext(ctx, "GET", n.URL+"/events?topic="+topic, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("subscribe: %v", err)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			r := sse.NewReader(resp.Body)
			local := make([]time.Duration, 0, msgs)
			for len(local) < msgs {
				ev, err := r.Next()
				if err != nil {
					break
				}
				_, ts, _ := strings.Cut(ev.Data, ":")
				ns, _ := strconv.ParseInt(ts, 10, 64)
				local = append(local, time.Since(time.Unix(0, ns)))
				delivered.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	for _, n := range nodes {
		waitSubscribed(t, n, topic, subs)
	}

	cpu0 := cpuTime(nodes)
	start := time.Now()
	// Four publishers, on every node in turn, batches of 20 messages.
	var pwg sync.WaitGroup
	per := msgs / 4
	for p := range 4 {
		pwg.Go(func() {
			for b := 0; b < per; b += batch {
				var body bytes.Buffer
				body.WriteByte('[')
				for j := range batch {
					if j > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"topic":%q,"data":"%d:%d"}`, topic, p*per+b+j, time.Now().UnixNano())
				}
				body.WriteByte(']')
				req, _ := http.NewRequestWithContext(ctx, "POST", nodes[(p+b)%k].URL+"/publish", &body)
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("publish: %v %v", err, resp)
					return
				}
				resp.Body.Close()
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(nodes) - cpu0
	if n := delivered.Load(); n != subs*msgs {
		t.Fatalf("delivered %d, want %d", n, subs*msgs)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond) }
	total := float64(subs * msgs)
	t.Logf("| %d | %d | %d | %.0f | %v | %v | %v | %.2f |", k, subs, msgs, total/elapsed.Seconds(),
		pct(0.5), pct(0.9), pct(0.99), cpu.Seconds()/total*1e6)
}

// cpuTime sums user and system CPU of the nodes' processes, from /proc.
func cpuTime(nodes []*node) time.Duration {
	var ticks int64
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}
