// Command herald is a real-time push server: backends publish events over HTTP, browsers and
// apps receive them over Server-Sent Events (and, with other transports, WebSocket and long
// polling), resuming without loss after a disconnect.
//
//	herald serve                      run the server (embedded durable log under ./herald-data)
//	herald publish TOPIC DATA         publish one message
//	herald token --sub ID ...         mint a development token
//	herald healthcheck                exit 0 when the configured server is alive
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: herald <command> [flags]

commands:
  serve     run the server
  publish   publish a message: herald publish TOPIC DATA [--event E] [--retain]
  soak      run a server under churn and faults, reporting memory and goroutines: herald soak --duration 5m
  token     mint a development token: herald token --sub 17 --subscribe 'users/17/**' --ttl 1h
  config    check FILE: validate a configuration file; example: print one with every default
  healthcheck  exit 0 if the configured server answers /healthz (--ready: /readyz)
  bench     load generator: herald bench --n 10000 --rate 100 --compare naive
  version   print the version

Run "herald <command> -h" for the flags of a command.
`

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "publish":
		return publish(ctx, args[1:], stdout, stderr)
	case "soak":
		return soakCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "token":
		return token(args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout)
	case "healthcheck":
		return healthcheck(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "herald", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
