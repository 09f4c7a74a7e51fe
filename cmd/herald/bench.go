package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-push/herald/internal/bench"
	"github.com/herald-push/herald/internal/bench/naive"
)

const benchKey = "herald-bench-key"

// benchCmd runs `herald bench`: one scenario against one or two targets, the scenario
// matrix (--matrix), or the naive baseline server (`herald bench naive`).
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "naive" {
		return naiveServe(ctx, args[1:], stderr)
	}
	if i := slices.IndexFunc(args, func(a string) bool { return a == "--soak" || a == "-soak" }); i >= 0 {
		return soakCmd(ctx, slices.Delete(slices.Clone(args), i, i+1), stdout, stderr) // soak.go
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c bench.Config
	targetURL := fs.String("url", "", "server to measure; empty: start `herald serve` (see --engine) and measure it")
	compare := fs.String("compare", "", "second target measured with the same scenario: a URL, or naive to start the in-repo baseline")
	comparePID := fs.Int("compare-pid", 0, "process id of the --compare server, for RSS and CPU")
	engine := fs.String("engine", "memory", "engine of the herald started by the bench: memory, or empty for the embedded durable log")
	jsonOut := fs.String("json", "", "write the results as JSON to this file")
	matrix := fs.Bool("matrix", false, "run the scenario matrix against herald and the naive baseline")
	doc := fs.String("doc", "", "with --matrix: write the Markdown report to this file")
	quick := fs.Bool("quick", false, "with --matrix: smaller and shorter scenarios (a smoke test)")
	only := fs.String("scenarios", "", "with --matrix: comma-separated scenario names to run (default: all)")
	fs.StringVar(&c.Key, "key", benchKey, "publisher key for --url")
	fs.IntVar(&c.PID, "pid", 0, "process id of the --url server, for RSS and CPU (local servers only)")
	fs.StringVar(&c.Mode, "mode", "fanout", "fanout, publish (the publish API alone) or churn (connect and disconnect)")
	fs.StringVar(&c.Transport, "transport", "sse", "subscriber transport: sse, ws, poll, or mixed (subscriber i uses sse, ws, poll by i mod 3)")
	fs.BoolVar(&c.Compress, "ws-compress", false, "WebSocket subscribers offer permessage-deflate (the server compresses messages above ws.compression_threshold)")
	fs.StringVar(&c.Payload, "payload", "text", "message data: text (a marker and padding) or json (a realistic JSON event of --size bytes)")
	fs.IntVar(&c.N, "n", 1000, "subscribers (the bench needs a file descriptor per subscriber too: at most ~19,000)")
	fs.IntVar(&c.Topics, "topics", 1, "topics: subscriber i listens on bench/<i mod topics>; messages go round-robin")
	fs.Float64Var(&c.Shared, "shared", 0, "messages/s to bench/shared, which every subscriber also listens on")
	fs.Float64Var(&c.SlowRate, "slow-rate", 0, "messages/s to bench/slow, which only the --slow subscribers also listen on (fills their sockets)")
	fs.IntVar(&c.SlowSize, "slow-size", 0, "bytes of data per bench/slow message (default: --size)")
	fs.Float64Var(&c.Rate, "rate", 10, "messages/s published (churn: connects/s); 0: as fast as accepted")
	fs.IntVar(&c.Size, "size", 64, "bytes of data per message")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to publish")
	fs.DurationVar(&c.Tick, "tick", 20*time.Millisecond, "publish what is due every tick, in one request")
	fs.IntVar(&c.Batch, "batch", 100, "messages per publish request at most")
	fs.IntVar(&c.Concurrency, "concurrency", 4, "publish and churn modes: parallel clients")
	fs.Float64Var(&c.Slow, "slow", 0, "fraction of subscribers that never read (0.1: every tenth)")
	fs.IntVar(&c.Sources, "sources", 4, "loopback source addresses (127.0.0.1..k) to spread sockets over")
	nodes := fs.String("nodes", "", "with --url: comma-separated URLs of more nodes of the same cluster; subscribers are spread over --url and these, messages go to --url")
	nodePIDs := fs.String("node-pids", "", "process ids of the --nodes servers (RSS and CPU are summed over all nodes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Progress = stderr
	c.Nodes = splitList(*nodes)
	for _, p := range splitList(*nodePIDs) {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("--node-pids: %q is not a process id", p)
		}
		c.NodePIDs = append(c.NodePIDs, pid)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if *matrix {
		return bench.RunMatrix(ctx, bench.MatrixConfig{Exe: exe, Engine: *engine, Key: benchKey,
			Doc: *doc, JSON: *jsonOut, Quick: *quick, Only: splitList(*only), Out: stdout, Progress: stderr})
	}

	type target struct {
		name, url string
		pid       int
		spawn     func() (*bench.Server, error)
	}
	var targets []target
	if *targetURL == "" {
		targets = append(targets, target{name: "herald", spawn: func() (*bench.Server, error) {
			return bench.SpawnHerald(ctx, exe, *engine, benchKey, stderr)
		}})
	} else {
		targets = append(targets, target{name: *targetURL, url: *targetURL, pid: c.PID})
	}
	switch *compare {
	case "":
	case "naive":
		targets = append(targets, target{name: "naive", spawn: func() (*bench.Server, error) {
			return bench.Spawn(ctx, exe, []string{"bench", "naive"}, stderr)
		}})
	default:
		targets = append(targets, target{name: *compare, url: *compare, pid: *comparePID})
	}

	var names []string
	var results []*bench.Result
	var errs []error
	for _, t := range targets {
		cfg := c
		cfg.URL, cfg.PID = t.url, t.pid
		if t.spawn != nil {
			srv, err := t.spawn()
			if err != nil {
				return err
			}
			cfg.URL, cfg.PID = srv.URL, srv.PID
			r, err := bench.Run(ctx, cfg)
			srv.Stop()
			names, results, errs = append(names, t.name), append(results, r), append(errs, err)
		} else {
			r, err := bench.Run(ctx, cfg)
			names, results, errs = append(names, t.name), append(results, r), append(errs, err)
		}
	}
	transport := c.Transport
	if c.Compress {
		transport += " (deflate offered)"
	}
	fmt.Fprintf(stdout, "\n%s, %s, %d subscribers, %d topics, %.0f msg/s, %d bytes of %s, %s\n",
		c.Mode, transport, c.N, c.Topics, c.Rate, c.Size, c.Payload, c.Duration)
	bench.WriteTable(stdout, names, results)
	for i, r := range results {
		if r != nil && r.DropError != "" {
			fmt.Fprintf(stdout, "%s: %d subscribers dropped early, first: %s\n", names[i], r.Dropped, r.DropError)
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// naiveServe runs the naive baseline server until ctx ends.
func naiveServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench naive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: naive.New()}
	go func() { <-ctx.Done(); hs.Close() }()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
