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
	"sync/atomic"

	"github.com/google/wire"
	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/localnet"
	"github.com/chatx/chatx/ports"
)

// ProviderSet provides the QUIC transport: files, message-link streams and
// the reachability diagnostics.
var ProviderSet = wire.NewSet(
	NewTransport,
	wire.Bind(new(ports.FileTransport), new(*Transport)),
	wire.Bind(new(ports.PeerStreams), new(*Transport)),
	wire.Bind(new(ports.Diagnostics), new(*Transport)),
)

var (
	_ ports.FileTransport = (*Transport)(nil)
	_ ports.PeerStreams   = (*Transport)(nil)
	_ ports.Diagnostics   = (*Transport)(nil)
	_ ports.PathReporter  = (*Transport)(nil)
)

// Transport is the QUIC transport of a client: one UDP socket that listens,
// dials, asks STUN servers for its reflexive address and punches holes (the
// non-QUIC packets are demultiplexed from QUIC by quic-go), and one
// connection per peer, whoever dialled, shared by file streams and
// message-link streams (docs/reachability.md, docs/file-protocol.md).
type Transport struct {
	me       domain.LocalIdentity
	verifier ports.PeerVerifier
	rdv      ports.Rendezvous // nil: no STUN, punching or relay
	nets     localnet.Cache   // our interface networks, for which private candidates are worth a try
	cfg      Config
	log      *slog.Logger
	cert     tls.Certificate
	qconf    *quic.Config

	udp       *net.UDPConn
	qt        *quic.Transport
	listener  *quic.Listener
	tcpLn     *net.TCPListener // TCP file streams (tcpfile.go); nil when none
	endpoints []string

	// ctx ends at close; every background goroutine runs under it and is
	// counted in bg.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	bgMu   sync.Mutex
	bgDone bool // no goroutine starts any more

	mu     sync.Mutex
	peers  map[string]*peerEntry // by the peer's public key
	closed bool

	serving     sync.Mutex // held while Serve runs: one Serve at a time
	files       fileServer
	active      activeStreams
	sent        sentStates   // hash states of interrupted sends, for their resume
	perPeer     peerCounts   // incoming connections by the peer's key
	stripeConns peerCounts   // incoming stripe connections by the peer's key
	joins       stripeJoins  // striped file streams waiting for their JOIN streams
	stripedOut  atomic.Int64 // file streams we sent on more than one stripe
	stripedIn   atomic.Int64 // file streams we received on more than one stripe
	// stripedSlots: files being received striped (maxStripedIncoming).
	stripedSlots chan struct{}
	// onlyVersions, when set, are the only stream versions we answer (others
	// get UNSUPPORTED, as from an older peer); tests set it.
	onlyVersions []byte
	tcpPerPeer   peerCounts    // incoming TCP file connections by the peer's key
	tcpVersion2  expiringSet   // peers' keys whose TCP files go as version 2 for now (tcpVersion2For)
	tcpIncoming  chan struct{} // slots of incoming TCP file connections (MaxConnections, apart from QUIC's)
	links        chan *pathConn
	linkCnt      peerCounts // open incoming link streams by the peer's key
	incoming     chan struct{}

	stun     stunWaiters
	stunKick chan struct{} // wakes the STUN loop (awaitSTUN)
	reach    reachState
	punch    puncher
	bdayBusy atomic.Bool // a birthday (either side) runs: one at a time
	relay    relayState
	diag     diagnostics
	drops    dropCounter
	refused  sendRefusals // datagrams the system refused to send (sendloss.go)

	// The file hash a stream asks for (hashver.go). sendSHA256 makes us
	// send as a peer of versions 2 and 3 does (never BLAKE3); tests set it.
	sendSHA256 bool
	tcpSHA256  expiringSet // peers' keys whose TCP files go with SHA-256 for now (tcpSHA256For)
}

// NewTransport listens on cfg.ListenAddr (UDP) and returns the transport
// and its cleanup, which closes every connection and the socket. rdv may be
// nil (tests, LAN only): then there is no STUN, punching or relay.
func NewTransport(me domain.LocalIdentity, verifier ports.PeerVerifier, rdv ports.Rendezvous, cfg Config, logger *slog.Logger) (*Transport, func(), error) {
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
		me: me, verifier: verifier, rdv: rdv, cfg: cfg, log: logger.With("component", "udp"), cert: cert,
		udp:      udp,
		peers:    make(map[string]*peerEntry),
		links:    make(chan *pathConn, cfg.MaxPendingLinks),
		incoming: make(chan struct{}, cfg.MaxConnections),
		stunKick: make(chan struct{}, 1),
		qconf: &quic.Config{
			HandshakeIdleTimeout:           cfg.HandshakeTimeout,
			MaxIdleTimeout:                 cfg.IdleTimeout,
			KeepAlivePeriod:                cfg.IdleTimeout / 3,
			InitialStreamReceiveWindow:     1 << 20,
			MaxStreamReceiveWindow:         cfg.MaxStreamReceiveWindow,
			InitialConnectionReceiveWindow: 2 << 20,
			MaxConnectionReceiveWindow:     cfg.MaxConnectionReceiveWindow,
			MaxIncomingStreams:             int64(cfg.MaxIncomingStreams + cfg.MaxLinksPerPeer),
			MaxIncomingUniStreams:          -1,
		},
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.active.m = make(map[activeKey]*activeStream)
	t.files.slots = make(chan struct{}, cfg.MaxIncomingTransfers)
	t.stripedSlots = make(chan struct{}, maxStripedIncoming)
	t.punch.init()
	// 8 MiB socket buffers each way (quic-go would stop at 7 MiB, below
	// the 7.5 MB its wiki asks for); it leaves larger ones alone.
	if rcv, snd, err := raiseSocketBuffers(udp); err != nil || rcv < socketBuffer || snd < socketBuffer {
		logger.Debug("udp socket buffers below what was asked", "receive", rcv, "send", snd, "want", socketBuffer, "err", err)
	}
	t.refused.log = t.log
	t.qt = &quic.Transport{Conn: lossyUDPConn{udp, &t.refused}}
	// quic-go drops non-QUIC packets until ReadNonQUICPacket was called
	// once: arm it before anything is sent from the socket.
	armed, arm := context.WithCancel(context.Background())
	arm()
	_, _, _ = t.qt.ReadNonQUICPacket(armed, nil)
	t.listener, err = t.qt.Listen(quicServerTLS(cert), t.qconf)
	if err != nil {
		_ = udp.Close()
		t.cancel()
		return nil, nil, fmt.Errorf("udp transport: quic listen: %w", err)
	}
	t.endpoints = endpointsFor(udp.LocalAddr().(*net.UDPAddr))
	t.go_(func() { t.readNonQUIC(t.ctx) })
	t.go_(func() { t.acceptLoop(t.ctx, t.listener, false) })
	t.listenTCP()
	if rdv != nil {
		t.go_(func() { t.stunLoop(t.ctx) })
		t.go_(func() { t.signalLoop(t.ctx) })
	}
	t.log.Info("quic transport listening", "addr", udp.LocalAddr().String(), "rendezvous", rdv != nil)
	return t, t.close, nil
}

// go_ runs f as a background goroutine owned by the transport, unless
// the transport is closing (then it reports false and f never runs).
func (t *Transport) go_(f func()) bool {
	t.bgMu.Lock()
	defer t.bgMu.Unlock()
	if t.bgDone {
		return false
	}
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		f()
	}()
	return true
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

// close ends every connection and background goroutine and releases the
// socket.
func (t *Transport) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	peers := t.peers
	t.peers = map[string]*peerEntry{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		for _, c := range p.all() {
			_ = c.conn.CloseWithError(connClosed, "closing")
		}
	}
	t.active.cancelAll(codeShutdown)
	_ = t.listener.Close()
	if t.tcpLn != nil {
		_ = t.tcpLn.Close()
	}
	t.relay.close()
	_ = t.qt.Close()
	_ = t.udp.Close()
	t.bgMu.Lock()
	t.bgDone = true
	t.bgMu.Unlock()
	t.bg.Wait()
}
