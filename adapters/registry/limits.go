package registry

import (
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener lets at most max connections be open at once: Accept waits
// for a free slot (like x/net/netutil.LimitListener).
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
	open atomic.Int64
}

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	l.open.Add(1)
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.sem
	})
	return err
}

// rateLimiter is a token bucket per client key (see clientKey). Its table
// is bounded: at limit entries, buckets that have refilled (idle clients)
// are forgotten, at most once per sweepEvery; when none has, new clients
// are refused until some do.
type rateLimiter struct {
	rate      Rate
	mu        sync.Mutex
	byIP      map[string]*bucket
	limit     int // entries kept before full buckets are swept
	lastSweep time.Time
}

// sweepEvery bounds how often a full table is scanned, so a flood of new
// clients cannot make every request pay for a scan of the whole table.
const sweepEvery = time.Second

type bucket struct {
	tokens float64
	last   time.Time
}

// defaultLimiterEntries bounds each rate limiter's table.
const defaultLimiterEntries = 100_000

func newRateLimiter(r Rate, limit int) *rateLimiter {
	if r.Burst < 1 {
		r.Burst = 1
	}
	if limit < 1 {
		limit = defaultLimiterEntries
	}
	return &rateLimiter{rate: r, byIP: make(map[string]*bucket), limit: limit}
}

// allow takes one token for ip; when there is none it says how long until
// there is.
func (rl *rateLimiter) allow(ip string, now time.Time) (bool, time.Duration) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b, ok := rl.byIP[ip]
	if !ok {
		if len(rl.byIP) >= rl.limit && (rl.lastSweep.IsZero() || now.Sub(rl.lastSweep) >= sweepEvery || now.Before(rl.lastSweep)) {
			rl.lastSweep = now
			rl.sweep(now)
		}
		if len(rl.byIP) >= rl.limit {
			return false, time.Second // table full of busy clients: shed load
		}
		b = &bucket{tokens: float64(rl.rate.Burst), last: now}
		rl.byIP[ip] = b
	}
	b.tokens = math.Min(float64(rl.rate.Burst), b.tokens+now.Sub(b.last).Seconds()*rl.rate.PerSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / rl.rate.PerSecond * float64(time.Second))
	return false, wait
}

// sweep forgets buckets that have refilled: they behave as new ones.
func (rl *rateLimiter) sweep(now time.Time) {
	for ip, b := range rl.byIP {
		if b.tokens+now.Sub(b.last).Seconds()*rl.rate.PerSecond >= float64(rl.rate.Burst) {
			delete(rl.byIP, ip)
		}
	}
}
