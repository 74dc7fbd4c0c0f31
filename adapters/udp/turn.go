package udp

// The TURN client (RFC 8656) the QUIC transport falls back to when no direct
// or punched path works. It always runs on a socket of its own — a fresh UDP
// socket, or a TCP (or TLS) connection for hosts whose UDP is blocked —
// never on the QUIC socket: quic-go must own that one alone, and the relayed
// PacketConn returned here is what a second quic.Transport runs on.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/chatx/chatx/internal/pionlog"
	"github.com/chatx/chatx/ports"
)

// relayAllocation is one TURN allocation: a relayed transport address on a
// TURN server, reached through PacketConn. Datagrams written to PacketConn
// leave the server from RelayAddr; datagrams sent to RelayAddr arrive on
// PacketConn — but only from peers whose IP address was permitted (Permit,
// or an earlier write to them), so the allocation is never an open relay.
type relayAllocation interface {
	// PacketConn carries the relayed datagrams; its LocalAddr is RelayAddr.
	// Closing it closes the whole allocation.
	PacketConn() net.PacketConn
	// RelayAddr is the relayed transport address (the relay candidate).
	RelayAddr() net.Addr
	// Permit installs TURN permissions (CreatePermission) for the IP
	// addresses of addrs (ports are ignored, as TURN permissions are per
	// IP) and keeps them refreshed until Close. When a refresh or a
	// Permit finds the allocation gone at the server (expired credentials
	// on coturn, 437, or no answer at all: see noAnswer), the allocation
	// closes itself: PacketConn's reads fail and Permit returns an error
	// wrapping net.ErrClosed — allocate anew.
	Permit(addrs ...net.Addr) error
	// Close releases the allocation at the server (a Refresh with lifetime
	// 0) and the socket under it. Idempotent.
	Close() error
}

const (
	// turnDialTimeout bounds connecting to one TURN server over TCP/TLS.
	turnDialTimeout = 5 * time.Second
	// turnPermitRetries covers a 438 Stale Nonce answer to CreatePermission.
	turnPermitRetries = 3
	// turnReadBuffer is large enough for any datagram a server sends.
	turnReadBuffer = 64 << 10
)

// turnStagger is how long allocateRelay gives one server before starting
// the next in parallel.
const turnStagger = 300 * time.Millisecond

// turnPermitRefresh re-issues our permissions well inside their 300-second
// lifetime (RFC 8656 §9); a variable for tests.
var turnPermitRefresh = 2 * time.Minute

// errTURNURI: a RelayServer's URL is not a TURN URI this client speaks.
var errTURNURI = errors.New("unsupported TURN URI")

// allocateRelay allocates a relayed address on the first of servers that
// grants one. They are raced in order with staggered starts (Happy
// Eyeballs, RFC 8305): server i+1 starts turnStagger after server i, or at
// once when i fails, and the first allocation wins; the others are
// cancelled and released. So a host whose UDP is blocked reaches the
// TCP URL within a stagger instead of after the UDP attempt's ~8 s of
// retransmissions. Servers whose credentials have expired are skipped.
// The error names every server tried and why it failed.
func allocateRelay(ctx context.Context, servers []ports.RelayServer, logger *slog.Logger) (relayAllocation, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(servers) == 0 {
		return nil, errors.New("allocate relay: no TURN server")
	}
	var errs []error
	usable := make([]ports.RelayServer, 0, len(servers))
	for _, srv := range servers {
		if !srv.Expires.IsZero() && !time.Now().Before(srv.Expires) {
			errs = append(errs, fmt.Errorf("%s: credentials expired at %s", srv.URL, srv.Expires.Format(time.RFC3339)))
			continue
		}
		usable = append(usable, srv)
	}

	raceCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		srv   ports.RelayServer
		alloc *turnAllocation
		err   error
	}
	results := make(chan result, len(usable))
	next, pending := 0, 0
	start := func() {
		srv := usable[next]
		next++
		pending++
		go func() {
			a, err := allocateOn(raceCtx, srv, logger)
			results <- result{srv, a, err}
		}()
	}
	stagger := time.NewTimer(turnStagger)
	defer stagger.Stop()
	if len(usable) > 0 {
		start()
	}
	for pending > 0 {
		select {
		case <-stagger.C:
			if next < len(usable) && ctx.Err() == nil {
				start()
				stagger.Reset(turnStagger)
			}
		case r := <-results:
			pending--
			if r.err == nil {
				logger.Debug("TURN allocation", "server", r.srv.URL, "relay", r.alloc.RelayAddr().String())
				cancel()
				// The losers end at once (their context is cancelled);
				// one that won anyway is released.
				go func(n int) {
					for range n {
						if late := <-results; late.err == nil {
							_ = late.alloc.Close()
						}
					}
				}(pending)
				return r.alloc, nil
			}
			logger.Debug("TURN allocation failed", "server", r.srv.URL, "err", r.err)
			errs = append(errs, r.err)
			if next < len(usable) && ctx.Err() == nil {
				start()
				stagger.Reset(turnStagger)
			}
		}
	}
	if err := ctx.Err(); err != nil && next < len(usable) {
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("allocate relay: %w", errors.Join(errs...))
}

// turnURI is a parsed RFC 7065 TURN URI.
type turnURI struct {
	secure    bool   // turns:
	hostPort  string // host:port, port defaulted
	host      string // for TLS server name
	transport string // "udp" or "tcp"
}

// parseTURNURI reads turn:host[:port][?transport=udp|tcp] and
// turns:host[:port][?transport=tcp]. Defaults follow RFC 7065: port 3478
// (turn) or 5349 (turns), transport udp (turn) or tcp (turns). turns over
// UDP would be DTLS, which this client does not speak.
func parseTURNURI(raw string) (turnURI, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return turnURI{}, fmt.Errorf("%w %q: %w", errTURNURI, raw, err)
	}
	var t turnURI
	switch u.Scheme {
	case "turn":
		t.transport = "udp"
	case "turns":
		t.secure, t.transport = true, "tcp"
	default:
		return turnURI{}, fmt.Errorf("%w %q: scheme must be turn or turns", errTURNURI, raw)
	}
	if u.Opaque == "" {
		return turnURI{}, fmt.Errorf("%w %q: want turn:host[:port]", errTURNURI, raw)
	}
	for key, vals := range u.Query() {
		if key != "transport" || len(vals) != 1 {
			return turnURI{}, fmt.Errorf("%w %q: unknown parameter %q", errTURNURI, raw, key)
		}
		switch v := strings.ToLower(vals[0]); v {
		case "udp", "tcp":
			t.transport = v
		default:
			return turnURI{}, fmt.Errorf("%w %q: transport %q", errTURNURI, raw, vals[0])
		}
	}
	if t.secure && t.transport == "udp" {
		return turnURI{}, fmt.Errorf("%w %q: DTLS (turns over udp) is not supported", errTURNURI, raw)
	}
	host, port := u.Opaque, ""
	if h, p, err := net.SplitHostPort(u.Opaque); err == nil {
		host, port = h, p
	} else if strings.Count(u.Opaque, ":") > 1 && !strings.HasPrefix(u.Opaque, "[") {
		return turnURI{}, fmt.Errorf("%w %q: bracket an IPv6 address", errTURNURI, raw)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if !validTURNHost(host) {
		return turnURI{}, fmt.Errorf("%w %q: host %q", errTURNURI, raw, host)
	}
	if port == "" {
		port = "3478"
		if t.secure {
			port = "5349"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return turnURI{}, fmt.Errorf("%w %q: port %q", errTURNURI, raw, port)
	}
	t.host, t.hostPort = host, net.JoinHostPort(host, port)
	return t, nil
}

// validTURNHost accepts an IP address or a DNS name (letters, digits, '-'
// and '.'), nothing a resolver or a URL would read differently.
func validTURNHost(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// turnTLSConfig is the TLS configuration of turns: connections (system
// roots); tests replace it to trust their own certificate.
var turnTLSConfig = func(serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// allocateOn allocates on one server.
func allocateOn(ctx context.Context, srv ports.RelayServer, logger *slog.Logger) (*turnAllocation, error) {
	uri, err := parseTURNURI(srv.URL)
	if err != nil {
		return nil, err
	}
	// pion resolves the server for IPv4 only ("udp4"); resolve it ourselves
	// first so the socket family matches and the error says so.
	addr, err := resolveTURNServer(ctx, uri.hostPort)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", srv.URL, err)
	}
	conn, err := openTURNSocket(ctx, uri, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", srv.URL, err)
	}
	client, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: addr.String(),
		Username:       srv.Username,
		Password:       srv.Password,
		Software:       "chatx",
		Conn:           conn,
		LoggerFactory:  pionlog.Factory(logger),
	})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%s: turn client: %w", srv.URL, err)
	}
	a := &turnAllocation{
		server:  srv.URL,
		conn:    conn,
		client:  client,
		logger:  logger,
		permits: map[string]net.Addr{},
		done:    make(chan struct{}),
	}
	a.wg.Add(1)
	go a.readLoop(addr)

	// Allocate blocks on its transactions (with retransmissions); closing
	// the client ends them when ctx ends first.
	stop := context.AfterFunc(ctx, func() { a.shutdown() })
	relayed, err := client.Allocate()
	fail := func(err error) (*turnAllocation, error) {
		a.shutdown()
		a.wg.Wait()
		return nil, fmt.Errorf("%s: allocate: %w", srv.URL, err)
	}
	if !stop() || ctx.Err() != nil {
		if err == nil {
			_ = relayed.Close()
		}
		return fail(context.Cause(ctx))
	}
	if err != nil {
		return fail(err)
	}
	a.relayed = relayed
	a.pc = &relayedConn{PacketConn: relayed, alloc: a}
	a.wg.Add(1)
	go a.refreshLoop()
	return a, nil
}

func resolveTURNServer(ctx context.Context, hostPort string) (*net.UDPAddr, error) {
	host, port, _ := net.SplitHostPort(hostPort)
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s (IPv4 only): %w", host, err)
	}
	p, _ := strconv.Atoi(port)
	return &net.UDPAddr{IP: ips[0].Unmap().AsSlice(), Port: p}, nil
}

// openTURNSocket opens the client's own socket towards the server: an
// unconnected UDP socket, or a TCP/TLS stream framed as packets
// (turn.NewSTUNConn, RFC 8656 §7.2.2) for transport=tcp and turns.
func openTURNSocket(ctx context.Context, uri turnURI, addr *net.UDPAddr) (net.PacketConn, error) {
	if uri.transport == "udp" {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			return nil, fmt.Errorf("listen udp: %w", err)
		}
		return conn, nil
	}
	dialCtx, cancel := context.WithTimeout(ctx, turnDialTimeout)
	defer cancel()
	target := (&net.TCPAddr{IP: addr.IP, Port: addr.Port}).String()
	var (
		conn net.Conn
		err  error
	)
	if uri.secure {
		d := &tls.Dialer{Config: turnTLSConfig(uri.host)}
		conn, err = d.DialContext(dialCtx, "tcp4", target)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dialCtx, "tcp4", target)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return turn.NewSTUNConn(conn), nil
}

// turnAllocation implements relayAllocation over a pion turn.Client.
type turnAllocation struct {
	server  string
	conn    net.PacketConn // our own socket to the server
	client  *turn.Client
	relayed net.PacketConn // pion's relayed conn
	pc      *relayedConn
	logger  *slog.Logger

	mu      sync.Mutex
	permits map[string]net.Addr // by IP

	closeOnce sync.Once
	stopOnce  sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

func (a *turnAllocation) PacketConn() net.PacketConn { return a.pc }
func (a *turnAllocation) RelayAddr() net.Addr        { return a.relayed.LocalAddr() }

func (a *turnAllocation) Permit(addrs ...net.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	select {
	case <-a.done:
		return fmt.Errorf("permit on %s: %w", a.server, net.ErrClosed)
	default:
	}
	udpAddrs := make([]net.Addr, 0, len(addrs))
	for _, addr := range addrs {
		ua, err := toUDPAddr(addr)
		if err != nil {
			return fmt.Errorf("permit %s: %w", addr, err)
		}
		udpAddrs = append(udpAddrs, ua)
	}
	if err := a.createPermission(udpAddrs); err != nil {
		if allocationLost(err) || noAnswer(err) {
			a.logger.Info("TURN allocation lost", "server", a.server, "err", err)
			_ = a.release()
			return fmt.Errorf("permit %v on %s: %w (%w)", addrs, a.server, net.ErrClosed, err)
		}
		return fmt.Errorf("permit %v on %s: %w", addrs, a.server, err)
	}
	a.mu.Lock()
	for _, ua := range udpAddrs {
		a.permits[ua.(*net.UDPAddr).IP.String()] = ua
	}
	a.mu.Unlock()
	return nil
}

func (a *turnAllocation) createPermission(addrs []net.Addr) error {
	var err error
	for range turnPermitRetries {
		// pion answers a 438 Stale Nonce by storing the new nonce and
		// returning an error; the next attempt uses it.
		if err = a.client.CreatePermission(addrs...); err == nil {
			return nil
		}
		var turnErr *stun.TurnError
		if errors.As(err, &turnErr) || noAnswer(err) {
			return err // a real refusal (403, 400 …) or silence, not a stale nonce
		}
		select {
		case <-a.done:
			return net.ErrClosed
		default:
		}
	}
	return err
}

func toUDPAddr(addr net.Addr) (net.Addr, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return a, nil
	case *net.TCPAddr:
		return &net.UDPAddr{IP: a.IP, Port: a.Port}, nil
	default:
		ua, err := net.ResolveUDPAddr("udp", addr.String())
		if err != nil {
			return nil, err
		}
		return ua, nil
	}
}

// readLoop feeds what arrives on our socket to the pion client. pion's own
// Listen stops at the first packet it cannot parse, so one stray datagram
// would end the allocation; here bad packets are dropped, and over UDP only
// the server's datagrams are looked at.
func (a *turnAllocation) readLoop(server *net.UDPAddr) {
	defer a.wg.Done()
	buf := make([]byte, turnReadBuffer)
	for {
		n, from, err := a.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-a.done:
			default:
				a.logger.Debug("TURN socket closed", "server", a.server, "err", err)
				a.shutdown()
			}
			return
		}
		if ua, ok := from.(*net.UDPAddr); ok && (!ua.IP.Equal(server.IP) || ua.Port != server.Port) {
			continue
		}
		if _, err := a.client.HandleInbound(buf[:n], server); err != nil {
			a.logger.Debug("TURN packet dropped", "server", a.server, "err", err)
		}
	}
}

// refreshLoop keeps the permissions Permit installed alive; pion refreshes
// the allocation itself and the permissions of peers we wrote to.
func (a *turnAllocation) refreshLoop() {
	defer a.wg.Done()
	t := time.NewTicker(turnPermitRefresh)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
		}
		a.mu.Lock()
		addrs := make([]net.Addr, 0, len(a.permits))
		for _, addr := range a.permits {
			addrs = append(addrs, addr)
		}
		a.mu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		err := a.createPermission(addrs)
		if err == nil {
			continue
		}
		if allocationLost(err) || noAnswer(err) {
			// The server no longer knows the allocation or no longer
			// accepts its credentials (coturn checks their expiry on every
			// request), or it does not answer at all: it is gone. Closing it makes PacketConn fail and
			// Permit return net.ErrClosed, so the transport allocates anew.
			a.logger.Info("TURN allocation lost", "server", a.server, "err", err)
			_ = a.release()
			return
		}
		a.logger.Info("TURN permission refresh failed", "server", a.server, "err", err)
	}
}

// allocationLost: 437 Allocation Mismatch (the server has no such
// allocation), 401 or pion's 400 (credentials refused).
func allocationLost(err error) bool {
	var turnErr *stun.TurnError
	if !errors.As(err, &turnErr) {
		return false
	}
	switch turnErr.ErrorCodeAttr.Code {
	case stun.CodeBadRequest, stun.CodeUnauthorized, stun.CodeAllocMismatch:
		return true
	}
	return false
}

// noAnswer: the server answered none of a request's retransmissions
// (pion's unexported errAllRetransmissionsFailed, after about 8 s). pion's
// server drops, unanswered, a Refresh or CreatePermission for an allocation
// it does not know — after a restart of the registry (whose embedded relay
// keeps allocations in memory) or when a NAT gave our socket a new mapping
// — so silence from the server that granted the allocation means it is
// gone as surely as a 437 does (make soak, seed 5: a client kept such an
// allocation for good and never reached a symmetric-NAT peer again).
// Allocating anew costs a round trip; a server that is only unreachable
// for now refuses the new allocation the same way, and the next attempt
// tries again.
func noAnswer(err error) bool {
	return err != nil && strings.Contains(err.Error(), "all retransmissions failed")
}

func (a *turnAllocation) Close() error {
	err := a.release()
	a.wg.Wait()
	if err != nil {
		return fmt.Errorf("release allocation on %s: %w", a.server, err)
	}
	return nil
}

// release gives the allocation back (a Refresh with lifetime 0, which pion
// sends without waiting for the answer) and stops the client, without
// waiting for the goroutines: refreshLoop calls it.
func (a *turnAllocation) release() error {
	var err error
	a.closeOnce.Do(func() {
		if a.relayed != nil {
			err = a.relayed.Close()
		}
		a.shutdown()
	})
	return err
}

// shutdown ends the client's transactions and closes the socket, which
// ends readLoop; done ends refreshLoop.
func (a *turnAllocation) shutdown() {
	a.stopOnce.Do(func() {
		close(a.done)
		a.client.Close()
		_ = a.conn.Close()
	})
}

// relayedConn is pion's relayed PacketConn whose Close releases the whole
// allocation, so a quic.Transport closing its conn cleans everything up.
type relayedConn struct {
	net.PacketConn
	alloc *turnAllocation
}

// ReadFrom drops datagrams larger than p instead of failing: pion answers
// them with io.ErrShortBuffer, which quic-go (reading into 1452 bytes)
// would take as fatal and close its transport — so any host at a permitted
// IP could end the connection with one large datagram. A UDP socket would
// truncate it, and QUIC would discard it the same way.
func (c *relayedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if errors.Is(err, io.ErrShortBuffer) {
			continue // pion has already consumed it
		}
		return n, addr, err
	}
}

func (c *relayedConn) Close() error { return c.alloc.Close() }
