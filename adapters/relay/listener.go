package relay

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tcpGuard bounds TURN-over-TCP connections, which anyone can open before
// authenticating: at most max in all and perIP from one address (more are
// closed at once), and a connection that sends nothing for idle is closed
// (a client with an allocation refreshes its permissions every 2 minutes
// and its allocation every 5). It also keeps transient Accept errors
// (EMFILE) from reaching pion, whose accept loop would stop for good.
type tcpGuard struct {
	net.Listener
	max, perIP int
	idle       time.Duration
	logger     *slog.Logger

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

const (
	tcpIdleTimeout = 10 * time.Minute
	tcpPerIP       = 32
)

func newTCPGuard(l net.Listener, max int, logger *slog.Logger) *tcpGuard {
	return &tcpGuard{Listener: l, max: max, perIP: min(tcpPerIP, max), idle: tcpIdleTimeout, logger: logger, byIP: map[string]int{}}
}

func (g *tcpGuard) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			g.logger.Warn("relay: accept failed", "err", err)
			time.Sleep(backoff) // like net/http's Serve
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		ip := remoteIP(c)
		g.mu.Lock()
		if g.total >= g.max || g.byIP[ip] >= g.perIP {
			g.mu.Unlock()
			g.logger.Debug("relay: TCP connection refused (cap)", "from", ip)
			_ = c.Close()
			continue
		}
		g.total++
		g.byIP[ip]++
		g.mu.Unlock()
		return &guardedConn{Conn: c, g: g, ip: ip}, nil
	}
}

func (g *tcpGuard) release(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.byIP[ip]--; g.byIP[ip] <= 0 {
		delete(g.byIP, ip)
	}
}

func remoteIP(c net.Conn) string {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return c.RemoteAddr().String()
}

// guardedConn closes itself after idle without a byte from the client.
type guardedConn struct {
	net.Conn
	g    *tcpGuard
	ip   string
	once sync.Once
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.g.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.release(c.ip) })
	return err
}
