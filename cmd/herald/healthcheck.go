package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/herald-push/herald/internal/config"
)

// healthcheck implements `herald healthcheck`: it asks the server configured by the same file,
// environment and flags as `herald serve` whether it is alive (/healthz) or, with --ready,
// ready for traffic (/readyz), and fails otherwise. Container images use it instead of curl.
func healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("healthcheck", stderr)
	ready := fs.Bool("ready", false, "check /readyz (serving traffic) instead of /healthz (alive)")
	url := fs.String("url", "", "URL to check instead of the one derived from addr (e.g. http://127.0.0.1:8080/healthz)")
	c, err := config.Load(args, fs, os.LookupEnv)
	if err != nil {
		return err
	}
	if *url == "" {
		*url = healthURL(c, *ready)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	// The certificate names the public host, not 127.0.0.1: this checks liveness, not identity.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: %s %s", *url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s", *url, body)
	return nil
}

// healthURL is the health endpoint of the configured listener, reached over loopback. It uses
// the admin listener when there is one: it is not behind the proxy and has no TLS.
func healthURL(c *config.Config, ready bool) string {
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	addr, scheme := c.Addr, "http"
	if c.Admin.Addr != "" {
		addr = c.Admin.Addr
	} else if c.TLS.Cert != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "127.0.0.1", "8080"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + path
}
