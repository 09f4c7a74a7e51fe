package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/herald-push/herald/internal/soak"
)

// soakCmd runs the soak runner: a server in this process under churn and faults, reporting
// memory and goroutines over time, and checking at the end that nothing was lost.
func soakCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg soak.Config
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "how long to run")
	fs.IntVar(&cfg.Clients, "clients", 50, "subscribers connected at any time")
	fs.IntVar(&cfg.Publishers, "publishers", 4, "concurrent publishers")
	fs.IntVar(&cfg.Rate, "rate", 50, "publishes per second per publisher")
	fs.DurationVar(&cfg.Interval, "interval", 0, "between report lines (0: duration/12)")
	fs.DurationVar(&cfg.Churn, "churn", time.Second, "one client leaves and a new one joins this often")
	fs.StringVar(&cfg.Engine, "engine", "embedded", "message log: embedded or memory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Out = stdout
	fmt.Fprintf(stdout, "soak: %s, %d clients, %d publishers at %d/s, faults every 20ms, churn every %s\n",
		cfg.Duration, cfg.Clients, cfg.Publishers, cfg.Rate, cfg.Churn)
	_, err := soak.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("soak failed: %w", err)
	}
	fmt.Fprintln(stdout, "soak passed: every acknowledged message reached every subscriber, once and in order")
	return nil
}
