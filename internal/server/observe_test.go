package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/internal/heraldtest"
	"github.com/herald-push/herald/internal/server"
	"github.com/herald-push/herald/web"
)

// scrape returns the samples of a Prometheus text exposition, keyed by "name{labels}".
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	code, body := heraldtest.Do(t, "GET", url, "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsContent(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Metrics: true, Engine: "memory", Version: "test"}})
	before := scrape(t, srv.URL+"/metrics")

	st := srv.SSE(t, "/events?topic=m/1", "")
	for i := range 3 {
		srv.Publish(t, "m/1", "payload-"+strconv.Itoa(i))
	}
	for range 3 {
		st.Next(t)
	}
	heraldtest.Do(t, "POST", srv.URL+"/publish", "application/json", `{"topic":"m/1","data":"x"}`, nil) // no key

	after := scrape(t, srv.URL+"/metrics")
	delta := func(k string) float64 { return after[k] - before[k] }
	for _, c := range []struct {
		key  string
		want float64
	}{
		{`herald_connections{transport="sse"}`, 1},
		{`herald_connections_total{transport="sse"}`, 1},
		{`herald_subscriptions`, 1},
		{`herald_messages_published_total`, 3},
		{`herald_messages_delivered_total`, 3},
		{`herald_publish_duration_seconds_count`, 3},
		{`herald_http_errors_total{code="unauthorized"}`, 1},
		{`herald_http_requests_total{route="POST /publish"}`, 4},
	} {
		if got := delta(c.key); got != c.want {
			t.Errorf("%s grew by %v, want %v", c.key, got, c.want)
		}
	}
	if got := delta(`herald_bytes_written_total{transport="sse"}`); got < float64(3*len("data: payload-0\n\n")) {
		t.Errorf("herald_bytes_written_total{sse} grew by %v, want at least the 3 events", got)
	}
	for _, k := range []string{`herald_engine_ready`, `herald_build_info{engine="memory",version="test"}`} {
		if after[k] != 1 {
			t.Errorf("%s = %v, want 1", k, after[k])
		}
	}

	// Ending the stream counts a disconnect by the client.
	st.Close()
	key := `herald_disconnects_total{reason="client",transport="sse"}`
	deadline := time.Now().Add(10 * time.Second)
	for now := scrape(t, srv.URL+"/metrics"); now[key]-before[key] != 1; now = scrape(t, srv.URL+"/metrics") {
		if time.Now().After(deadline) {
			t.Fatalf("%s grew by %v after the client left, want 1", key, now[key]-before[key])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsAreDocumented keeps docs/operations.md listing every herald_ metric, and checks
// that no metric carries a per-topic or per-user label.
func TestMetricsAreDocumented(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Metrics: true}})
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, body := heraldtest.Do(t, "GET", srv.URL+"/metrics", "", "", nil)
	names := regexp.MustCompile(`(?m)^# TYPE (herald_\w+)`).FindAllStringSubmatch(body, -1)
	if len(names) < 10 {
		t.Fatalf("found %d herald_ metrics, want at least 10", len(names))
	}
	for _, n := range names {
		if !bytes.Contains(doc, []byte("`"+n[1]+"`")) {
			t.Errorf("metric %s is not documented in docs/operations.md", n[1])
		}
	}
	if m := regexp.MustCompile(`herald_\w+\{[^}]*(topic|user|identity)=`).FindString(body); m != "" {
		t.Errorf("unbounded label in %s", m)
	}
}

func TestAdminListenerOnly(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Web: web.Handler()}})
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		code, _ := heraldtest.Do(t, "GET", srv.URL+path, "", "", nil)
		if code == http.StatusOK {
			t.Errorf("GET %s on the main listener: %d, want it absent when the admin listener is used", path, code)
		}
	}
	admin := httptest.NewServer(srv.Server.Admin())
	defer admin.Close()
	for _, path := range []string{"/metrics", "/debug/pprof/", "/readyz", "/healthz"} {
		if code, body := heraldtest.Do(t, "GET", admin.URL+path, "", "", nil); code != http.StatusOK {
			t.Errorf("GET %s on the admin listener: %d %.100s, want 200", path, code, body)
		}
	}
}

func TestRequestIDAndLogs(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Logger: logger, LogRequests: true}})

	req, _ := http.NewRequest("POST", srv.URL+"/publish", strings.NewReader(`{"topic":"t","data":"secret-payload"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+heraldtest.Key)
	req.Header.Set("X-Request-Id", "from-nginx-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "from-nginx-42" {
		t.Errorf("X-Request-Id = %q, want the proxy's id kept", got)
	}

	req, _ = http.NewRequest("GET", srv.URL+"/history?topic=t&token=query-secret", nil)
	req.Header.Set("X-Request-Id", "bad id; with spaces")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " ;") {
		t.Errorf("X-Request-Id = %q, want a fresh well-formed id", got)
	}

	text := logs.String()
	for _, want := range []string{`"request_id":"from-nginx-42"`, `"route":"POST /publish"`, `"status":200`, `"path":"/history"`} {
		if !strings.Contains(text, want) {
			t.Errorf("request log lacks %s:\n%s", want, text)
		}
	}
	for _, secret := range []string{heraldtest.Key, "secret-payload", "query-secret"} {
		if strings.Contains(text, secret) {
			t.Errorf("request log holds %q:\n%s", secret, text)
		}
	}
}

func TestStatsEndpoint(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{Server: server.Config{Web: web.Handler(), Engine: "memory"}})
	srv.SSE(t, "/events?topic=busy&topic=quiet", "")
	srv.SSE(t, "/events?topic=busy", "")
	srv.Publish(t, "busy", "x")

	code, body := heraldtest.Do(t, "GET", srv.URL+"/api/stats", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/stats: %d %s", code, body)
	}
	var st struct {
		Engine        string
		Subscriptions int64
		Published     uint64
		Connections   map[string]int64
		TopTopics     []struct {
			Topic       string
			Subscribers int
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Subscriptions != 2 || st.Published < 1 || st.Engine != "memory" || st.Connections["sse"] < 2 {
		t.Errorf("stats = %s, want 2 subscriptions, >=1 published, engine memory, >=2 sse connections", body)
	}
	if got, want := fmt.Sprint(st.TopTopics), "[{busy 2} {quiet 1}]"; got != want {
		t.Errorf("topTopics = %s, want %s", got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
