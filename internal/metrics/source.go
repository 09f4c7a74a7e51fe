package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Source is what the metrics read from the hub and the server at scrape time. Counters there
// are kept with atomics by their owners; reading them here costs nothing between scrapes.
type Source interface {
	Subscribers() int64
	Published() uint64
	Delivered() uint64
	Evicted() uint64
	Resumed() uint64
	LogReads() uint64
	Ready() bool
	Draining() bool
	Engine() string
	Version() string
}

var (
	descSubs      = prometheus.NewDesc("herald_subscriptions", "Active subscriptions on this node (all transports).", nil, nil)
	descPublished = prometheus.NewDesc("herald_messages_published_total", "Messages accepted by publish requests on this node.", nil, nil)
	descDelivered = prometheus.NewDesc("herald_messages_delivered_total", "Messages queued to subscribers on this node (one per subscriber).", nil, nil)
	descEvicted   = prometheus.NewDesc("herald_slow_evictions_total", "Subscriptions ended because their queue overflowed.", nil, nil)
	descResumed   = prometheus.NewDesc("herald_resumes_total", "Subscriptions that resumed from a client's last event id (replay).", nil, nil)
	descLogReads  = prometheus.NewDesc("herald_log_reads_total", "Pages read from the message log for history requests and replay.", nil, nil)
	descReady     = prometheus.NewDesc("herald_engine_ready", "1 when the hub is tailing its log and accepting subscribers.", nil, nil)
	descDraining  = prometheus.NewDesc("herald_draining", "1 while the server is shutting down.", nil, nil)
	descInfo      = prometheus.NewDesc("herald_build_info", "Always 1; labels say the version and the engine.", []string{"version", "engine"}, nil)
)

type sourceCollector struct{ src Source }

func newSourceCollector(src Source) prometheus.Collector { return sourceCollector{src} }

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSubs, descPublished, descDelivered, descEvicted, descResumed, descLogReads, descReady, descDraining, descInfo} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descSubs, float64(s.Subscribers()))
	counter(descPublished, s.Published())
	counter(descDelivered, s.Delivered())
	counter(descEvicted, s.Evicted())
	counter(descResumed, s.Resumed())
	counter(descLogReads, s.LogReads())
	gauge(descReady, b2f(s.Ready()))
	gauge(descDraining, b2f(s.Draining()))
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, s.Version(), s.Engine())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Snapshot is the package's own counters, for the dashboard's stats endpoint.
type Snapshot struct {
	Connections map[string]int64  `json:"connections"` // open, by transport
	BytesOut    map[string]uint64 `json:"bytesWritten"`
}

// Read returns the current values of the connection and byte counters.
func Read() Snapshot {
	s := Snapshot{Connections: map[string]int64{}, BytesOut: map[string]uint64{}}
	read := func(c prometheus.Collector, f func(label string, v float64)) {
		ch := make(chan prometheus.Metric, 16)
		go func() { c.Collect(ch); close(ch) }()
		for m := range ch {
			var pb dtoMetric
			m.Write(&pb.Metric)
			f(pb.label("transport"), pb.value())
		}
	}
	read(connections, func(l string, v float64) { s.Connections[l] = int64(v) })
	read(bytesWritten, func(l string, v float64) { s.BytesOut[l] = uint64(v) })
	return s
}

// dtoMetric reads one sample of a counter or gauge vector.
type dtoMetric struct{ dto.Metric }

func (m *dtoMetric) label(name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (m *dtoMetric) value() float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}
