package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/herald-push/herald/internal/hub"
	"go.yaml.in/yaml/v3"
)

// field is one setting, found by walking Config.
type field struct {
	path  string // yaml path: "sse.heartbeat"
	flag  string // "sse-heartbeat"
	env   string // "HERALD_SSE_HEARTBEAT"
	def   string
	help  string
	value reflect.Value
}

func fields(c *Config) []field {
	var out []field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name := sf.Tag.Get("yaml")
			if name == "" || name == "-" {
				continue
			}
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			if sf.Type.Kind() == reflect.Struct {
				walk(v.Field(i), path)
				continue
			}
			key := strings.NewReplacer(".", "-", "_", "-").Replace(path)
			out = append(out, field{
				path: path, flag: key,
				env:   "HERALD_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_")),
				def:   sf.Tag.Get("default"),
				help:  sf.Tag.Get("help"),
				value: v.Field(i),
			})
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// set parses s into v according to v's type.
func set(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case []string:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		v.SetBool(b)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		v.SetFloat(f)
	default:
		panic("config: unsupported field type " + v.Type().String())
	}
	return nil
}

func format(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	}
	return fmt.Sprint(v.Interface())
}

// Default returns the configuration with every default applied.
func Default() *Config {
	c := &Config{}
	for _, f := range fields(c) {
		if f.def != "" {
			if err := set(f.value, f.def); err != nil {
				panic(fmt.Sprintf("config: default of %s: %v", f.path, err))
			}
		}
	}
	return c
}

// LoadFile reads a YAML file over c. Unknown keys and bad values are errors that name the key
// and its line.
func LoadFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config: %s: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	byPath := map[string]field{}
	sections := map[string]bool{}
	for _, f := range fields(c) {
		byPath[f.path] = f
		if sec, _, ok := strings.Cut(f.path, "."); ok {
			sections[sec] = true
		}
	}
	var walk func(n *yaml.Node, prefix string) error
	walk = func(n *yaml.Node, prefix string) error {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("config: %s: line %d: %s must be a mapping", path, n.Line, orTop(prefix))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			if sections[key] {
				if err := walk(v, key); err != nil {
					return err
				}
				continue
			}
			f, ok := byPath[key]
			if !ok {
				return fmt.Errorf("config: %s: line %d: unknown key %s", path, k.Line, key)
			}
			var text string
			switch {
			case v.Kind == yaml.SequenceNode && f.value.Kind() == reflect.Slice:
				var items []string
				for _, item := range v.Content {
					items = append(items, item.Value)
				}
				text = strings.Join(items, ",")
			case v.Kind == yaml.ScalarNode:
				text = v.Value
			default:
				return fmt.Errorf("config: %s: line %d: %s: expected a single value", path, v.Line, key)
			}
			if err := set(f.value, text); err != nil {
				return fmt.Errorf("config: %s: line %d: %s: %q: %v", path, v.Line, key, text, err)
			}
		}
		return nil
	}
	return walk(doc.Content[0], "")
}

func orTop(prefix string) string {
	if prefix == "" {
		return "the file"
	}
	return prefix
}

// LoadEnv applies HERALD_* variables over c.
func LoadEnv(c *Config, lookup func(string) (string, bool)) error {
	for _, f := range fields(c) {
		if s, ok := lookup(f.env); ok {
			if err := set(f.value, s); err != nil {
				return fmt.Errorf("config: %s=%q: %v", f.env, s, err)
			}
		}
	}
	return nil
}

// Flags registers one flag per setting on fs, writing into c when parsed. Call it after
// loading the file and the environment so that flags win.
func Flags(c *Config, fs *flag.FlagSet) {
	for _, f := range fields(c) {
		fs.Var(flagValue{f.value}, f.flag, f.help+" ("+f.env+")")
	}
}

type flagValue struct{ v reflect.Value }

func (f flagValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	return format(f.v)
}
func (f flagValue) Set(s string) error { return set(f.v, s) }

// IsBoolFlag lets a boolean be switched on by its name alone: --h2c means --h2c=true.
func (f flagValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

// UnknownEnv returns the HERALD_* variables in environ (KEY=value pairs) that name no setting:
// most likely typos. They are reported, not rejected, because other tools (herald publish, the
// tests) read HERALD_* variables of their own.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{"HERALD_CONFIG": true}
	for _, f := range fields(Default()) {
		known[f.env] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HERALD_") && !known[k] {
			out = append(out, k)
		}
	}
	return out
}

// Load builds the configuration of `herald serve`: defaults, then the file named by --config
// or HERALD_CONFIG, then the environment, then the flags in args. It validates the result.
func Load(args []string, fs *flag.FlagSet, lookup func(string) (string, bool)) (*Config, error) {
	// Find --config first: the file sits below the environment and the flags.
	path, _ := lookup("HERALD_CONFIG")
	for i, a := range args {
		switch {
		case a == "--config" || a == "-config":
			if i+1 < len(args) {
				path = args[i+1]
			}
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.IndexByte(a, '=')+1:]
		}
	}
	c := Default()
	if path != "" {
		if err := LoadFile(c, path); err != nil {
			return nil, err
		}
	}
	if err := LoadEnv(c, lookup); err != nil {
		return nil, err
	}
	fs.String("config", "", "YAML configuration file (HERALD_CONFIG)")
	Flags(c, fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.Validate()
}

// Validate checks values that have a type but not every value makes sense.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, key, msg string) {
		if !ok {
			errs = append(errs, fmt.Errorf("config: %s: %s", key, msg))
		}
	}
	check(c.Addr != "", "addr", "must not be empty")
	check(c.DataDir != "", "data_dir", "must not be empty")
	check(c.Log.Format == "text" || c.Log.Format == "json", "log.format", "must be text or json")
	check(strings.Contains("debug info warn error", c.Log.Level) && c.Log.Level != "", "log.level", "must be debug, info, warn or error")
	check(c.SSE.Heartbeat >= time.Second, "sse.heartbeat", "must be at least 1s")
	check(c.SSE.Retry >= 100*time.Millisecond, "sse.retry", "must be at least 100ms")
	check(c.WS.CompressionThreshold >= 0, "ws.compression_threshold", "must not be negative")
	check(c.WS.MaxMessage >= 1024, "ws.max_message", "must be at least 1024")
	check(c.WS.MaxSubscriptions >= 1, "ws.max_subscriptions", "must be at least 1")
	check(c.WS.PublishRate > 0 && c.WS.PublishBurst >= 1, "ws.publish_rate", "rate must be positive and burst at least 1")
	check(c.WS.PingInterval >= time.Second && c.WS.PongTimeout >= time.Second, "ws.ping_interval", "ping interval and pong timeout must be at least 1s")
	check(c.Poll.Timeout >= time.Second && c.Poll.Timeout <= c.Poll.MaxTimeout, "poll.timeout", "must be at least 1s and at most poll.max_timeout")
	check(c.Retention.PerTopic >= 0, "retention.per_topic", "must not be negative")
	check(c.Retention.MaxAge >= 0, "retention.max_age", "must not be negative")
	check(c.Retention.MaxBytes >= 0, "retention.max_bytes", "must not be negative")
	check(c.Limits.QueueLen >= 1, "limits.queue_len", "must be at least 1")
	check(c.Limits.MaxData >= 1 && c.Limits.MaxData <= 16<<20, "limits.max_data", "must be between 1 and 16777216")
	check(c.Limits.MaxTopics >= 1, "limits.max_topics", "must be at least 1")
	check(c.Limits.MaxBody >= 1024, "limits.max_body", "must be at least 1024")
	check(c.Limits.MaxBatch >= 1, "limits.max_batch", "must be at least 1")
	check(c.Limits.MaxHeaderBytes >= 4096, "limits.max_header_bytes", "must be at least 4096")
	check(c.Shutdown.Drain >= 0, "shutdown.drain", "must not be negative")
	check(c.Limits.PublishRate >= 0, "limits.publish_rate", "must not be negative")
	check(c.Limits.HandshakeWait >= 0, "limits.handshake_wait", "must not be negative")
	check(c.Auth.Leeway >= 0 && c.Auth.Leeway <= 5*time.Minute, "auth.leeway", "must be between 0 and 5m")
	check(c.Auth.JWTSecret == "" || len(c.Auth.JWTSecret) >= 32, "auth.jwt_secret", "must be at least 32 bytes")
	check(c.Auth.JWTSecret == "" || c.Auth.JWTSecretFile == "", "auth.jwt_secret_file", "set jwt_secret or jwt_secret_file, not both")
	check(c.Auth.Cookie != "", "auth.cookie", "must not be empty")
	for _, p := range c.Auth.AnonymousSubscribe {
		check(p == "none" || validPattern(p), "auth.anonymous_subscribe", fmt.Sprintf("%q is not a topic or pattern", p))
	}
	for _, o := range c.CORS.AllowedOrigins {
		check(o == "*" || strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://"), "cors.allowed_origins", fmt.Sprintf("%q: an origin is scheme://host[:port], or *", o))
	}
	check(c.Shutdown.Delay >= 0, "shutdown.delay", "must not be negative")
	check((c.TLS.Cert == "") == (c.TLS.Key == ""), "tls.cert", "tls.cert and tls.key must be set together")
	check(c.Admin.Addr == "" || c.Admin.Addr != c.Addr, "admin.addr", "must differ from addr")
	if _, err := c.Limits.Proxies(); err != nil {
		check(false, "limits.trusted_proxies", err.Error())
	}
	return errors.Join(errs...)
}

// validPattern reports whether p is a valid hub topic or pattern.
func validPattern(p string) bool { return hub.ValidatePattern(p) == nil }
