package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// APIKey is a long-lived secret for a backend publisher, with its own rights.
type APIKey struct {
	Name   string `yaml:"name"` // identity: "key:<name>"
	Secret string `yaml:"key"`
	Rights `yaml:",inline"`
	Rate   float64 `yaml:"rate"`  // publish requests per second; 0 means unlimited
	Burst  int     `yaml:"burst"` // 0 means 2*rate
}

// Config configures an Authenticator. The zero value accepts no token and no key and lets
// nobody do anything: every right comes from configuration.
type Config struct {
	Keys        []Key         // static JWT verification keys
	JWKSURL     string        // optional: keys fetched from here, cached and refreshed
	JWKSRefresh time.Duration // how long fetched keys are trusted; 0 means 1h
	JWKSMinWait time.Duration // least time between two fetches (unknown kids); 0 means 30s
	HTTPClient  *http.Client  // for the JWKS; nil means one with a 10s timeout

	Issuer     string        // required iss, if set
	Audience   string        // required in aud, if set
	AllowNoExp bool          // accept tokens without exp (not recommended)
	Leeway     time.Duration // clock skew tolerated on exp, nbf and iat
	TokenRate  float64       // publish requests per second per token subject; 0 means unlimited
	TokenBurst int

	APIKeys   []APIKey
	Anonymous Rights // what a request without credentials may do

	Now func() time.Time // nil means time.Now
}

// Authenticator turns credentials into grants. It is safe for concurrent use.
type Authenticator struct {
	cfg    Config
	static []Key
	jwks   *jwks
	parser *jwt.Parser
	keys   []apiKey
}

type apiKey struct {
	hash  [32]byte // compare digests: constant time whatever the secret's length
	grant Grant
}

// New checks cfg and returns an authenticator.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{cfg: cfg}
	var algs []string
	for i, k := range cfg.Keys {
		m, err := methodsFor(k.Key)
		if err != nil {
			return nil, fmt.Errorf("auth: key %d: %w", i+1, err)
		}
		if k.Methods == nil {
			k.Methods = m
		} else if slices.ContainsFunc(k.Methods, func(s string) bool { return !slices.Contains(m, s) }) {
			return nil, fmt.Errorf("auth: key %d: algorithms %v do not fit a %T", i+1, k.Methods, k.Key)
		}
		a.static = append(a.static, k)
		algs = append(algs, k.Methods...)
	}
	if cfg.JWKSURL != "" {
		a.jwks = newJWKS(cfg)
		algs = append(algs, "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), // never "none", never an algorithm no key can verify
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithIssuedAt(),
	}
	if !cfg.AllowNoExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	if err := cfg.Anonymous.Validate(); err != nil {
		return nil, fmt.Errorf("auth: anonymous rights: %w", err)
	}
	seen := map[string]bool{}
	for i, k := range cfg.APIKeys {
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("auth: API key %d (%s): shorter than 16 characters", i+1, k.Name)
		}
		if k.Name == "" {
			k.Name = fmt.Sprint(i + 1)
		}
		if seen[k.Name] {
			return nil, fmt.Errorf("auth: API key name %q used twice", k.Name)
		}
		seen[k.Name] = true
		if err := k.Rights.Validate(); err != nil {
			return nil, fmt.Errorf("auth: API key %s: %w", k.Name, err)
		}
		burst := k.Burst
		if burst <= 0 {
			burst = max(1, int(2*k.Rate))
		}
		a.keys = append(a.keys, apiKey{
			hash:  sha256.Sum256([]byte(k.Secret)),
			grant: Grant{Subject: "key:" + k.Name, Kind: "key", Rights: k.Rights, Rate: k.Rate, Burst: burst},
		})
	}
	return a, nil
}

// Tokens reports whether any JWT key is configured.
func (a *Authenticator) Tokens() bool { return len(a.static) > 0 || a.jwks != nil }

// Anonymous returns the grant of a request without credentials.
func (a *Authenticator) Anonymous() *Grant {
	return &Grant{Kind: "anonymous", Rights: a.cfg.Anonymous}
}

// Authenticate returns the grant of a credential: an API key, else a JWT.
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (*Grant, error) {
	if credential == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	h := sha256.Sum256([]byte(credential))
	var found *apiKey
	for i := range a.keys { // no early exit: the time taken does not tell which key matched
		if subtle.ConstantTimeCompare(h[:], a.keys[i].hash[:]) == 1 {
			found = &a.keys[i]
		}
	}
	if found != nil {
		g := found.grant
		return &g, nil
	}
	if strings.Count(credential, ".") != 2 {
		return nil, fmt.Errorf("%w: unknown key", ErrInvalidToken)
	}
	if !a.Tokens() {
		return nil, fmt.Errorf("%w: tokens are not enabled (no auth.jwt_secret, auth.jwt_keys or auth.jwks_url)", ErrInvalidToken)
	}
	g, err := a.verify(ctx, credential)
	if err != nil {
		return nil, err
	}
	if g.Expires.IsZero() && !a.cfg.AllowNoExp {
		return nil, errors.Join(ErrInvalidToken, errors.New("no exp")) // unreachable with the parser option; kept as a guard
	}
	return g, nil
}
