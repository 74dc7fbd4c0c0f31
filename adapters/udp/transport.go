package udp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/google/wire"
	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ProviderSet provides the QUIC file transport.
var ProviderSet = wire.NewSet(NewTransport, wire.Bind(new(ports.FileTransport), new(*Transport)))

var _ ports.FileTransport = (*Transport)(nil)

// Transport is the QUIC file transport: one UDP socket that both listens and
// dials, one connection per peer reused by every Send.
type Transport struct {
	me       domain.LocalIdentity
	verifier ports.PeerVerifier
	cfg      Config
	log      *slog.Logger
	cert     tls.Certificate
	qconf    *quic.Config

	udp       *net.UDPConn
	qt        *quic.Transport
	listener  *quic.Listener
	endpoints []string

	mu     sync.Mutex
	peers  map[string]*peerConn // by the peer's public key
	closed bool

	serving sync.Mutex // held while Serve runs: one Serve at a time
	active  activeStreams
	perPeer peerCounts // incoming connections by the peer's key
}

// peerConn is the outgoing connection to one peer; mu serialises dialing.
type peerConn struct {
	mu   sync.Mutex
	conn *quic.Conn
}

// NewTransport listens on cfg.ListenAddr (UDP) and returns the transport
// and its cleanup, which closes every connection and the socket.
func NewTransport(me domain.LocalIdentity, verifier ports.PeerVerifier, cfg Config, logger *slog.Logger) (*Transport, func(), error) {
	if me.IsZero() {
		return nil, nil, errors.New("udp transport: no local identity")
	}
	if verifier == nil {
		return nil, nil, errors.New("udp transport: nil peer verifier")
	}
	if logger == nil {
		logger = slog.Default()
	}
	cfg = cfg.withDefaults()
	cert, err := selfSignedCert(me)
	if err != nil {
		return nil, nil, fmt.Errorf("udp transport: %w", err)
	}
	addr, err := net.ResolveUDPAddr("udp", string(cfg.ListenAddr))
	if err != nil {
		return nil, nil, fmt.Errorf("udp transport: listen address %q: %w", cfg.ListenAddr, err)
	}
	udp, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("udp transport: listen %s: %w", cfg.ListenAddr, err)
	}
	t := &Transport{
		me: me, verifier: verifier, cfg: cfg, log: logger.With("component", "udp"), cert: cert,
		udp:   udp,
		peers: make(map[string]*peerConn),
		qconf: &quic.Config{
			HandshakeIdleTimeout:           cfg.HandshakeTimeout,
			MaxIdleTimeout:                 cfg.IdleTimeout,
			KeepAlivePeriod:                cfg.IdleTimeout / 3,
			InitialStreamReceiveWindow:     1 << 20,
			MaxStreamReceiveWindow:         cfg.MaxStreamReceiveWindow,
			InitialConnectionReceiveWindow: 2 << 20,
			MaxConnectionReceiveWindow:     cfg.MaxConnectionReceiveWindow,
			MaxIncomingStreams:             int64(cfg.MaxIncomingStreams),
			MaxIncomingUniStreams:          -1,
		},
	}
	t.active.m = make(map[activeKey]*activeStream)
	// quic-go raises the socket buffers itself (SO_RCVBUF/SO_SNDBUF, with
	// the FORCE variants when privileged) and logs when it cannot.
	t.qt = &quic.Transport{Conn: udp}
	t.listener, err = t.qt.Listen(serverTLS(cert), t.qconf)
	if err != nil {
		_ = udp.Close()
		return nil, nil, fmt.Errorf("udp transport: quic listen: %w", err)
	}
	t.endpoints = endpointsFor(udp.LocalAddr().(*net.UDPAddr))
	t.log.Info("file transport listening", "addr", udp.LocalAddr().String())
	return t, t.close, nil
}

// Endpoints are the listening port on each of this host's addresses
// (global ones first, loopback last), or the listen address when it names a
// host.
func (t *Transport) Endpoints() []string { return append([]string(nil), t.endpoints...) }

func endpointsFor(la *net.UDPAddr) []string {
	port := strconv.Itoa(la.Port)
	if la.IP != nil && !la.IP.IsUnspecified() {
		return []string{net.JoinHostPort(la.IP.String(), port)}
	}
	addrs, err := net.InterfaceAddrs()
	var global, loop []string
	if err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
				continue
			}
			ep := net.JoinHostPort(ipn.IP.String(), port)
			if ipn.IP.IsLoopback() {
				loop = append(loop, ep)
			} else {
				global = append(global, ep)
			}
		}
	}
	if len(global)+len(loop) == 0 {
		loop = []string{net.JoinHostPort("127.0.0.1", port)}
	}
	return append(global, loop...)
}

// close ends every connection and releases the socket.
func (t *Transport) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	peers := t.peers
	t.peers = map[string]*peerConn{}
	t.mu.Unlock()
	for _, p := range peers {
		p.mu.Lock()
		if p.conn != nil {
			_ = p.conn.CloseWithError(connClosed, "closing")
		}
		p.mu.Unlock()
	}
	t.active.cancelAll(codeShutdown)
	_ = t.listener.Close()
	_ = t.qt.Close()
	_ = t.udp.Close()
}

// conn returns the connection to peer, dialing its file endpoints in order
// when there is none or it died. fresh forces a new dial.
func (t *Transport) conn(ctx context.Context, to domain.Peer, fresh bool) (*quic.Conn, bool, error) {
	key := string(to.Identity.PublicKey())
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, false, net.ErrClosed
	}
	p := t.peers[key]
	if p == nil {
		p = &peerConn{}
		t.peers[key] = p
	}
	t.mu.Unlock()

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && !fresh && p.conn.Context().Err() == nil {
		return p.conn, true, nil
	}
	if p.conn != nil {
		_ = p.conn.CloseWithError(connClosed, "replaced")
		p.conn = nil
	}
	conn, err := t.dial(ctx, to)
	if err != nil {
		return nil, false, err
	}
	p.conn = conn
	return conn, false, nil
}

// dial tries each endpoint in order and returns the first connection that
// proves the expected identity. An address may be stale and now belong to
// someone else, so a key mismatch does not stop the search: it is returned
// (a *domain.KeyChangedError) only when no endpoint succeeded.
func (t *Transport) dial(ctx context.Context, to domain.Peer) (*quic.Conn, error) {
	if len(to.Endpoints.File) == 0 {
		return nil, fmt.Errorf("%w: %s has no file endpoint", domain.ErrPeerOffline, to.Name())
	}
	var errs []error
	var keyErr error
	for _, ep := range to.Endpoints.File {
		addr, err := net.ResolveUDPAddr("udp", ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", ep, err))
			continue
		}
		var refused certError
		dctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
		conn, err := t.qt.Dial(dctx, addr, clientTLS(t.cert, to.Identity, &refused), t.qconf)
		cancel()
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if cerr := refused.get(); cerr != nil {
			t.log.Warn("file endpoint presented another identity: refused", "peer", to.Name().String(), "addr", ep, "err", cerr)
			if keyErr == nil {
				keyErr = fmt.Errorf("dial %s at %s: %w", to.Name(), ep, cerr)
			}
			continue
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", ep, err))
	}
	if keyErr != nil {
		return nil, keyErr
	}
	return nil, fmt.Errorf("%w: %s: %w", domain.ErrPeerOffline, to.Name(), errors.Join(errs...))
}

// forget drops conn from the cache if it is still the one for the peer.
func (t *Transport) forget(to domain.Peer, conn *quic.Conn) {
	t.mu.Lock()
	p := t.peers[string(to.Identity.PublicKey())]
	t.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.conn == conn {
		p.conn = nil
	}
	p.mu.Unlock()
}
