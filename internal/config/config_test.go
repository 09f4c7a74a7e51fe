package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, text string) string {
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, args []string, vars map[string]string) (*Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(args, fs, env(vars))
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, "addr: ':1'\nsse:\n  heartbeat: 20s\n  retry: 3s\nretention:\n  per_topic: 5\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config) bool
	}{
		{"defaults", nil, nil, func(c *Config) bool { return c.Addr == ":8080" && c.SSE.Heartbeat == 15*time.Second }},
		{"file over default", []string{"--config", path}, nil, func(c *Config) bool {
			return c.Addr == ":1" && c.SSE.Heartbeat == 20*time.Second && c.Retention.PerTopic == 5
		}},
		{"env over file", []string{"--config=" + path}, map[string]string{"HERALD_SSE_HEARTBEAT": "30s"}, func(c *Config) bool { return c.SSE.Heartbeat == 30*time.Second && c.SSE.Retry == 3*time.Second }},
		{"flag over env", []string{"--config", path, "--sse-heartbeat", "40s"}, map[string]string{"HERALD_SSE_HEARTBEAT": "30s"}, func(c *Config) bool { return c.SSE.Heartbeat == 40*time.Second }},
		{"config from env", nil, map[string]string{"HERALD_CONFIG": path}, func(c *Config) bool { return c.Addr == ":1" }},
		{"list", []string{"--publish-keys", "a, b"}, nil, func(c *Config) bool { return strings.Join(c.Publish.Keys, "|") == "a|b" }},
		{"bool flag alone", []string{"--h2c", "--dashboard=false"}, nil, func(c *Config) bool { return c.H2C && !c.Dashboard }},
		{"bool from env", nil, map[string]string{"HERALD_LOG_REQUESTS": "true"}, func(c *Config) bool { return c.Log.Requests }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		file string
		env  map[string]string
		want string
	}{
		{"adr: ':1'\n", nil, "unknown key adr"},
		{"sse:\n  heartbeat: soon\n", nil, "heartbeat"},
		{"sse:\n  heartbeat: 10ms\n", nil, "sse.heartbeat: must be at least 1s"},
		{"", map[string]string{"HERALD_LIMITS_QUEUE_LEN": "many"}, "HERALD_LIMITS_QUEUE_LEN"},
		{"log:\n  format: xml\n", nil, "log.format"},
		{"tls:\n  cert: a.pem\n", nil, "tls.cert and tls.key must be set together"},
		{"admin:\n  adr: ':9090'\n", nil, "unknown key admin.adr"},
		{"dashboard: maybe\n", nil, "dashboard"},
		{"shutdown:\n  delay: -1s\n", nil, "shutdown.delay"},
	}
	for _, tt := range tests {
		_, err := load(t, []string{"--config", writeFile(t, tt.file)}, tt.env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("file %q env %v: error %v, want it to mention %q", tt.file, tt.env, err, tt.want)
		}
	}
}

func TestExampleIsValidConfig(t *testing.T) {
	var b bytes.Buffer
	WriteExample(&b)
	c := Default()
	if err := LoadFile(c, writeFile(t, b.String())); err != nil {
		t.Fatalf("herald config example does not load: %v\n%s", err, b.String())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestReferenceIsCurrent keeps docs/configuration.md equal to the struct. Run with
// HERALD_UPDATE_DOCS=1 to rewrite it.
func TestReferenceIsCurrent(t *testing.T) {
	var b bytes.Buffer
	WriteReference(&b)
	path := filepath.Join("..", "..", "docs", "configuration.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- begin generated -->\n", "<!-- end generated -->"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s has no generated section", path)
	}
	if got := string(doc[i+len(begin) : j]); got != b.String() {
		if os.Getenv("HERALD_UPDATE_DOCS") != "" {
			out := append(append(append([]byte{}, doc[:i+len(begin)]...), b.Bytes()...), doc[j:]...)
			os.WriteFile(path, out, 0o644)
			return
		}
		t.Errorf("%s is out of date; run HERALD_UPDATE_DOCS=1 go test ./internal/config", path)
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{"HERALD_ADDR=:1", "HERALD_SSE_HEARTBET=5s", "HERALD_CONFIG=x", "PATH=/bin"})
	if strings.Join(got, ",") != "HERALD_SSE_HEARTBET" {
		t.Errorf("UnknownEnv = %v, want [HERALD_SSE_HEARTBET]", got)
	}
}
