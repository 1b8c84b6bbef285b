// Package metrics is isaclist's Prometheus instrumentation and its health
// endpoint. A nil *Metrics records nothing, so the engine works without.
package metrics

import (
	"time"

	"github.com/isaclist/isaclist/internal/version"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's counters, gauges and histograms. Labels never
// carry content: a TLP label, a refusal kind, a verification method.
type Metrics struct {
	Registry *prometheus.Registry

	postsAccepted *prometheus.CounterVec
	postsRefused  *prometheus.CounterVec
	auth          *prometheus.CounterVec
	tlsIn         *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	latency       prometheus.Histogram
	holds         *prometheus.CounterVec
	commands      *prometheus.CounterVec
}

// New makes the metrics and registers them, with Go's runtime metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		postsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_posts_accepted_total", Help: "Posts accepted, by TLP label.",
		}, []string{"label"}),
		postsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_posts_refused_total", Help: "Messages refused at SMTP time, by reason.",
		}, []string{"reason"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_authentication_total", Help: "Sender authentication results: method (dkim, spf, none) and result (pass, fail, temperror).",
		}, []string{"method", "result"}),
		tlsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_smtp_sessions_total", Help: "Inbound SMTP transactions by whether they used TLS.",
		}, []string{"tls"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_deliveries_total", Help: "Copies handed over or not: outcome (sent, deferred, failed) and TLS.",
		}, []string{"outcome", "tls"}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_holds_total", Help: "Members' posts that failed authentication, held for the secretary: event (held, released, rejected, expired).",
		}, []string{"event"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isaclist_mail_commands_total", Help: "Mail commands members sent to the -request address, by command.",
		}, []string{"command"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "isaclist_delivery_latency_seconds", Help: "Time from a post's acceptance to a copy's hand-over.",
			Buckets: []float64{0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400},
		}),
	}
	m.Registry.MustRegister(m.postsAccepted, m.postsRefused, m.auth, m.tlsIn, m.deliveries, m.latency, m.holds, m.commands,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(version.Get()))
	return m
}

// buildInfo is the constant gauge isaclist_build_info{version, revision,
// goversion} 1, in the form Prometheus's own components use, so that a
// dashboard can show which version runs where.
func buildInfo(v version.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "isaclist_build_info", Help: "A metric with a constant '1' value labelled by the version, revision (commit) and Go version isaclist was built with.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(v.Version, v.Commit, v.GoVersion).Set(1)
	return g
}

// PostAccepted counts an accepted post.
func (m *Metrics) PostAccepted(label string) {
	if m != nil {
		m.postsAccepted.WithLabelValues(label).Inc()
	}
}

// Hold counts an event of a held post.
func (m *Metrics) Hold(event string) {
	if m != nil {
		m.holds.WithLabelValues(event).Inc()
	}
}

// Command counts a mail command.
func (m *Metrics) Command(name string) {
	if m != nil {
		m.commands.WithLabelValues(name).Inc()
	}
}

// PostRefused counts a refusal by its kind.
func (m *Metrics) PostRefused(kind string) {
	if m != nil {
		m.postsRefused.WithLabelValues(kind).Inc()
	}
}

// Authentication counts a sender authentication result.
func (m *Metrics) Authentication(method, result string) {
	if m != nil {
		m.auth.WithLabelValues(method, result).Inc()
	}
}

// Transaction counts an inbound transaction by TLS.
func (m *Metrics) Transaction(tls bool) {
	if m != nil {
		m.tlsIn.WithLabelValues(yesNo(tls)).Inc()
	}
}

// Delivery counts a hand-over attempt; sent ones also record the time
// since the post was accepted.
func (m *Metrics) Delivery(outcome string, tls bool, sinceAccepted time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(outcome, yesNo(tls)).Inc()
	if outcome == "sent" {
		m.latency.Observe(sinceAccepted.Seconds())
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// QueueGauges registers gauges read at each scrape: copies waiting and the
// age of the oldest.
func (m *Metrics) QueueGauges(depth func() (waiting int, oldest time.Duration)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "isaclist_queue_copies", Help: "Copies waiting to be delivered.",
	}, func() float64 { n, _ := depth(); return float64(n) }))
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "isaclist_queue_oldest_seconds", Help: "Age of the oldest copy waiting to be delivered.",
	}, func() float64 { _, age := depth(); return age.Seconds() }))
}
