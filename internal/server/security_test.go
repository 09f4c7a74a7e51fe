package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-push/herald/internal/auth"
	. "github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
)

var (
	testSecret = []byte("security-test-secret-0123456789abcdef")
	testRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
)

// secureServer is a server configured as in production: tokens required for private topics,
// public/** open, one allowed origin, a publish rate for tokens.
func secureServer(t *testing.T, limits server.Limits) *Server {
	t.Helper()
	a, err := auth.New(auth.Config{
		Keys:      []auth.Key{{Key: testSecret}, {ID: "rsa1", Key: &testRSA.PublicKey}},
		Audience:  "herald",
		Leeway:    time.Second,
		APIKeys:   []auth.APIKey{{Name: "test", Secret: Key, Rights: auth.Rights{Subscribe: []string{"**"}, Publish: []string{"**"}}}},
		Anonymous: auth.Rights{Subscribe: []string{"public/**"}},
		TokenRate: 1, TokenBurst: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(t, Options{
		Hub: hub.Config{MaxData: 1000, MaxFilters: 8},
		Server: server.Config{
			Auth: a, MaxBody: 4096, QueryToken: true,
			Origins: []string{"https://app.example"},
			Limits:  limits,
		},
	})
}

type tok struct {
	method jwt.SigningMethod
	key    any
	kid    string
	mut    func(c *auth.Claims)
}

func (k tok) sign(t *testing.T) string {
	t.Helper()
	now := time.Now()
	c := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: "17", Audience: jwt.ClaimStrings{"herald"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
		},
		Herald: &auth.Rights{Subscribe: []string{"users/17/**", "orders/42"}, Publish: []string{"chat/*"}},
	}
	if k.mut != nil {
		k.mut(c)
	}
	if k.method == nil {
		k.method, k.key = jwt.SigningMethodHS256, testSecret
	}
	j := jwt.NewWithClaims(k.method, c)
	if k.kid != "" {
		j.Header["kid"] = k.kid
	}
	s, err := j.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearer(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }

// get opens path and returns the status, the headers and at most the first 4 KiB of the body
// (streams are cut there).
func get(t *testing.T, method, u string, h http.Header, body string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b []byte
	if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf) // the first flush: retry advice and any gap
		b = buf[:n]
	} else {
		b, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestAttacks(t *testing.T) {
	srv := secureServer(t, server.Limits{})
	control := srv.SSE(t, "/events?topic=public/control", "")
	valid := tok{}.sign(t)
	parts := strings.Split(valid, ".")
	der, _ := x509.MarshalPKIXPublicKey(&testRSA.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "17", "aud": "herald", "exp": time.Now().Add(time.Hour).Unix(), "herald": map[string]any{"subscribe": []string{"**"}}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	ev := "/events?topic="
	evil := "https://evil.example"

	tests := []struct {
		name         string
		method, path string
		header       http.Header
		body         string
		status       int
		want         string // in the body, or a header "Name: value"
	}{
		{"alg none", "GET", ev + "users/17/a", bearer(noneTok), "", 401, "unauthorized"},
		{"HS256 keyed with the RSA public key", "GET", ev + "users/17/a", bearer(tok{jwt.SigningMethodHS256, pubPEM, "rsa1", nil}.sign(t)), "", 401, `Www-Authenticate: Bearer realm="herald", error="invalid_token"`},
		{"forged signature", "GET", ev + "users/17/a", bearer(parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))), "", 401, "bad signature"},
		{"RS256 signed by another key", "GET", ev + "users/17/a", bearer(tok{jwt.SigningMethodRS256, other, "rsa1", nil}.sign(t)), "", 401, "bad signature"},
		{"expired", "GET", ev + "users/17/a", bearer(tok{mut: func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }}.sign(t)), "", 401, "expired"},
		{"not yet valid", "GET", ev + "users/17/a", bearer(tok{mut: func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }}.sign(t)), "", 401, "not valid yet"},
		{"wrong audience", "GET", ev + "users/17/a", bearer(tok{mut: func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"billing"} }}.sign(t)), "", 401, "wrong audience"},
		{"kid path traversal", "GET", ev + "users/17/a", bearer(tok{jwt.SigningMethodRS256, testRSA, "../../etc/passwd", nil}.sign(t)), "", 401, "unauthorized"},
		{"Basic credentials", "GET", ev + "public/a", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, "", 401, "unauthorized"},
		{"pattern escalation", "GET", ev + "users/**", bearer(valid), "", 403, `may not subscribe to \"users/**\"`},
		{"escalation hidden among allowed topics", "GET", ev + "users/17/a&topic=orders/*", bearer(valid), "", 403, "forbidden"},
		{"history escalation", "GET", "/history?topic=users/*/inbox", bearer(valid), "", 403, "forbidden"},
		{"anonymous private topic", "GET", ev + "users/17/a", nil, "", 401, "needs a token"},
		{"anonymous history of a private topic", "GET", "/history?topic=orders/42", nil, "", 401, "unauthorized"},
		{"anonymous **", "GET", ev + "**", nil, "", 401, "unauthorized"},
		{"publish outside rights", "POST", "/publish", bearer(valid), `topic=orders/42&data=x`, 403, "may not publish"},
		{"anonymous publish", "POST", "/publish", nil, `topic=public/control&data=x`, 401, "unauthorized"},
		{"CR LF in topic", "POST", "/publish", Auth(), "topic=a%0d%0aevent:%20x&data=x", 400, "bad_topic"},
		{"NUL in topic", "GET", ev + "a%00b", nil, "", 400, "bad_topic"},
		{"LF in event", "POST", "/publish", Auth(), "topic=public/a&event=x%0adata:%20injected&data=x", 400, "bad_event"},
		{"CR LF in last id", "GET", ev + "public/a&lastEventId=1%0d%0aevent:%20injected", nil, "", 200, "retry:"},
		{"oversized body", "POST", "/publish", http.Header{"Authorization": Auth()["Authorization"], "Content-Type": {"application/json"}}, `{"topic":"public/a","data":"` + strings.Repeat("x", 5000) + `"}`, 413, "too_large"},
		{"oversized form body", "POST", "/publish", Auth(), "topic=public/a&data=" + strings.Repeat("x", 5000), 413, "too_large"},
		{"oversized message", "POST", "/publish", Auth(), "topic=public/a&data=" + strings.Repeat("x", 1001), 413, "too_large"},
		{"oversized topic list", "GET", ev + "public/1&topic=public/2&topic=public/3&topic=public/4&topic=public/5&topic=public/6&topic=public/7&topic=public/8&topic=public/9", nil, "", 400, "too_many"},
		{"oversized token", "GET", ev + "users/17/a", bearer(strings.Repeat("a", 20000) + ".b.c"), "", 401, "longer than"},
		{"oversized header", "GET", ev + "public/a", http.Header{"X-Big": {strings.Repeat("h", 2<<20)}}, "", 431, ""},
		{"preflight from an unknown origin", "OPTIONS", "/publish", http.Header{"Origin": {evil}, "Access-Control-Request-Method": {"POST"}}, "", 403, "origin"},
		{"preflight from the allowed origin", "OPTIONS", "/publish", http.Header{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization"}}, "", 204, "Access-Control-Allow-Origin: https://app.example"},
		{"unknown origin is not reflected", "GET", "/history?topic=public/a", http.Header{"Origin": {evil}}, "", 200, "Access-Control-Allow-Origin: "},
		{"cross-site cookie publish (CSRF)", "POST", "/publish", http.Header{"Origin": {evil}, "Cookie": {"herald_token=" + Key}}, "topic=public/a&data=x", 403, "origin"},
		{"cross-site cookie stream gets 204 (EventSource stops)", "GET", ev + "users/17/a", http.Header{"Origin": {evil}, "Cookie": {"herald_token=" + valid}}, "", 204, ""},
		{"same-site cookie stream", "GET", ev + "users/17/a", http.Header{"Origin": {"https://app.example"}, "Cookie": {"herald_token=" + valid}}, "", 200, "retry:"},
		{"query token", "GET", ev + "users/17/a&token=" + url.QueryEscape(valid), nil, "", 200, "retry:"},
		{"allowed topics", "GET", ev + "users/17/a&topic=users/17/*&topic=orders/42", bearer(valid), "", 200, "retry:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := get(t, tt.method, srv.URL+tt.path, tt.header, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d; body %s", code, tt.status, body)
			}
			if name, value, isHeader := strings.Cut(tt.want, ": "); isHeader && strings.HasPrefix(name, "Access-Control") || isHeader && name == "Www-Authenticate" {
				if got := h.Get(name); got != value {
					t.Errorf("%s = %q, want %q", name, got, value)
				}
			} else if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not contain %q", body, tt.want)
			}
			if strings.Contains(body, "\nevent: injected") || strings.Contains(body, "\r") {
				t.Errorf("body %q carries an injected field", body)
			}
			if code >= 400 && code != 431 && !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("error with Content-Type %q, want JSON", h.Get("Content-Type"))
			}
		})
	}

	// The control subscriber was not disturbed by any of it.
	id := srv.Publish(t, "public/control", "still here")
	if e := control.Next(t); e.ID != id || e.Data != "still here" {
		t.Errorf("control received %+v, want id %s data %q", e, id, "still here")
	}
}

func TestPublishRate(t *testing.T) {
	srv := secureServer(t, server.Limits{})
	h := bearer(tok{}.sign(t))
	if code, _, body := get(t, "POST", srv.URL+"/publish", h, "topic=chat/a&data=1"); code != 200 {
		t.Fatalf("first publish: %d %s", code, body)
	}
	code, hd, body := get(t, "POST", srv.URL+"/publish", h, "topic=chat/a&data=2")
	if code != 429 || hd.Get("Retry-After") != "1" || !strings.Contains(body, "rate_limited") {
		t.Errorf("second publish at 1/s: %d Retry-After %q %s, want 429 with Retry-After 1", code, hd.Get("Retry-After"), body)
	}
	// API keys without a rate are not limited.
	for i := range 5 {
		if code, _, body := get(t, "POST", srv.URL+"/publish", Auth(), "topic=chat/a&data=k"); code != 200 {
			t.Fatalf("key publish %d: %d %s", i, code, body)
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	srv := secureServer(t, server.Limits{ConnsPerIP: 3, ConnsPerIdentity: 1})
	a := srv.SSE(t, "/events?topic=public/a", "")
	tokHeader := bearer(tok{}.sign(t))
	b := sseWith(t, srv.URL+"/events?topic=users/17/x", tokHeader)

	// Same identity again: refused for now, as SSE understands it: 200, retry advice, end.
	code, h, body := get(t, "GET", srv.URL+"/events?topic=users/17/y", tokHeader, "")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || !strings.Contains(body, "retry:") || !strings.Contains(body, "overloaded") {
		t.Errorf("second connection of one identity: %d %q %q, want 200 with retry advice", code, h.Get("Content-Type"), body)
	}
	c := srv.SSE(t, "/events?topic=public/c", "") // third from this address
	// A fourth from this address is refused the same way; history (not streaming) still works.
	code, _, body = get(t, "GET", srv.URL+"/events?topic=public/d", nil, "")
	if code != 200 || !strings.Contains(body, "overloaded") || !strings.Contains(body, "retry:") {
		t.Errorf("fourth connection from one address: %d %q, want 200 with retry advice", code, body)
	}
	if code, _, body := get(t, "GET", srv.URL+"/history?topic=public/a", nil, ""); code != 200 {
		t.Errorf("history while streams are at the limit: %d %s", code, body)
	}
	// The admitted streams are unaffected; closing one frees its place.
	id := srv.Publish(t, "public/a", "x")
	if e := a.Next(t); e.ID != id {
		t.Errorf("admitted stream got %+v, want %s", e, id)
	}
	b.Close()
	c.Close()
	waitFor(t, func() bool {
		code, _, body := get(t, "GET", srv.URL+"/events?topic=users/17/z", tokHeader, "")
		return code == 200 && !strings.Contains(body, "overloaded")
	})
}

func TestHandshakeAdmission(t *testing.T) {
	srv := secureServer(t, server.Limits{Handshakes: 1, HandshakeWait: time.Millisecond})
	// Slots are freed at the first byte: many sequential connections all get in.
	for i := range 20 {
		st := srv.SSE(t, "/events?topic=public/a", "")
		st.Close()
		_ = i
	}
}

// A long poll that waits for news has finished its setup: it must not hold the setup slot
// for its whole wait, or a few hundred waiting pollers would refuse everyone else.
func TestWaitingPollFreesSetupSlot(t *testing.T) {
	srv := secureServer(t, server.Limits{Handshakes: 1, HandshakeWait: time.Millisecond})
	held := make(chan int, 1)
	go func() {
		code, _ := Do(t, "GET", srv.URL+"/poll?topic=public/a&timeout=5", "", "", nil)
		held <- code
	}()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Hub.Subscribers() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	code, body := Do(t, "GET", srv.URL+"/poll?topic=public/a&timeout=0", "", "", nil)
	if code != 200 {
		t.Errorf("a poll next to a waiting one: %d %s, want 200", code, body)
	}
	srv.Publish(t, "public/a", "wake")
	if code := <-held; code != 200 {
		t.Errorf("the waiting poll answered %d, want 200", code)
	}
}

func TestStreamEndsAtExpiry(t *testing.T) {
	srv := secureServer(t, server.Limits{})
	h := bearer(tok{mut: func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Second)) }}.sign(t))
	st := sseWith(t, srv.URL+"/events?topic=users/17/a", h)
	var comment bool
	for {
		line, err := st.ReadString('\n')
		if strings.Contains(line, "token expired") {
			comment = true
		}
		if err != nil {
			break
		}
	}
	if !comment {
		t.Error("stream ended without the token expired comment")
	}
}

// sseWith opens a stream with headers and returns a line reader over it.
func sseWith(t *testing.T, u string, h http.Header) *lineStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("GET %s: %v %v", u, resp, err)
	}
	ls := &lineStream{resp: resp, cancel: cancel}
	t.Cleanup(ls.Close)
	return ls
}

type lineStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	buf    []byte
}

func (l *lineStream) Close() { l.cancel(); l.resp.Body.Close() }

func (l *lineStream) ReadString(delim byte) (string, error) {
	for {
		if i := strings.IndexByte(string(l.buf), delim); i >= 0 {
			s := string(l.buf[:i+1])
			l.buf = l.buf[i+1:]
			return s, nil
		}
		b := make([]byte, 512)
		n, err := l.resp.Body.Read(b)
		l.buf = append(l.buf, b[:n]...)
		if err != nil {
			return string(l.buf), err
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
