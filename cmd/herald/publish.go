package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
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
	body, _ := json.Marshal(map[string]any{"topic": pos[0], "data": data, "event": *event, "retain": *retain, "idempotencyKey": *idem})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*url, "/")+"/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+*key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(out))
	}
	var r struct{ ID string }
	json.Unmarshal(out, &r)
	fmt.Fprintln(stdout, r.ID)
	return nil
}
