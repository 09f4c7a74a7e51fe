package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzClaims signs arbitrary payloads with the real secret: whatever the JSON, Authenticate
// must not panic, and a grant it returns has a subject, an expiry and only valid rights.
func FuzzClaims(f *testing.F) {
	f.Add(`{"sub":"17","exp":1800003600,"herald":{"subscribe":["users/17/**"],"publish":["chat/*"]}}`)
	f.Add(`{"sub":"17","exp":1800003600,"herald":{"subscribe":"users/17/**"}}`)
	f.Add(`{"sub":17,"exp":"soon"}`)
	f.Add(`{"sub":"x","exp":1800003600,"nbf":1e300,"aud":[1,2]}`)
	f.Add(`{"sub":"x","exp":1800003600,"herald":{"subscribe":["a/**/b","\u0000"]}}`)
	a := newAuth(f, nil)
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, payload string) {
		p := base64.RawURLEncoding.EncodeToString([]byte(payload))
		sig, _ := jwt.SigningMethodHS256.Sign(h+"."+p, secret)
		g, err := a.Authenticate(context.Background(), h+"."+p+"."+base64.RawURLEncoding.EncodeToString(sig))
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		if g.Subject == "" || g.Expires.IsZero() {
			t.Fatalf("accepted %s as %+v: want a subject and an expiry", payload, g)
		}
		if err := g.Rights.Validate(); err != nil {
			t.Fatalf("accepted %s with invalid rights: %v", payload, err)
		}
	})
}

// FuzzToken feeds arbitrary credentials: only errors, never a panic or a grant.
func FuzzToken(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
	f.Add("a.b.c")
	f.Add("hk_something")
	a := newAuth(f, nil)
	f.Fuzz(func(t *testing.T, tok string) {
		if g, err := a.Authenticate(context.Background(), tok); err == nil {
			t.Fatalf("accepted a random credential %q as %+v", tok, g)
		}
	})
}

// With only an RSA key configured, an HS256 token signed with that public key is refused
// before any verification: HS256 is not an accepted algorithm at all.
func TestKeyConfusionRSAOnly(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.Keys = []Key{{ID: "rsa1", Key: &rsaKey.PublicKey}} })
	if _, err := a.Authenticate(context.Background(), hsWithPublicKey(t)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("HS256 keyed with the RSA public key = %v, want ErrInvalidToken", err)
	}
}
