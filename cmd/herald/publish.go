package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/herald-push/herald/client"
)

func publish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", stderr)
	url := fs.String("url", "http://localhost:8080", "server URL")
	key := fs.String("key", "", "publisher key (default: the one in --data-dir)")
	dataDir := fs.String("data-dir", "herald-data", "data directory of a local server, to find its publisher key")
	event := fs.String("event", "", "event type")
	retain := fs.Bool("retain", false, "make this the topic's retained (current) value")
	idem := fs.String("idempotency-key", "", "a retry with the same key is not delivered twice")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: herald publish TOPIC DATA [flags]   (DATA - reads standard input)")
		fs.PrintDefaults()
	}
	// Flags may come before or after the two positional arguments.
	var pos []string
	for len(args) > 0 {
		if err := parse(fs, args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if len(pos) != 2 {
		fs.Usage()
		return fmt.Errorf("publish needs TOPIC and DATA")
	}
	data := pos[1]
	if data == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		data = string(b)
	}
	if *key == "" {
		b, err := os.ReadFile(filepath.Join(*dataDir, keyFile))
		if err != nil {
			return fmt.Errorf("no --key or HERALD_KEY given and none found in %s: %w", *dataDir, err)
		}
		*key = strings.TrimSpace(string(b))
	}
	c := client.New(*url, client.Options{Key: *key})
	id, err := c.Publish(ctx, client.Message{Topic: pos[0], Data: data, Event: *event, Retain: *retain, IdempotencyKey: *idem})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}
