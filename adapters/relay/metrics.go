package relay

import "github.com/prometheus/client_golang/prometheus"

var (
	descAllocations = prometheus.NewDesc("chatx_relay_allocations", "Live TURN allocations.", nil, nil)
	descBytes       = prometheus.NewDesc("chatx_relay_bytes_total",
		"Bytes relayed, by direction (to_peer: from clients to peers; from_peer: the reverse).", []string{"direction"}, nil)
	descDropped = prometheus.NewDesc("chatx_relay_rate_dropped_bytes_total",
		"Bytes dropped by the per-allocation rate cap.", nil, nil)
	descRefused = prometheus.NewDesc("chatx_relay_refused_total",
		"Requests refused, by reason (auth, quota, capacity, permission).", []string{"reason"}, nil)
)

var _ prometheus.Collector = (*Server)(nil)

// Describe implements prometheus.Collector: register the Server on the
// registry's metrics registry to export the relay's metrics.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAllocations
	ch <- descBytes
	ch <- descDropped
	ch <- descRefused
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	if s == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descAllocations, prometheus.GaugeValue, float64(s.Allocations()))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(s.toPeers.Load()), "to_peer")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(s.fromPeers.Load()), "from_peer")
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.dropped.Load()))
	for reason, v := range map[string]uint64{
		"auth": s.authFails.Load(), "quota": s.quotaHits.Load(),
		"capacity": s.capHits.Load(), "permission": s.permDeny.Load(),
	} {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(v), reason)
	}
}
