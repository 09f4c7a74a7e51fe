package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenario is one line of the matrix: a configuration and the target it checks, run against
// each of its columns in turn.
type Scenario struct {
	Name    string
	Target  string // the target, in words
	Config  Config
	Columns []Column // nil means herald and naive with Config as it is
	Note    string   // what the comparison is, when it is not herald vs naive
}

// Column is one run of a scenario: which server, and how its config differs.
type Column struct {
	Name   string
	Naive  bool          // the naive baseline (SSE only); otherwise herald
	Adjust func(*Config) // nil: the scenario's Config
}

var heraldVsNaive = []Column{{Name: "herald"}, {Name: "naive", Naive: true}}

// vsHeraldSSE compares a herald transport with herald's SSE in the same run: the naive
// baseline only speaks SSE, so it has no equivalent.
func vsHeraldSSE(transport string) []Column {
	return []Column{{Name: "herald " + transport}, {Name: "herald sse", Adjust: func(c *Config) {
		c.Transport, c.Compress = "sse", false
	}}}
}

// Matrix returns the scenarios of `make bench`. quick shrinks them to a smoke test.
func Matrix(quick bool) []Scenario {
	n, big, d := 10000, 15000, 10*time.Second
	if quick {
		n, big, d = 500, 1000, 2*time.Second
	}
	return []Scenario{
		{Name: "idle", Target: "idle SSE at N=15,000: at most 8 KiB server RSS per connection (aim 4)",
			Config: Config{N: big, Rate: 1, Duration: 3 * time.Second}},
		{Name: "low-rate", Target: "10,000 subscribers, 10 msg/s: p99 < 50 ms, at most 5 CPU-s per million deliveries",
			Config: Config{N: n, Rate: 10, Duration: d}},
		{Name: "saturation", Target: "10,000 subscribers on one topic: >= 1,000,000 deliveries/s, zero loss, p99 < 250 ms, >= 3x naive loss-free deliveries per CPU-s",
			Config: Config{N: n, Rate: 100, Duration: d, Tick: 50 * time.Millisecond}},
		{Name: "saturation-2x", Target: "as above, at twice the rate: where each server tops out",
			Config: Config{N: n, Rate: 200, Duration: d, Tick: 50 * time.Millisecond}},
		{Name: "saturation-half", Target: "proposed for this machine with the client on the same 2 cores (notes below): p99 < 250 ms at 500,000 deliveries/s, zero loss",
			Config: Config{N: n, Rate: 50, Duration: d, Tick: 50 * time.Millisecond}},
		{Name: "many-topics", Target: "10,000 subscribers each on its own topic plus a shared one, 10,000 publishes/s: p99 < 50 ms",
			Config: Config{N: n, Topics: n, Shared: 1, Rate: 10000, Duration: d, Batch: 1000}},
		{Name: "slow-consumers", Target: "low-rate with 10% of subscribers not reading: others' p99 within 1.5x of the run without them; memory bounded",
			Config:  Config{N: n, Rate: 10, Duration: d, Slow: 0.1, SlowRate: 200, SlowSize: 4096},
			Columns: slowColumns, Note: slowNote},
		{Name: "publish-batch", Target: "at least 50,000 messages/s accepted with batch publishing",
			Config: Config{Mode: "publish", Batch: 100, Concurrency: 4, Duration: d / 2}},
		{Name: "publish-single", Target: "at least 10,000 single publishes/s over keep-alive HTTP",
			Config: Config{Mode: "publish", Batch: 1, Concurrency: 16, Duration: d / 2}},
		{Name: "churn", Target: "2,000 connects/s sustained without errors",
			Config: Config{Mode: "churn", Rate: 2000, Concurrency: 64, Duration: d / 2}},

		// WebSocket and long polling. The naive baseline has no equivalent: each runs against
		// herald's SSE with the same scenario, in the same invocation.
		{Name: "idle-ws", Target: "idle WebSocket at N=15,000: at most 16 KiB server RSS per connection",
			Config:  Config{Transport: "ws", N: big, Rate: 1, Duration: 3 * time.Second},
			Columns: vsHeraldSSE("ws"), Note: sseNote},
		{Name: "ws-fanout", Target: "saturation over WebSocket: 10,000 subscribers on one topic, 1,000,000 deliveries/s requested (the SSE saturation target)",
			Config:  Config{Transport: "ws", N: n, Rate: 100, Duration: d, Tick: 50 * time.Millisecond},
			Columns: vsHeraldSSE("ws"), Note: sseNote},
		{Name: "ws-deflate", Target: "measure what permessage-deflate costs (CPU-s per million deliveries) and saves (wire bytes per delivery): 1 KB JSON events, 2,000 WebSocket subscribers, 10 msg/s (a rate both keep up with)",
			Config:  Config{Transport: "ws", Compress: true, Payload: "json", Size: 1024, N: n / 5, Rate: 10, Duration: d},
			Columns: deflateColumns, Note: deflateNote},
		{Name: "ws-deflate-saturation", Target: "as ws-deflate at 100 msg/s (200,000 deliveries/s requested): the deliveries/s each tops out at",
			Config:  Config{Transport: "ws", Compress: true, Payload: "json", Size: 1024, N: n / 5, Rate: 100, Duration: d, Tick: 50 * time.Millisecond},
			Columns: deflateColumns, Note: deflateNote},
		{Name: "poll", Target: "long polling, 5,000 pollers looping on next, 10 msg/s: every message exactly once (no issue target for latency)",
			Config:  Config{Transport: "poll", N: n / 2, Rate: 10, Duration: d},
			Columns: vsHeraldSSE("poll"), Note: sseNote},
		{Name: "mixed", Target: "one topic, 9,000 subscribers (3,000 each of SSE, WebSocket, long poll), 10 msg/s: every message reaches all three alike (the low-rate target: p99 < 50 ms)",
			Config:  Config{Transport: "mixed", N: n * 9 / 10, Rate: 10, Duration: d},
			Columns: vsHeraldSSE("mixed"), Note: sseNote},
	}
}

const sseNote = "The naive baseline speaks only SSE: this transport is compared with herald's SSE, same scenario, same invocation."

const deflateNote = "Both columns are herald WebSocket with the same 1 KB JSON events; the first offers permessage-deflate (compressed above ws.compression_threshold, 512 bytes, by default), the second does not. Wire bytes are counted by the subscribers at the TCP level (frames, headers and compression included)."

// slowColumns: the same 9,000 (quick: 450) readers and the same publishes, with and without
// 1,000 subscribers that never read.
var slowColumns = []Column{{Name: "herald, 10% slow"}, {Name: "herald, no slow", Adjust: func(c *Config) {
	c.N -= int(float64(c.N) * c.Slow)
	c.Slow = 0
}}}

const slowNote = "Both columns are herald with the same readers (9,000 in the full matrix) on one topic at 10 msg/s and the same publishes. In the first, 10% more subscribers never read and also listen on bench/slow, which gets 200 messages/s of 4 KiB (800 KB/s each): their sockets fill within about a second, then their hub queues (limits.queue_len) overflow and the server evicts them. In the second nobody listens on bench/slow. The naive baseline has no eviction and is not run."

var deflateColumns = []Column{{Name: "herald ws-deflate"}, {Name: "herald ws", Adjust: func(c *Config) { c.Compress = false }}}

// MatrixConfig configures RunMatrix.
type MatrixConfig struct {
	Exe      string // the herald binary
	Engine   string // herald's engine: memory or "" for the embedded durable log
	Key      string
	Doc      string // Markdown report; "" means none
	JSON     string // JSON results; "" means none
	Quick    bool
	Only     []string // scenario names to run; empty means all
	Out      io.Writer
	Progress io.Writer
}

// MatrixRow is one scenario's results, one per column.
type MatrixRow struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Note     string    `json:"note,omitempty"`
	Columns  []string  `json:"columns"`
	Results  []*Result `json:"results"`
	Err      string    `json:"error,omitempty"`
}

// RunMatrix runs every scenario against a fresh herald and a fresh naive baseline, one after
// the other, and reports them side by side.
func RunMatrix(ctx context.Context, mc MatrixConfig) error {
	var rows []MatrixRow
	for _, sc := range Matrix(mc.Quick) {
		if len(mc.Only) > 0 && !slices.Contains(mc.Only, sc.Name) {
			continue
		}
		row := MatrixRow{Scenario: sc.Name, Target: sc.Target, Note: sc.Note}
		cols := sc.Columns
		if cols == nil {
			cols = heraldVsNaive
		}
		for _, col := range cols {
			var srv *Server
			var err error
			if col.Naive {
				srv, err = Spawn(ctx, mc.Exe, []string{"bench", "naive"}, mc.Progress)
			} else {
				srv, err = SpawnHerald(ctx, mc.Exe, mc.Engine, mc.Key, mc.Progress)
			}
			if err != nil {
				return err
			}
			cfg := sc.Config
			if col.Adjust != nil {
				col.Adjust(&cfg)
			}
			cfg.URL, cfg.PID, cfg.Key, cfg.Progress = srv.URL, srv.PID, mc.Key, mc.Progress
			fmt.Fprintf(mc.Progress, "== %s: %s\n", sc.Name, col.Name)
			r, err := Run(ctx, cfg)
			srv.Stop()
			if err != nil {
				row.Err += fmt.Sprintf("%s: %v. ", col.Name, err)
			}
			row.Columns, row.Results = append(row.Columns, col.Name), append(row.Results, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		fmt.Fprintf(mc.Out, "\n== %s: %s\n", sc.Name, sc.Target)
		WriteTable(mc.Out, row.Columns, row.Results)
		if row.Err != "" {
			fmt.Fprintf(mc.Out, "errors: %s\n", row.Err)
		}
		rows = append(rows, row)
	}
	if mc.JSON != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(mc.JSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if mc.Doc != "" {
		var b bytes.Buffer
		writeReport(&b, mc, rows)
		// Hand-written analysis below the marker survives regeneration.
		if old, err := os.ReadFile(mc.Doc); err == nil {
			if i := bytes.Index(old, []byte(notesMarker)); i >= 0 {
				b.Write(old[i:])
			}
		}
		return os.WriteFile(mc.Doc, b.Bytes(), 0o644)
	}
	return nil
}

// notesMarker starts the hand-written part of the report, kept when it is regenerated.
const notesMarker = "<!-- notes: everything below is written by hand and kept by make bench -->"

func writeReport(w io.Writer, mc MatrixConfig, rows []MatrixRow) {
	engine := mc.Engine
	if engine == "" {
		engine = "embedded JetStream (durable)"
	}
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Generated by `make bench` (`herald bench --matrix --doc docs/benchmarks.md`); do not edit by hand.\n")
	fmt.Fprintf(w, "Every scenario runs against a freshly started herald and a freshly started naive baseline\n")
	fmt.Fprintf(w, "(`herald bench naive`: goroutine and channel per client, one mutex-protected map, JSON encoded per\n")
	fmt.Fprintf(w, "client, drops when a client's channel is full) in the same invocation, one after the other.\n")
	fmt.Fprintf(w, "The naive baseline speaks only SSE: WebSocket and long-poll scenarios compare herald's transport\n")
	fmt.Fprintf(w, "with herald's SSE instead (and ws-deflate with herald's uncompressed WebSocket), as each says.\n\n")
	fmt.Fprintf(w, "- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- commit: %s\n", gitDescribe())
	fmt.Fprintf(w, "- machine: %s, %d CPUs, %s, %s\n", cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version())
	fmt.Fprintf(w, "- herald engine: %s\n", engine)
	fmt.Fprintf(w, "- client: the bench runs in its own process on the same machine (one fd per subscriber; the\n")
	fmt.Fprintf(w, "  server is a separate process with its own 20,000-fd limit), sockets spread over 127.0.0.1-4.\n")
	fmt.Fprintf(w, "  Client and server share the 2 cores: achieved rates are a floor for the server alone.\n")
	fmt.Fprintf(w, "- RSS per connection: (RSS after connecting and 2 s settling - RSS before connecting) / N; under\n")
	fmt.Fprintf(w, "  load: highest 1 s sample while publishing. CPU: utime+stime of the server from /proc.\n")
	if mc.Quick {
		fmt.Fprintf(w, "- **quick mode**: scenarios shrunk to a smoke test; these figures are not the targets' sizes.\n")
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "## %s\n\nTarget: %s.\n\n", row.Scenario, row.Target)
		if row.Note != "" {
			fmt.Fprintf(w, "%s\n\n", row.Note)
		}
		if len(row.Results) > 0 && !slices.Contains(row.Results, nil) {
			writeMarkdownTable(w, row.Columns, row.Results)
			if len(row.Results) == 2 {
				writeRatios(w, row.Columns, row.Results[0], row.Results[1])
			}
		}
		if row.Err != "" {
			fmt.Fprintf(w, "\nErrors: %s\n", row.Err)
		}
		fmt.Fprintln(w)
	}
}

// writeRatios compares the first column (h) with the second (n, the baseline).
func writeRatios(w io.Writer, names []string, h, n *Result) {
	var parts []string
	ratio := func(label string, a, b float64) {
		if a > 0 && b > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2fx", label, a/b))
		}
	}
	switch h.Mode {
	case "fanout":
		ratio("loss-free deliveries/s", h.LossFreeRate(), n.LossFreeRate())
		if h.CPUSeconds > 0 && n.CPUSeconds > 0 {
			ratio("loss-free deliveries per CPU-s", h.LossFreeRate()/h.CPUSeconds, n.LossFreeRate()/n.CPUSeconds)
		}
		ratio("baseline/this RSS per idle conn", n.IdlePerConn, h.IdlePerConn)
		ratio("baseline/this p99", n.P99, h.P99)
		ratio("baseline/this wire bytes per delivery", n.BytesPerDelivery, h.BytesPerDelivery)
		if h.CPUPerMillion > 0 && n.CPUPerMillion > 0 {
			ratio("this/baseline CPU-s per million deliveries", h.CPUPerMillion, n.CPUPerMillion)
		}
	case "publish":
		ratio("accepted msgs/s", h.PublishedPerSec, n.PublishedPerSec)
	case "churn":
		ratio("connects/s", h.ChurnPerSec, n.ChurnPerSec)
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "\n%s vs %s (the baseline): %s (a ratio is omitted when one side lost messages or has no figure).\n",
			names[0], names[1], strings.Join(parts, ", "))
	}
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			return strings.TrimSpace(v) + " RAM"
		}
	}
	return ""
}
