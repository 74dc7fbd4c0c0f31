package registry

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatx/chatx/ports"
)

// metrics are the registry's Prometheus metrics, on a registry of their own
// (not the global default, so two servers in one process do not collide).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	stun     *prometheus.CounterVec
	resumes  *prometheus.CounterVec
	streams  atomic.Int64
	http     http.Handler
}

func newMetrics(svc ports.RegistryService, openConns func() int64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatx_registry_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		stun: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatx_registry_stun_requests_total",
			Help: "STUN datagrams by result: plain, authenticated, dropped, rate_limited.",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.stun, &statsCollector{svc: svc, streams: &m.streams, openConns: openConns},
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.http = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// addShed reports the load shedder: connections and descriptors, whether
// new work is refused now, and how often it was.
func (m *metrics) addShed(sh *shedder) {
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chatx_registry_stream_resumes_total",
		Help: "Presence streams opened with a Last-Event-ID, by outcome: resumed, gap (snapshot sent), error.",
	}, []string{"outcome"})
	m.reg.MustRegister(m.resumes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatx_registry_fd_limit", Help: "RLIMIT_NOFILE (soft) of the process at start."},
			func() float64 { return float64(sh.fdLimit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatx_registry_shed_threshold_connections", Help: "Open connections from which new work is refused with 503."},
			func() float64 { return float64(sh.limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatx_registry_shedding", Help: "1 while new work is refused (connections at the threshold, or descriptors ran out in the last 2 s)."},
			func() float64 {
				if sh.pressured() {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatx_registry_shed_requests_total", Help: "Requests refused with 503 under pressure."},
			func() float64 { return float64(sh.shedTotal.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatx_registry_accept_fd_exhausted_total", Help: "Accepts that failed with EMFILE/ENFILE."},
			func() float64 { return float64(sh.fullTotal.Load()) }),
	)
}

func (m *metrics) resume(outcome string) {
	if m.resumes != nil {
		m.resumes.WithLabelValues(outcome).Inc()
	}
}

func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func (m *metrics) stunRequest(result string) { m.stun.WithLabelValues(result).Inc() }

// handler serves the exposition format the scraper asks for (text by default).
func (m *metrics) handler() http.Handler { return m.http }

var (
	descRegistered = prometheus.NewDesc("chatx_registry_registered_users", "Names bound to a key.", nil, nil)
	descOnline     = prometheus.NewDesc("chatx_registry_online_users", "Users with a live session.", nil, nil)
	descStreams    = prometheus.NewDesc("chatx_registry_stream_subscribers", "Open presence streams.", nil, nil)
	descWatchers   = prometheus.NewDesc("chatx_registry_watchers", "Presence watchers of the registry service.", nil, nil)
	descConns      = prometheus.NewDesc("chatx_registry_open_connections", "Open TCP connections.", nil, nil)
)

// statsCollector asks the service for its counts once per scrape.
type statsCollector struct {
	svc       ports.RegistryService
	streams   *atomic.Int64
	openConns func() int64
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRegistered, descOnline, descStreams, descWatchers, descConns} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(c.streams.Load()))
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(c.openConns()))
	st, err := c.svc.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRegistered, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descRegistered, prometheus.GaugeValue, float64(st.Registered))
	ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(st.Online))
	ch <- prometheus.MustNewConstMetric(descWatchers, prometheus.GaugeValue, float64(st.Watchers))
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
