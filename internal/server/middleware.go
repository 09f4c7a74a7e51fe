package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-push/herald/internal/auth"
	"github.com/herald-push/herald/internal/sse"
)

// Limits bound what one client can take from the server. Zero values mean no limit.
type Limits struct {
	ConnsPerIP       int           // open streaming connections per client address
	ConnsPerIdentity int           // open streaming connections per token subject or key
	Handshakes       int           // subscriptions being set up at once (history replay included)
	HandshakeWait    time.Duration // how long a new connection may queue for a setup slot; 0 means 1s
	// TrustedProxies are the addresses whose X-Forwarded-For is believed (nginx in front):
	// a connection from one of them counts against the client address it forwards.
	TrustedProxies []netip.Prefix
}

// access is the server's authentication and admission state.
type access struct {
	auth    *auth.Authenticator
	origins map[string]bool
	anyOrig bool // "*" listed: any origin may read, without credentials

	mu     sync.Mutex
	perIP  map[string]int
	perID  map[string]int
	setups chan struct{} // nil: unlimited
	rates  rates
}

func (s *Server) setupAccess() {
	if s.cfg.Cookie == "" {
		s.cfg.Cookie = "herald_token"
	}
	if s.cfg.CORSMaxAge <= 0 {
		s.cfg.CORSMaxAge = 10 * time.Minute
	}
	if s.cfg.Limits.HandshakeWait <= 0 {
		s.cfg.Limits.HandshakeWait = time.Second
	}
	s.auth = s.cfg.Auth
	if s.auth == nil {
		keys := make([]auth.APIKey, len(s.cfg.PublishKeys))
		for i, k := range s.cfg.PublishKeys {
			keys[i] = auth.APIKey{Name: "publisher" + strconv.Itoa(i+1), Secret: k, Rights: auth.Rights{Subscribe: []string{"**"}, Publish: []string{"**"}}}
		}
		a, err := auth.New(auth.Config{APIKeys: keys, Anonymous: auth.Rights{Subscribe: []string{"**"}}})
		if err != nil {
			panic("server: " + err.Error()) // only a key shorter than 16 characters gets here
		}
		s.auth = a
	}
	s.origins = map[string]bool{}
	for _, o := range s.cfg.Origins {
		if o == "*" {
			s.anyOrig = true
			continue
		}
		s.origins[strings.TrimRight(o, "/")] = true
	}
	s.perIP, s.perID = map[string]int{}, map[string]int{}
	if n := s.cfg.Limits.Handshakes; n > 0 {
		s.setups = make(chan struct{}, n)
	}
	s.rates.buckets = map[string]*bucket{}
}

// cors answers preflights and adds CORS headers for allowed origins. Only exact origins from
// the allow-list get Access-Control-Allow-Credentials; an arbitrary Origin is never
// reflected. "*" in the list lets any page read anonymous streams, without cookies.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := origin != "" && s.origins[origin]
		switch {
		case allowed:
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		case origin != "" && s.anyOrig:
			h.Set("Access-Control-Allow-Origin", "*")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed && !s.anyOrig {
				s.writeError(w, r, fmt.Errorf("%w: %q is not in cors.allowed_origins", ErrOrigin, origin))
				return
			}
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Idempotency-Key")
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(s.cfg.CORSMaxAge.Seconds())))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if origin != "" && (allowed || s.anyOrig) {
			h.Set("Access-Control-Expose-Headers", "Retry-After")
		}
		next.ServeHTTP(w, r)
	})
}

// admission is what one streaming connection holds; admit releases it when the handler ends.
type admission struct {
	mu        sync.Mutex
	release   []func()
	identity  bool   // counted against an identity already
	setupDone func() // frees the setup slot; also called at the first write
}

type admissionKey struct{}

// admit wraps a streaming handler (SSE, WebSocket, long poll): it counts the connection
// against its client address, and holds a setup slot until the handler first writes (or
// hijacks), so that a reconnect storm queues instead of replaying history all at once.
func (s *Server) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		adm := &admission{}
		defer func() {
			adm.mu.Lock()
			defer adm.mu.Unlock()
			for _, f := range adm.release {
				f()
			}
		}()
		ip := s.clientIP(r)
		if !s.count(s.perIP, ip, s.cfg.Limits.ConnsPerIP, adm) {
			s.overloaded(w, r, fmt.Errorf("%w: more than %d from %s", ErrOverloaded, s.cfg.Limits.ConnsPerIP, ip))
			return
		}
		if s.setups != nil {
			t := time.NewTimer(s.cfg.Limits.HandshakeWait)
			select {
			case s.setups <- struct{}{}:
				t.Stop()
			case <-t.C:
				s.overloaded(w, r, fmt.Errorf("%w: too many connections being set up", ErrOverloaded))
				return
			case <-r.Context().Done():
				t.Stop()
				return
			}
			var once sync.Once
			free := func() { once.Do(func() { <-s.setups }) }
			adm.release = append(adm.release, free)
			adm.setupDone = free
			w = &setupWriter{ResponseWriter: w, done: free}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), admissionKey{}, adm)))
	})
}

// setupDone frees the request's setup slot before its first write: a long poll that has
// subscribed and waits for news must not hold a slot that a reconnect storm needs.
func setupDone(r *http.Request) {
	if adm, _ := r.Context().Value(admissionKey{}).(*admission); adm != nil && adm.setupDone != nil {
		adm.setupDone()
	}
}

// admitIdentity counts a streaming connection against its identity. Anonymous connections
// are bounded by address only.
func (s *Server) admitIdentity(ctx context.Context, id string) error {
	adm, _ := ctx.Value(admissionKey{}).(*admission)
	if adm == nil || id == "" {
		return nil
	}
	adm.mu.Lock()
	defer adm.mu.Unlock()
	if adm.identity {
		return nil
	}
	if !s.countLocked(s.perID, id, s.cfg.Limits.ConnsPerIdentity, adm) {
		return fmt.Errorf("%w: more than %d for one identity", ErrOverloaded, s.cfg.Limits.ConnsPerIdentity)
	}
	adm.identity = true
	return nil
}

func (s *Server) count(m map[string]int, key string, limit int, adm *admission) bool {
	adm.mu.Lock()
	defer adm.mu.Unlock()
	return s.countLocked(m, key, limit, adm)
}

// countLocked adds one to m[key] unless that passes limit; adm.mu is held.
func (s *Server) countLocked(m map[string]int, key string, limit int, adm *admission) bool {
	if limit <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m[key] >= limit {
		return false
	}
	m[key]++
	adm.release = append(adm.release, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if m[key]--; m[key] <= 0 {
			delete(m, key)
		}
	})
	return true
}

// clientIP is the address a connection counts against and is logged as. A peer that is a
// trusted proxy is replaced by the rightmost X-Forwarded-For address that is not itself a
// trusted proxy: addresses to the left of it were written by the client and prove nothing.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: stop at the last address we could trust
		}
		if !s.trusted(a) {
			return a.Unmap().String()
		}
		host = a.Unmap().String()
	}
	return host
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.Limits.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// overloaded refuses a connection for now. On the SSE route it answers 200 with a jittered
// retry: any other status makes EventSource stop for good, and a storm must spread out, not
// end. Other routes get 503 with Retry-After.
func (s *Server) overloaded(w http.ResponseWriter, r *http.Request, err error) {
	if !isEventStream(r) {
		s.writeError(w, r, err)
		return
	}
	retry := s.cfg.Retry
	if retry <= 0 {
		retry = 2 * time.Second
	}
	retry += rand.N(4 * retry) // [Retry, 5*Retry): spread the herd
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(sse.AppendRetry(sse.AppendComment(nil, "overloaded: "+err.Error()), retry))
}

// failSSE answers an error before an SSE stream starts. Overload is a 200 with retry advice;
// a cookie from a foreign page gets 204, which tells EventSource to stop reconnecting (no
// retry can help it); everything else is the JSON error of writeError (a 401 or 403 also
// stops EventSource, deliberately: the page must get a new token first).
func (s *Server) failSSE(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrOverloaded):
		s.overloaded(w, r, err)
	case errors.Is(err, ErrOrigin):
		w.WriteHeader(http.StatusNoContent)
	default:
		s.writeError(w, r, err)
	}
}

func isEventStream(r *http.Request) bool {
	return r.URL.Path == "/events"
}

// setupWriter frees the setup slot at the first byte out (or the hijack): from then on the
// subscription is registered and the connection costs only its queue.
type setupWriter struct {
	http.ResponseWriter
	done func()
}

func (w *setupWriter) WriteHeader(code int)        { w.done(); w.ResponseWriter.WriteHeader(code) }
func (w *setupWriter) Write(b []byte) (int, error) { w.done(); return w.ResponseWriter.Write(b) }
func (w *setupWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *setupWriter) Flush() {
	w.done()
	http.NewResponseController(w.ResponseWriter).Flush()
}
func (w *setupWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.done()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// retryError carries how long a client should wait.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retryAfter is the Retry-After of err in whole seconds, at least 1.
func retryAfter(err error) int {
	var re *retryError
	if errors.As(err, &re) {
		return max(1, int(math.Ceil(re.after.Seconds())))
	}
	return 2
}

// rates holds one token bucket per publishing identity.
type rates struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token of key's bucket and returns 0, or how long until one is available.
func (r *rates) take(key string, rate float64, burst int, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if burst < 1 {
		burst = max(1, int(2*rate))
	}
	b := r.buckets[key]
	if b == nil {
		if len(r.buckets) >= 100_000 { // forget idle buckets rather than grow without bound
			for k, v := range r.buckets {
				if now.Sub(v.last) > time.Minute {
					delete(r.buckets, k)
				}
			}
		}
		b = &bucket{tokens: float64(burst), last: now}
		r.buckets[key] = b
	}
	b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// detach moves a streaming connection's admission out of admit, for a transport that keeps
// the connection after its handler returns (the SSE writer pool, WebSocket): the returned
// func releases it when the connection really ends.
func detach(r *http.Request) func() {
	adm, _ := r.Context().Value(admissionKey{}).(*admission)
	if adm == nil {
		return func() {}
	}
	adm.mu.Lock()
	release := adm.release
	adm.release = nil
	adm.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, f := range release {
				f()
			}
		})
	}
}
