package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/chatx/chatx/ports"
)

// metrics renders the Prometheus text exposition format (version 0.0.4).
// It is written here rather than with prometheus/client_golang because the
// module's go.sum lacks that library's dependencies (see the package's
// report); the names and types are what client_golang would emit, so
// switching is a local change.
type metrics struct {
	mu       sync.Mutex
	requests map[routeCode]uint64

	streams atomic.Int64
}

type routeCode struct {
	route string
	code  int
}

func newMetrics() *metrics { return &metrics{requests: make(map[routeCode]uint64)} }

func (m *metrics) request(route string, code int) {
	m.mu.Lock()
	m.requests[routeCode{route, code}]++
	m.mu.Unlock()
}

func (m *metrics) write(ctx context.Context, w io.Writer, svc ports.RegistryService, conns int64) error {
	st, err := svc.Stats(ctx)
	if err != nil {
		return err
	}
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("chatx_registry_registered_users", "Names bound to a key.", int64(st.Registered))
	gauge("chatx_registry_online_users", "Users with a live session.", int64(st.Online))
	gauge("chatx_registry_stream_subscribers", "Open presence streams.", m.streams.Load())
	gauge("chatx_registry_watchers", "Presence watchers of the registry service.", int64(st.Watchers))
	gauge("chatx_registry_open_connections", "Open TCP connections.", conns)

	m.mu.Lock()
	keys := make([]routeCode, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].route != keys[j].route {
			return keys[i].route < keys[j].route
		}
		return keys[i].code < keys[j].code
	})
	fmt.Fprintf(w, "# HELP chatx_registry_requests_total HTTP requests by route and status code.\n# TYPE chatx_registry_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(w, "chatx_registry_requests_total{route=\"%s\",code=\"%d\"} %d\n", escapeLabel(k.route), k.code, m.requests[k])
	}
	m.mu.Unlock()
	return nil
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

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
