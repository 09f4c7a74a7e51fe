// Package config is Herald's configuration: one struct, loaded from defaults, a YAML file,
// HERALD_* environment variables and command-line flags, in that order of precedence (a flag
// wins over the environment, which wins over the file, which wins over the default).
//
// Every setting is a field with a yaml name, a default and a help text; the flags, the
// environment variables, `herald config example` and docs/configuration.md are all derived
// from the struct, so they cannot drift apart.
package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Config is every setting of `herald serve`.
type Config struct {
	Addr      string `yaml:"addr" default:":8080" help:"listen address (host:port)"`
	DataDir   string `yaml:"data_dir" default:"herald-data" help:"directory for the embedded log and the generated publisher key; created if missing"`
	Engine    string `yaml:"engine" default:"" help:"message log: empty for the embedded durable log, memory (nothing survives a restart), nats://host:4222 for an external NATS JetStream, or redis://host:6379/0 for Redis; add ?prefix=NAME to share one engine between clusters (docs/scaling.md)"`
	H2C       bool   `yaml:"h2c" default:"false" help:"also accept HTTP/2 without TLS (prior knowledge), for a proxy that speaks h2c to Herald; browsers need TLS for HTTP/2"`
	Dashboard bool   `yaml:"dashboard" default:"true" help:"serve the dashboard and demos at / and their statistics at /api/stats, which lists the busiest topic names: turn it off where topic names are private"`

	TLS   TLS   `yaml:"tls"`
	Admin Admin `yaml:"admin"`

	Log       Log       `yaml:"log"`
	SSE       SSE       `yaml:"sse"`
	WS        WS        `yaml:"ws"`
	Poll      Poll      `yaml:"poll"`
	Retention Retention `yaml:"retention"`
	Limits    Limits    `yaml:"limits"`
	Publish   Publish   `yaml:"publish"`
	Auth      Auth      `yaml:"auth"`
	CORS      CORS      `yaml:"cors"`
	Shutdown  Shutdown  `yaml:"shutdown"`
}

// Log configures Herald's own logging.
type Log struct {
	Format   string `yaml:"format" default:"text" help:"log format: text or json"`
	Level    string `yaml:"level" default:"info" help:"log level: debug, info, warn or error"`
	Requests bool   `yaml:"requests" default:"false" help:"log every request at info level (otherwise at debug; server errors always); lines hold the request id, method, path, status, bytes and duration, never query strings, tokens or payloads"`
}

// TLS serves HTTPS (and so HTTP/2 to browsers) directly, without a proxy in front.
type TLS struct {
	Cert string `yaml:"cert" default:"" help:"PEM certificate chain file; with tls.key, Herald serves HTTPS and HTTP/2 on addr"`
	Key  string `yaml:"key" default:"" help:"PEM private key file of tls.cert"`
}

// Admin is a second listener for operators: metrics and the profiler.
type Admin struct {
	Addr string `yaml:"addr" default:"" help:"admin listen address for /metrics, /healthz, /readyz and /debug/pprof (e.g. 127.0.0.1:9090); empty serves /metrics on addr and no profiler"`
}

// SSE configures the Server-Sent Events transport.
type SSE struct {
	Heartbeat time.Duration `yaml:"heartbeat" default:"15s" help:"interval of heartbeat comments; keep it below proxy read timeouts (nginx: 60s)"`
	Retry     time.Duration `yaml:"retry" default:"2s" help:"reconnection delay advised to clients"`
}

// WS configures the WebSocket transport (GET /ws).
type WS struct {
	AllowedOrigins        []string      `yaml:"allowed_origins" default:"" help:"origins allowed to open a WebSocket besides the server's own host: host patterns such as app.example.com or *.example.com, or scheme://host; empty means same host only (Cross-Site WebSocket Hijacking protection)"`
	AllowAnonymousPublish bool          `yaml:"allow_anonymous_publish" default:"false" help:"let WebSocket clients without credentials publish to any topic (the chat demo needs it); never overrides a forbidden"`
	Compression           bool          `yaml:"compression" default:"true" help:"negotiate permessage-deflate (no context takeover) with clients that offer it"`
	CompressionThreshold  int           `yaml:"compression_threshold" default:"512" help:"messages smaller than this many bytes are sent uncompressed"`
	MaxMessage            int64         `yaml:"max_message" default:"131072" help:"bytes per incoming WebSocket message after decompression; past it the connection is closed with 1009"`
	MaxSubscriptions      int           `yaml:"max_subscriptions" default:"32" help:"subscribe operations active at once per connection"`
	PublishRate           float64       `yaml:"publish_rate" default:"20" help:"publishes per second per connection (token bucket); past it publishes get error rate_limited"`
	PublishBurst          int           `yaml:"publish_burst" default:"40" help:"publishes a connection may send at once before publish_rate applies"`
	PingInterval          time.Duration `yaml:"ping_interval" default:"20s" help:"interval of WebSocket pings that keep proxies from closing idle connections and detect dead peers"`
	PongTimeout           time.Duration `yaml:"pong_timeout" default:"10s" help:"a peer that does not answer a ping within this is considered dead and disconnected"`
}

// Poll configures HTTP long polling (GET /poll).
type Poll struct {
	Timeout    time.Duration `yaml:"timeout" default:"25s" help:"how long a poll waits for a message when the client names no timeout"`
	MaxTimeout time.Duration `yaml:"max_timeout" default:"55s" help:"longest wait a client may ask for; keep it below proxy read timeouts (nginx: 60s)"`
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

	ConnsPerIP       int           `yaml:"conns_per_ip" default:"512" help:"open streaming connections per client address (0: no limit); behind a proxy listed in limits.trusted_proxies the address is the one it forwards"`
	TrustedProxies   []string      `yaml:"trusted_proxies" default:"127.0.0.0/8,::1/128" help:"addresses (CIDR) of proxies whose X-Forwarded-For names the client, for limits and logs; empty trusts none"`
	ConnsPerIdentity int           `yaml:"conns_per_identity" default:"64" help:"open streaming connections per token subject or API key (0: no limit)"`
	Handshakes       int           `yaml:"handshakes" default:"128" help:"subscriptions being set up at once, history replay included; more wait up to handshake_wait, then SSE clients are told to retry later (0: no limit)"`
	HandshakeWait    time.Duration `yaml:"handshake_wait" default:"1s" help:"how long a new connection may wait for a setup slot"`
	PublishRate      float64       `yaml:"publish_rate" default:"50" help:"publish requests per second per token subject (429 past it; 0: no limit); API keys set their own in auth.keys_file"`
	PublishBurst     int           `yaml:"publish_burst" default:"100" help:"publish requests a token subject may send at once before publish_rate applies"`
}

// Publish configures who may publish over HTTP.
type Publish struct {
	Keys []string `yaml:"keys" default:"" help:"publisher keys (bearer tokens) besides the one generated in the data dir; comma-separated in flags and the environment"`
}

// Auth configures tokens, API keys and anonymous access (docs/security.md).
type Auth struct {
	JWTSecret     string        `yaml:"jwt_secret" default:"" help:"HS256/384/512 secret for tokens, at least 32 bytes; empty: the one generated in the data dir (jwt.secret)"`
	JWTSecretFile string        `yaml:"jwt_secret_file" default:"" help:"file holding the HMAC secret (instead of jwt_secret)"`
	JWTKeys       []string      `yaml:"jwt_keys" default:"" help:"PEM files of public keys (RSA, EC P-256/P-384, Ed25519) for RS*/ES*/EdDSA tokens"`
	JWKSURL       string        `yaml:"jwks_url" default:"" help:"URL of a JWKS document with public keys, cached and refetched on rotation"`
	JWKSRefresh   time.Duration `yaml:"jwks_refresh" default:"1h" help:"how long keys fetched from jwks_url are trusted before a refetch"`
	Issuer        string        `yaml:"issuer" default:"" help:"required iss claim, if set"`
	Audience      string        `yaml:"audience" default:"" help:"required aud claim, if set"`
	RequireExp    bool          `yaml:"require_exp" default:"true" help:"refuse tokens without exp"`
	Leeway        time.Duration `yaml:"leeway" default:"5s" help:"clock skew tolerated on exp, nbf and iat"`
	Cookie        string        `yaml:"cookie" default:"herald_token" help:"name of the HttpOnly cookie that may carry a token (native EventSource, browser WebSocket)"`
	QueryToken    bool          `yaml:"query_token" default:"true" help:"accept a token in the token query parameter (last resort: URLs end up in logs)"`
	KeysFile      string        `yaml:"keys_file" default:"" help:"YAML list of API keys with their own rights: - {name, key, publish: [patterns], subscribe: [patterns], rate, burst}"`

	AnonymousSubscribe []string `yaml:"anonymous_subscribe" default:"" help:"topics and patterns anyone may subscribe to without a token; empty: everything (**) while no token key is configured (jwt_secret, jwt_secret_file, jwt_keys, jwks_url), nothing once one is; none: nothing"`
}

// CORS configures which web pages of other origins may call Herald.
type CORS struct {
	AllowedOrigins []string      `yaml:"allowed_origins" default:"" help:"exact origins (https://app.example.com) whose pages may subscribe and publish with credentials; * lets any page read without credentials"`
	MaxAge         time.Duration `yaml:"max_age" default:"10m" help:"how long browsers may cache a preflight answer"`
}

// Shutdown configures graceful shutdown.
type Shutdown struct {
	Delay time.Duration `yaml:"delay" default:"0s" help:"at shutdown, how long /readyz answers 503 while everything else carries on, so a load balancer stops sending new clients first (Kubernetes: 5s)"`
	Drain time.Duration `yaml:"drain" default:"10s" help:"window over which open streams are closed at shutdown, spread out with reconnect advice so clients do not reconnect all at once; in-flight requests get this plus 5s to finish"`
}

// Proxies parses TrustedProxies; a bare address is a prefix of one address.
func (l Limits) Proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range l.TrustedProxies {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR prefix", p)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR prefix", p)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}
