package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLen bounds a token before any parsing: a header can carry 64 KiB, and a JWT with
// a few hundred rights fits in a fraction of that.
const MaxTokenLen = 16 << 10

// Claims is the payload Herald reads: the registered claims, with sub as the identity, and
// the rights under "herald".
type Claims struct {
	jwt.RegisteredClaims
	Herald *Rights `json:"herald,omitempty"`
}

// Key is one verification key, pinned to the algorithms its type allows.
type Key struct {
	ID      string   // kid; "" means it verifies tokens with any kid or none
	Key     any      // []byte (HMAC), *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	Methods []string // algorithms accepted with this key; nil means those of its type
}

// methodsFor returns the algorithms a key type may verify. Pinning the algorithm to the key
// type is what defeats key confusion: an RSA public key is never used as an HMAC secret.
func methodsFor(key any) ([]string, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) < 32 {
			return nil, errors.New("HMAC secret shorter than 32 bytes")
		}
		return []string{"HS256", "HS384", "HS512"}, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
		return []string{"RS256", "RS384", "RS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		}
		return nil, fmt.Errorf("unsupported EC curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// ParsePublicKey reads a PEM public key (PKIX "PUBLIC KEY", "RSA PUBLIC KEY" or a
// certificate).
func ParsePublicKey(pemBytes []byte) (any, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key (private keys do not belong on the server)", block.Type)
}

// verify checks a JWT and returns its grant.
func (a *Authenticator) verify(ctx context.Context, token string) (*Grant, error) {
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	var claims Claims
	_, err := a.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		return a.keysFor(ctx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	g := &Grant{Subject: claims.Subject, Kind: "token", Rate: a.cfg.TokenRate, Burst: a.cfg.TokenBurst}
	if claims.Herald != nil {
		if err := claims.Herald.Validate(); err != nil {
			return nil, fmt.Errorf("%w: herald claim: %v", ErrInvalidToken, err)
		}
		g.Rights = *claims.Herald
	}
	if claims.ExpiresAt != nil {
		g.Expires = claims.ExpiresAt.Time
	}
	return g, nil
}

// reason names why a token failed without echoing any of it.
func reason(err error) string {
	for _, e := range []struct {
		err  error
		text string
	}{
		{jwt.ErrTokenMalformed, "malformed"},
		{jwt.ErrTokenUnverifiable, "unverifiable (unknown key or algorithm)"},
		{jwt.ErrTokenSignatureInvalid, "bad signature"},
		{jwt.ErrTokenRequiredClaimMissing, "a required claim is missing"},
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "used before issued"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{errUnknownKey, "no key for this kid and algorithm"},
	} {
		if errors.Is(err, e.err) {
			return e.text
		}
	}
	return "invalid"
}

var errUnknownKey = errors.New("no matching key")

// keysFor selects the keys that may verify t: its kid must match (keys without an id match
// any kid) and its alg must be one pinned to the key. A kid only ever selects among keys
// already loaded: it is never a path, a URL or a query.
func (a *Authenticator) keysFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	pick := func(keys []Key) []jwt.VerificationKey {
		var out []jwt.VerificationKey
		for _, k := range keys {
			if (k.ID == "" || k.ID == kid) && slices.Contains(k.Methods, alg) {
				out = append(out, k.Key)
			}
		}
		return out
	}
	found := pick(a.static)
	if a.jwks != nil {
		found = append(found, pick(a.jwks.keys(ctx, kid))...)
	}
	if len(found) == 0 {
		return nil, errUnknownKey
	}
	return jwt.VerificationKeySet{Keys: found}, nil
}

// Mint signs a token for development and tests (`herald token`): HS256 with secret.
func Mint(secret []byte, subject string, rights Rights, ttl time.Duration, now time.Time) (string, error) {
	if err := rights.Validate(); err != nil {
		return "", err
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Herald: &rights,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
