package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load shedding under file-descriptor pressure (docs/registry-api.md,
// "Busy"). Every connection costs a descriptor; when a process runs out,
// accept fails with EMFILE, the kernel queues new connections that
// nobody accepts, and clients time out with nothing in the log. So the
// server:
//   - caps open connections below the descriptor limit (a reserve is left
//     for the store, logs, STUN and relay sockets), so accept keeps working;
//   - above a lower threshold answers new work (challenges, registrations,
//     new presence streams, online lists) at once with 503, Retry-After and
//     Connection: close, so clients go to another node instead of waiting;
//     heartbeats, lookups and signals of connected clients, /healthz and
//     /metrics are always served;
//   - logs when it starts shedding and when accept hits the limit, at most
//     once per shedLogEvery, and reports both in /metrics.

// shedLogEvery bounds how often pressure is logged.
const shedLogEvery = 10 * time.Second

// shedder decides whether the server is under pressure.
type shedder struct {
	log       *slog.Logger
	open      func() int64 // open connections
	limit     int64        // connections at which new work is refused
	fdLimit   uint64       // RLIMIT_NOFILE (soft) at start; 0 unknown
	lastFull  atomic.Int64 // unix nanos of the last EMFILE/ENFILE
	shedTotal atomic.Int64
	fullTotal atomic.Int64

	logMu   sync.Mutex
	lastLog time.Time
	quiet   int // pressure events not logged since lastLog
}

// fdReserve is how many descriptors are kept for everything but client
// connections: the listening and STUN sockets, the relay, the store's
// connections, log files, DNS lookups.
func fdReserve(limit uint64) uint64 { return max(24, min(limit/8, 256)) }

// connCaps derives the connection cap (Accept waits beyond it) and the
// shedding threshold from the configured cap and the descriptor limit.
func connCaps(maxConns int, fdLimit uint64) (hard, shed int) {
	hard = maxConns
	if fdLimit > 0 {
		avail := int64(fdLimit) - int64(fdReserve(fdLimit))
		if avail < 8 {
			avail = 8
		}
		if int64(hard) > avail {
			hard = int(avail)
		}
	}
	shed = hard - max(4, min(hard/8, 256))
	return hard, shed
}

func descriptorLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// pressured says whether new work should be refused now: open connections
// at the threshold, or accept ran out of descriptors in the last 2 s.
func (sh *shedder) pressured() bool {
	if sh.open() >= sh.limit {
		return true
	}
	t := sh.lastFull.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < 2*time.Second
}

// note logs a pressure event, rate limited.
func (sh *shedder) note(msg string, args ...any) {
	sh.logMu.Lock()
	defer sh.logMu.Unlock()
	if now := time.Now(); now.Sub(sh.lastLog) >= shedLogEvery {
		if sh.quiet > 0 {
			args = append(args, "similar_events_not_logged", sh.quiet)
		}
		sh.log.Warn(msg, args...)
		sh.lastLog, sh.quiet = now, 0
		return
	}
	sh.quiet++
}

// fdCount is the number of open descriptors of this process (Linux;
// -1 elsewhere).
func fdCount() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1 // the directory being read
}

// sheddable are the routes that start new work.
var sheddable = map[string]bool{
	"POST /v1/challenges":           true,
	"PUT /v1/users/{name}/presence": true,
	"GET /v1/events":                true,
	"GET /v1/online":                true,
}

// shed wraps h: under pressure, new work gets 503 at once.
func (sh *shedder) shed(route string, h http.HandlerFunc) http.HandlerFunc {
	if !sheddable[route] {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if sh.pressured() {
			sh.shedTotal.Add(1)
			sh.note("registry under pressure: refusing new work with 503 (clients retry later or at another node)",
				"open_connections", sh.open(), "shed_at", sh.limit, "fd_limit", sh.fdLimit, "open_fds", fdCount())
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable, codeBusy, "registry node under pressure; retry later or at another node", 2*time.Second)
			return
		}
		h(w, r)
	}
}

// watchAccept is wrapped around the listener: an accept that fails for
// lack of descriptors is logged and counted (net/http retries it).
type fdWatchListener struct {
	net.Listener
	sh *shedder
}

func (l fdWatchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
		l.sh.lastFull.Store(time.Now().UnixNano())
		l.sh.fullTotal.Add(1)
		l.sh.note("registry out of file descriptors: accept failed; shedding new work",
			"err", err.Error(), "fd_limit", l.sh.fdLimit, "open_fds", fdCount(), "hint", fmt.Sprintf("raise the limit (ulimit -n, LimitNOFILE=) above %d", l.sh.fdLimit))
	}
	return c, err
}
