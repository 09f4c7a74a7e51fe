// Package config is Herald's configuration: one struct, loaded from defaults, a YAML file,
// HERALD_* environment variables and command-line flags, in that order of precedence (a flag
// wins over the environment, which wins over the file, which wins over the default).
//
// Every setting is a field with a yaml name, a default and a help text; the flags, the
// environment variables, `herald config example` and docs/configuration.md are all derived
// from the struct, so they cannot drift apart.
package config

import (
	"time"
)

// Config is every setting of `herald serve`.
type Config struct {
	Addr    string `yaml:"addr" default:":8080" help:"listen address (host:port)"`
	DataDir string `yaml:"data_dir" default:"herald-data" help:"directory for the embedded log and the generated publisher key; created if missing"`
	Engine  string `yaml:"engine" default:"" help:"message log: empty for the embedded durable log, memory (nothing survives a restart), nats://host:4222 for an external NATS JetStream, or redis://host:6379/0 for Redis; add ?prefix=NAME to share one engine between clusters (docs/scaling.md)"`

	Log       Log       `yaml:"log"`
	SSE       SSE       `yaml:"sse"`
	Retention Retention `yaml:"retention"`
	Limits    Limits    `yaml:"limits"`
	Publish   Publish   `yaml:"publish"`
	Shutdown  Shutdown  `yaml:"shutdown"`
}

// Log configures Herald's own logging.
type Log struct {
	Format string `yaml:"format" default:"text" help:"log format: text or json"`
	Level  string `yaml:"level" default:"info" help:"log level: debug, info, warn or error"`
}

// SSE configures the Server-Sent Events transport.
type SSE struct {
	Heartbeat time.Duration `yaml:"heartbeat" default:"15s" help:"interval of heartbeat comments; keep it below proxy read timeouts (nginx: 60s)"`
	Retry     time.Duration `yaml:"retry" default:"2s" help:"reconnection delay advised to clients"`
}

// Retention says how much history is kept for resuming clients and the history API.
type Retention struct {
	PerTopic int           `yaml:"per_topic" default:"1000" help:"messages kept per topic (0: no limit)"`
	MaxAge   time.Duration `yaml:"max_age" default:"24h" help:"age after which messages are removed (0: no limit)"`
	MaxBytes int64         `yaml:"max_bytes" default:"1073741824" help:"bytes of history kept in all (0: no limit)"`
}

// Limits protect the server and other clients from any one client.
type Limits struct {
	QueueLen       int   `yaml:"queue_len" default:"1024" help:"live messages a subscriber may have waiting; past it the subscriber is disconnected and resumes from history"`
	MaxData        int   `yaml:"max_data" default:"65536" help:"bytes of data per message"`
	MaxTopics      int   `yaml:"max_topics" default:"64" help:"topics and patterns per subscription"`
	MaxBody        int64 `yaml:"max_body" default:"8388608" help:"bytes per publish request"`
	MaxBatch       int   `yaml:"max_batch" default:"10000" help:"messages per publish request"`
	MaxHeaderBytes int   `yaml:"max_header_bytes" default:"65536" help:"bytes of request headers (431 past it)"`
}

// Publish configures who may publish over HTTP.
type Publish struct {
	Keys []string `yaml:"keys" default:"" help:"publisher keys (bearer tokens) besides the one generated in the data dir; comma-separated in flags and the environment"`
}

// Shutdown configures graceful shutdown.
type Shutdown struct {
	Drain time.Duration `yaml:"drain" default:"10s" help:"how long in-flight requests may take to finish at shutdown"`
}
