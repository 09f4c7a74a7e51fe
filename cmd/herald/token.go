package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-push/herald/internal/auth"
	"github.com/herald-push/herald/internal/config"
)

const secretFile = "jwt.secret"

// token mints a development token: herald token --sub 17 --subscribe 'users/17/**' --ttl 1h.
func token(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	sub := fs.String("sub", "", "subject: the identity shown in presence and logs (required)")
	var subscribe, publish listFlag
	fs.Var(&subscribe, "subscribe", "topic or pattern the token may subscribe to (repeat or comma-separate)")
	fs.Var(&publish, "publish", "topic or pattern the token may publish to (repeat or comma-separate)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	dataDir := fs.String("data-dir", "herald-data", "data directory of the server, for its generated secret")
	secret := fs.String("auth-jwt-secret", "", "HS256 secret (default: auth-jwt-secret-file, else the one in --data-dir)")
	secretPath := fs.String("auth-jwt-secret-file", "", "file holding the HS256 secret")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: herald token --sub ID [--subscribe PATTERN]... [--publish PATTERN]... [--ttl 1h]")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *sub == "" {
		fs.Usage()
		return errors.New("token needs --sub")
	}
	key, err := readSecret(*secret, *secretPath, *dataDir)
	if err != nil {
		return err
	}
	tok, err := auth.Mint(key, *sub, auth.Rights{Subscribe: subscribe, Publish: publish}, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// listFlag collects a repeated, comma-separable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

var _ flag.Value = (*listFlag)(nil)

// readSecret returns the configured HMAC secret, else the one stored in the data dir.
func readSecret(inline, file, dataDir string) ([]byte, error) {
	if inline != "" {
		return []byte(inline), nil
	}
	path := file
	if path == "" {
		path = filepath.Join(dataDir, secretFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("no auth.jwt_secret given and none readable: %w", err)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

// jwtSecret returns the secret of `herald serve`: configured, or generated on first start in
// the data dir (owner-only), so that `herald token` works out of the box.
func jwtSecret(c *config.Config) ([]byte, error) {
	if c.Auth.JWTSecret != "" || c.Auth.JWTSecretFile != "" {
		return readSecret(c.Auth.JWTSecret, c.Auth.JWTSecretFile, c.DataDir)
	}
	path := filepath.Join(c.DataDir, secretFile)
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	s := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("store JWT secret: %w", err)
	}
	return []byte(s), nil
}

// authenticator builds the auth configuration of `herald serve`. The generated publisher key
// and publish.keys have every right; keys_file adds keys with their own rights.
func authenticator(c *config.Config, publisherKey string) (*auth.Authenticator, error) {
	secret, err := jwtSecret(c)
	if err != nil {
		return nil, err
	}
	cfg := auth.Config{
		Keys:        []auth.Key{{Key: secret}},
		JWKSURL:     c.Auth.JWKSURL,
		JWKSRefresh: c.Auth.JWKSRefresh,
		Issuer:      c.Auth.Issuer,
		Audience:    c.Auth.Audience,
		AllowNoExp:  !c.Auth.RequireExp,
		Leeway:      c.Auth.Leeway,
		TokenRate:   c.Limits.PublishRate,
		TokenBurst:  c.Limits.PublishBurst,
	}
	for _, path := range c.Auth.JWTKeys {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt_keys: %w", err)
		}
		k, err := auth.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt_keys: %s: %w", path, err)
		}
		cfg.Keys = append(cfg.Keys, auth.Key{Key: k})
	}
	all := auth.Rights{Subscribe: []string{"**"}, Publish: []string{"**"}}
	cfg.APIKeys = append(cfg.APIKeys, auth.APIKey{Name: "generated", Secret: publisherKey, Rights: all})
	for i, k := range c.Publish.Keys {
		cfg.APIKeys = append(cfg.APIKeys, auth.APIKey{Name: fmt.Sprintf("publish.keys[%d]", i), Secret: k, Rights: all})
	}
	if c.Auth.KeysFile != "" {
		b, err := os.ReadFile(c.Auth.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("auth.keys_file: %w", err)
		}
		var keys []auth.APIKey
		if err := yaml.Unmarshal(b, &keys); err != nil {
			return nil, fmt.Errorf("auth.keys_file: %s: %w", c.Auth.KeysFile, err)
		}
		cfg.APIKeys = append(cfg.APIKeys, keys...)
	}
	cfg.Anonymous.Subscribe = anonymousSubscribe(c)
	return auth.New(cfg)
}

// anonymousSubscribe is the safe default: an open server while no token key is configured
// (development: `herald serve` and curl just work), closed as soon as one is.
func anonymousSubscribe(c *config.Config) []string {
	list := c.Auth.AnonymousSubscribe
	if len(list) == 1 && list[0] == "none" {
		return nil
	}
	if len(list) > 0 {
		return list
	}
	if c.Auth.JWTSecret == "" && c.Auth.JWTSecretFile == "" && len(c.Auth.JWTKeys) == 0 && c.Auth.JWKSURL == "" {
		return []string{"**"}
	}
	return nil
}
