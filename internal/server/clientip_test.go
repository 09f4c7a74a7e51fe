package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{Limits: Limits{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
	}}}}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct client", "203.0.113.7:5000", "", "203.0.113.7"},
		{"direct client lying", "203.0.113.7:5000", "198.51.100.1", "203.0.113.7"},
		{"behind nginx", "127.0.0.1:5000", "198.51.100.1", "198.51.100.1"},
		{"client-written hops are ignored", "127.0.0.1:5000", "1.2.3.4, 198.51.100.1", "198.51.100.1"},
		{"two trusted proxies", "127.0.0.1:5000", "198.51.100.1, 10.1.2.3", "198.51.100.1"},
		{"proxy without header", "127.0.0.1:5000", "", "127.0.0.1"},
		{"garbage hop", "127.0.0.1:5000", "nonsense", "127.0.0.1"},
		{"ipv6 client", "127.0.0.1:5000", "2001:db8::1", "2001:db8::1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/events", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := s.clientIP(r); got != tt.want {
			t.Errorf("%s: clientIP = %q, want %q", tt.name, got, tt.want)
		}
	}
}
