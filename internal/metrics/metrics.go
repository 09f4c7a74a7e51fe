// Package metrics is Herald's Prometheus instrumentation: connections and disconnects by
// transport, bytes written, publish latency, and the hub's own counters read at scrape time.
//
// Labels are bounded on purpose: transport, reason and status code names only, never a topic
// or a user, so a server with a million topics still exposes a few dozen series.
//
// Transports report through the package functions (ConnOpened, ConnClosed, Written); they are
// cheap (an atomic add) and safe to call from any goroutine. Handler exposes them together with
// a hub's counters.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Transport names used as label values.
const (
	SSE  = "sse"
	WS   = "ws"
	Poll = "poll"
)

// Reasons a connection ended, used as label values of herald_disconnects_total.
const (
	ReasonClient   = "client"   // the client went away
	ReasonSlow     = "slow"     // its queue overflowed; it resumes from history
	ReasonAuth     = "auth"     // its token expired or was revoked
	ReasonLimit    = "limit"    // a limit was exceeded (message size, rate, subscriptions)
	ReasonShutdown = "shutdown" // the server is draining
	ReasonEpoch    = "epoch"    // the log was reset
	ReasonWrite    = "write"    // a write failed or timed out
	ReasonError    = "error"    // anything else
)

var (
	connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_connections", Help: "Open subscriber connections, by transport.",
	}, []string{"transport"})
	connectionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_connections_total", Help: "Subscriber connections opened, by transport.",
	}, []string{"transport"})
	disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_disconnects_total", Help: "Subscriber connections ended, by transport and reason (client, slow, auth, limit, shutdown, epoch, write, error).",
	}, []string{"transport", "reason"})
	bytesWritten = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_bytes_written_total", Help: "Bytes written to subscribers, by transport.",
	}, []string{"transport"})
	publishDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_publish_duration_seconds",
		Help:    "Duration of successful publish requests: parsing, validation, the log's acknowledgement and the answer.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	httpErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_http_errors_total", Help: "Requests answered with an error, by error code (unauthorized, forbidden, too_large, too_many, bad_request, unavailable, ...).",
	}, []string{"code"})
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_http_requests_total", Help: "HTTP requests, by route (publish, events, ws, poll, history, other).",
	}, []string{"route"})

	// Pre-resolved children for the hot paths.
	sseBytes = bytesWritten.WithLabelValues(SSE)

	global = []prometheus.Collector{connections, connectionsTotal, disconnects, bytesWritten, publishDuration, httpErrors, requests}
)

func init() {
	for _, t := range []string{SSE, WS, Poll} {
		connections.WithLabelValues(t)
		connectionsTotal.WithLabelValues(t)
		bytesWritten.WithLabelValues(t)
	}
}

// ConnOpened counts a subscriber connection of transport (SSE, WS or Poll) as open.
// Every call must be matched by one ConnClosed.
func ConnOpened(transport string) {
	connections.WithLabelValues(transport).Inc()
	connectionsTotal.WithLabelValues(transport).Inc()
}

// ConnClosed counts a subscriber connection as ended for reason (a Reason* constant).
func ConnClosed(transport, reason string) {
	connections.WithLabelValues(transport).Dec()
	disconnects.WithLabelValues(transport, reason).Inc()
}

// Written counts n bytes written to a subscriber over transport.
func Written(transport string, n int) {
	if transport == SSE {
		sseBytes.Add(float64(n))
		return
	}
	bytesWritten.WithLabelValues(transport).Add(float64(n))
}

// ObservePublish records how long an accepted publish request took.
func ObservePublish(d time.Duration) { publishDuration.Observe(d.Seconds()) }

// HTTPError counts a request answered with the error code name (from the server's error table).
func HTTPError(code string) { httpErrors.WithLabelValues(code).Inc() }

// Request counts a request to route.
func Request(route string) { requests.WithLabelValues(route).Inc() }

// Handler serves the metrics of the process, the package counters and src in the Prometheus
// text format. Each call builds its own registry, so tests may run several servers.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(global...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src != nil {
		reg.MustRegister(newSourceCollector(src))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
