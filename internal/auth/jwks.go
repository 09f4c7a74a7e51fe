package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// jwks caches the keys published at a JWKS URL. Keys are refetched when older than the
// refresh interval, or when a token names a kid not in the cache (rotation), but never more
// often than minWait: a stream of tokens with made-up kids cannot turn Herald into a
// request amplifier against the identity provider.
type jwks struct {
	url     string
	client  *http.Client
	refresh time.Duration
	minWait time.Duration
	now     func() time.Time

	fetch sync.Mutex // held by the one goroutine fetching

	mu      sync.Mutex
	cached  []Key
	fetched time.Time // of the last successful fetch
	tried   time.Time // of the last attempt
}

func newJWKS(cfg Config) *jwks {
	j := &jwks{url: cfg.JWKSURL, client: cfg.HTTPClient, refresh: cfg.JWKSRefresh, minWait: cfg.JWKSMinWait, now: cfg.Now}
	if j.client == nil {
		j.client = &http.Client{Timeout: 10 * time.Second}
	}
	if j.refresh <= 0 {
		j.refresh = time.Hour
	}
	if j.minWait <= 0 {
		j.minWait = 30 * time.Second
	}
	return j
}

// keys returns the cached keys, refreshing them first when due. A failed fetch keeps the
// keys already known: an identity provider outage does not log everyone out.
func (j *jwks) keys(ctx context.Context, kid string) []Key {
	j.mu.Lock()
	keys, now := j.cached, j.now()
	known := kid == "" || hasKid(keys, kid)
	due := now.Sub(j.fetched) >= j.refresh || !known
	allowed := now.Sub(j.tried) >= j.minWait || j.tried.IsZero()
	j.mu.Unlock()
	if !due || !allowed {
		return keys
	}
	if keys != nil && known {
		// Someone else may refresh; this request goes on with the current keys.
		if !j.fetch.TryLock() {
			return keys
		}
	} else {
		j.fetch.Lock()
	}
	defer j.fetch.Unlock()

	j.mu.Lock()
	if !j.tried.IsZero() && j.now().Sub(j.tried) < j.minWait {
		keys = j.cached // fetched while this goroutine waited
		j.mu.Unlock()
		return keys
	}
	j.tried = j.now()
	j.mu.Unlock()

	fresh, err := j.get(ctx)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err == nil {
		j.cached, j.fetched = fresh, j.now()
	}
	return j.cached
}

func hasKid(keys []Key, kid string) bool {
	for _, k := range keys {
		if k.ID == kid {
			return true
		}
	}
	return false
}

type jwk struct {
	Kty, Kid, Alg, Use, Crv string
	N, E, X, Y              string
}

func (j *jwks) get(ctx context.Context) ([]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: %s", resp.Status)
	}
	var set struct{ Keys []jwk }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return parseJWKS(set.Keys), nil
}

// parseJWKS converts the usable signature keys of a set; others are skipped.
func parseJWKS(set []jwk) []Key {
	var out []Key
	for _, k := range set {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.public()
		if err != nil {
			continue
		}
		methods, err := methodsFor(pub)
		if err != nil {
			continue
		}
		if k.Alg != "" { // the set pins the algorithm: accept only that one, if it fits the key
			ok := false
			for _, m := range methods {
				ok = ok || m == k.Alg
			}
			if !ok {
				continue
			}
			methods = []string{k.Alg}
		}
		out = append(out, Key{ID: k.Kid, Key: pub, Methods: methods})
	}
	return out
}

func (k jwk) public() (any, error) {
	b := func(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
	switch k.Kty {
	case "RSA":
		n, err1 := b(k.N)
		e, err2 := b(k.E)
		if err := errors.Join(err1, err2); err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return nil, errors.New("unsupported curve")
		}
		x, err1 := b(k.X)
		y, err2 := b(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		// Build the uncompressed point and let the standard library check it is on the curve.
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinates")
		}
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	case "OKP":
		x, err := b(k.X)
		if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported kty %q", k.Kty)
}
