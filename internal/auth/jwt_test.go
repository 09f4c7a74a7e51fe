package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secret  = []byte("0123456789abcdef0123456789abcdef")
	rsaKey  = mustRSA()
	ecKey   = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	ec384   = must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	edPub   ed25519.PublicKey
	edKey   ed25519.PrivateKey
	testNow = time.Unix(1_800_000_000, 0)
)

func init() { edPub, edKey, _ = ed25519.GenerateKey(rand.Reader) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustRSA() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) }

func claims(mut func(c *Claims)) *Claims {
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "17",
			ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour)),
			IssuedAt:  jwt.NewNumericDate(testNow),
		},
		Herald: &Rights{Subscribe: []string{"users/17/**"}, Publish: []string{"chat/*"}},
	}
	if mut != nil {
		mut(c)
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c *Claims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newAuth(t testing.TB, mut func(c *Config)) *Authenticator {
	t.Helper()
	cfg := Config{
		Keys: []Key{
			{Key: secret},
			{ID: "rsa1", Key: &rsaKey.PublicKey},
			{Key: &ecKey.PublicKey},
			{Key: &ec384.PublicKey},
			{Key: edPub},
		},
		Leeway: 5 * time.Second,
		Now:    func() time.Time { return testNow },
	}
	if mut != nil {
		mut(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTokenAlgorithms(t *testing.T) {
	a := newAuth(t, nil)
	tests := []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"HS256", jwt.SigningMethodHS256, secret, ""},
		{"HS384", jwt.SigningMethodHS384, secret, ""},
		{"HS512", jwt.SigningMethodHS512, secret, ""},
		{"RS256", jwt.SigningMethodRS256, rsaKey, "rsa1"},
		{"RS384", jwt.SigningMethodRS384, rsaKey, "rsa1"},
		{"RS512", jwt.SigningMethodRS512, rsaKey, "rsa1"},
		{"ES256", jwt.SigningMethodES256, ecKey, ""},
		{"ES384", jwt.SigningMethodES384, ec384, ""},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := a.Authenticate(context.Background(), sign(t, tt.method, tt.key, claims(nil), tt.kid))
			if err != nil {
				t.Fatal(err)
			}
			if g.Subject != "17" || !g.Expires.Equal(testNow.Add(time.Hour)) {
				t.Errorf("grant = %+v, want sub 17 expiring at %v", g, testNow.Add(time.Hour))
			}
			if err := g.CanSubscribe([]string{"users/17/inbox", "users/17/*"}); err != nil {
				t.Error(err)
			}
			if err := g.CanSubscribe([]string{"users/**"}); !errors.Is(err, ErrForbidden) {
				t.Errorf("escalation users/** = %v, want ErrForbidden", err)
			}
			if err := g.CanPublish([]string{"chat/lobby"}); err != nil {
				t.Error(err)
			}
		})
	}
}

// none signs nothing: the "alg: none" token.
func none(c *Claims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, c)
	s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	return s
}

// hsWithPublicKey is the key-confusion attack: HS256 keyed with the server's RSA public key.
func hsWithPublicKey(t testing.TB) string {
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return sign(t, jwt.SigningMethodHS256, pemKey, claims(nil), "rsa1")
}

func TestTokenAttacks(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.Issuer = "https://id.example"; c.Audience = "herald" })
	good := func(c *Claims) {
		c.Issuer = "https://id.example"
		c.Audience = jwt.ClaimStrings{"herald"}
	}
	with := func(f func(c *Claims)) *Claims { return claims(func(c *Claims) { good(c); f(c) }) }
	valid := sign(t, jwt.SigningMethodHS256, secret, with(func(*Claims) {}), "")
	parts := strings.Split(valid, ".")
	other := mustRSA()

	tests := []struct {
		name, token, want string
	}{
		{"alg none", none(with(func(*Claims) {})), "bad signature"},
		{"alg none, no signature dot", parts[0] + "." + parts[1], "unknown key"},
		{"HS256 keyed with the RSA public key", hsWithPublicKey(t), "bad signature"},
		{"forged signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("forged-signature-forged-signatur")), "bad signature"},
		{"payload swapped", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"1","exp":1900000000,"herald":{"subscribe":["**"]},"iss":"https://id.example","aud":"herald"}`)) + "." + parts[2], "bad signature"},
		{"RS256 by another key", sign(t, jwt.SigningMethodRS256, other, with(func(*Claims) {}), "rsa1"), "bad signature"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-time.Minute)) }), ""), "expired"},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.ExpiresAt = nil }), ""), "required claim"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(testNow.Add(time.Minute)) }), ""), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(testNow.Add(time.Minute)) }), ""), "before issued"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }), ""), "wrong audience"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.Issuer = "https://evil.example" }), ""), "wrong issuer"},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.Subject = "" }), ""), "no sub"},
		{"bad right in claim", sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.Herald.Subscribe = []string{"a/**/b"} }), ""), "herald claim"},
		{"kid path traversal", sign(t, jwt.SigningMethodRS256, rsaKey, with(func(*Claims) {}), "../../../../etc/passwd"), "unverifiable"},
		{"kid of the RSA key on an HS token", sign(t, jwt.SigningMethodHS256, []byte("attacker-chosen-secret-32-bytes!"), with(func(*Claims) {}), "rsa1"), "bad signature"},
		{"kid injection", sign(t, jwt.SigningMethodRS256, rsaKey, with(func(*Claims) {}), "x' OR '1'='1"), "unverifiable"},
		{"garbage", "a.b.c", "malformed"},
		{"too long", strings.Repeat("a", MaxTokenLen) + ".b.c", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := a.Authenticate(context.Background(), tt.token)
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Authenticate = %+v, %v; want ErrInvalidToken mentioning %q", g, err, tt.want)
			}
			if strings.Contains(err.Error(), tt.token[:min(len(tt.token), 20)]) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
	if _, err := a.Authenticate(context.Background(), valid); err != nil {
		t.Fatalf("the control token fails: %v", err)
	}
	// Leeway: a token that expired 3s ago still passes with 5s of leeway.
	late := sign(t, jwt.SigningMethodHS256, secret, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-3 * time.Second)) }), "")
	if _, err := a.Authenticate(context.Background(), late); err != nil {
		t.Errorf("token 3s past exp with 5s leeway: %v", err)
	}
}

func TestAPIKeys(t *testing.T) {
	a := newAuth(t, func(c *Config) {
		c.APIKeys = []APIKey{
			{Name: "all", Secret: "hk_full-rights-key-123", Rights: Rights{Subscribe: []string{"**"}, Publish: []string{"**"}}},
			{Name: "orders", Secret: "hk_orders-only-key-456", Rights: Rights{Publish: []string{"orders/**"}}, Rate: 10},
		}
		c.Anonymous = Rights{Subscribe: []string{"public/**"}}
	})
	g, err := a.Authenticate(context.Background(), "hk_orders-only-key-456")
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject != "key:orders" || g.Rate != 10 || g.Burst != 20 {
		t.Errorf("grant = %+v, want key:orders rate 10 burst 20", g)
	}
	if err := g.CanPublish([]string{"orders/1", "news"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("publish to news with an orders key = %v, want ErrForbidden", err)
	}
	if err := g.CanSubscribe([]string{"orders/1"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("subscribe with a publish-only key = %v, want ErrForbidden", err)
	}
	if _, err := a.Authenticate(context.Background(), "hk_unknown"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown key = %v, want ErrInvalidToken", err)
	}
	anon := a.Anonymous()
	if err := anon.CanSubscribe([]string{"public/news", "public/**"}); err != nil {
		t.Error(err)
	}
	if err := anon.CanSubscribe([]string{"**"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("anonymous ** = %v, want ErrForbidden", err)
	}
	for _, bad := range []Config{
		{APIKeys: []APIKey{{Name: "short", Secret: "x"}}},
		{Keys: []Key{{Key: []byte("short")}}},
		{Keys: []Key{{Key: secret, Methods: []string{"RS256"}}}},
		{Anonymous: Rights{Subscribe: []string{"a//b"}}},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted a bad configuration", bad)
		}
	}
}

func TestPythonClientToken(t *testing.T) {
	// The shape the Python client mints (PyJWT, HS256): header {"alg":"HS256","typ":"JWT"},
	// integer exp and iat, rights under "herald".
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"17","exp":1800003600,"iat":1800000000,"herald":{"subscribe":["orders/42","users/17/**"],"publish":["chat/*"]}}`))
	sig, _ := jwt.SigningMethodHS256.Sign(h+"."+p, secret)
	g, err := newAuth(t, nil).Authenticate(context.Background(), h+"."+p+"."+base64.RawURLEncoding.EncodeToString(sig))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CanSubscribe([]string{"orders/42", "users/17/a"}); err != nil {
		t.Error(err)
	}
}

func jwkOf(kid string, pub crypto.PublicKey, alg string) map[string]string {
	b := func(x []byte) string { return base64.RawURLEncoding.EncodeToString(x) }
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "alg": alg, "n": b(k.N.Bytes()), "e": b(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, _ := k.Bytes()
		n := (len(raw) - 1) / 2
		return map[string]string{"kty": "EC", "kid": kid, "alg": alg, "crv": k.Curve.Params().Name, "x": b(raw[1 : 1+n]), "y": b(raw[1+n:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b(k)}
	}
	panic("unknown key")
}

func TestJWKSRotation(t *testing.T) {
	var set atomic.Value
	var fetches atomic.Int32
	publish := func(keys ...map[string]string) { set.Store(keys) }
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"keys": set.Load()})
	}))
	defer ts.Close()

	now := testNow
	clock := func() time.Time { return now }
	a, err := New(Config{JWKSURL: ts.URL, JWKSRefresh: time.Hour, JWKSMinWait: 30 * time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := rsaKey, mustRSA()
	publish(jwkOf("k1", &k1.PublicKey, "RS256"), jwkOf("e1", &ecKey.PublicKey, "ES256"), jwkOf("d1", edPub, ""))
	ctx := context.Background()
	for _, tok := range []string{
		sign(t, jwt.SigningMethodRS256, k1, claims(nil), "k1"),
		sign(t, jwt.SigningMethodES256, ecKey, claims(nil), "e1"),
		sign(t, jwt.SigningMethodEdDSA, edKey, claims(nil), "d1"),
	} {
		if _, err := a.Authenticate(ctx, tok); err != nil {
			t.Fatalf("token from the first set: %v", err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1 (cached)", n)
	}
	// The alg pinned in the set wins: k1 is RS256 only.
	if _, err := a.Authenticate(ctx, sign(t, jwt.SigningMethodRS512, k1, claims(nil), "k1")); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("RS512 with a key pinned to RS256 = %v, want ErrInvalidToken", err)
	}

	// Rotation: k2 appears. A token with the new kid triggers a refetch once minWait passed.
	publish(jwkOf("k2", &k2.PublicKey, "RS256"))
	tok2 := sign(t, jwt.SigningMethodRS256, k2, claims(nil), "k2")
	if _, err := a.Authenticate(ctx, tok2); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown kid within minWait = %v, want refusal without fetch", err)
	}
	for range 100 { // made-up kids do not cause fetches
		a.Authenticate(ctx, sign(t, jwt.SigningMethodRS256, k2, claims(nil), "made-up"))
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetches after unknown kids within minWait = %d, want 1", n)
	}
	now = now.Add(31 * time.Second)
	if _, err := a.Authenticate(ctx, tok2); err != nil {
		t.Errorf("rotated key after minWait: %v", err)
	}
	if _, err := a.Authenticate(ctx, sign(t, jwt.SigningMethodRS256, k1, claims(nil), "k1")); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("retired key k1 = %v, want ErrInvalidToken", err)
	}
	// The provider fails: known keys stay valid.
	publish()
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) })
	now = now.Add(2 * time.Hour)
	if _, err := a.Authenticate(ctx, sign(t, jwt.SigningMethodRS256, k2, claims(func(c *Claims) {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
		c.IssuedAt = jwt.NewNumericDate(now)
	}), "k2")); err != nil {
		t.Errorf("JWKS down, cached key: %v", err)
	}
}

func TestMint(t *testing.T) {
	tok, err := Mint(secret, "17", Rights{Subscribe: []string{"users/17/**"}}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newAuth(t, nil).Authenticate(context.Background(), tok)
	if err != nil || g.Subject != "17" || g.Rights.Subscribe[0] != "users/17/**" {
		t.Fatalf("minted token: %+v, %v", g, err)
	}
}
