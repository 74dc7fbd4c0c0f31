package tcp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/wire"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/localnet"
	"github.com/chatx/chatx/ports"
)

// ProviderSet builds a Link and binds it to ports.MessageLink.
var ProviderSet = wire.NewSet(NewLink, wire.Bind(new(ports.MessageLink), new(*Link)))

var _ ports.MessageLink = (*Link)(nil)

// Errors of the link beyond those of the port.
var (
	// ErrLinkRefused: the peer's verifier refused our identity, or the peer
	// is full or shutting down.
	ErrLinkRefused = errors.New("peer refused the link")
	// ErrPeerMismatch: the peer presented the expected key under another name.
	ErrPeerMismatch = errors.New("peer presented another identity")

	errDuplicate  = errors.New("another link to this peer wins the tie-break")
	errLinkClosed = errors.New("link closed")
	errReplaced   = errors.New("replaced by a newer link to the same peer")
	errPeerGoAway = errors.New("the peer closed the link")
)

// Link is the TCP + TLS 1.3 message link of one local identity. It keeps at
// most one authenticated connection per peer, whoever dialled it.
type Link struct {
	me        domain.LocalIdentity
	myKey     string
	instance  [16]byte
	verifier  ports.PeerVerifier
	streams   ports.PeerStreams // QUIC streams when TCP cannot connect; may be nil
	cfg       Config
	log       *slog.Logger
	cert      tls.Certificate
	ln        net.Listener
	endpoints []string
	pending   chan struct{}  // semaphore of incoming handshakes
	nets      localnet.Cache // our interface networks, for dialable

	ctx    context.Context // cancelled on shutdown; parent of every connection
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	slots      map[string]*slot // by peer public key
	links      int
	handler    ports.EnvelopeHandler
	handlerCtx context.Context
	serving    chan struct{} // closed once Serve has set the handler
}

// slot is what the link knows of one peer.
type slot struct {
	conn       *peerConn     // the established link, or nil
	dialing    chan struct{} // non-nil while Send dials; closed when it ends
	changed    chan struct{} // closed and replaced whenever conn changes
	backoff    time.Duration
	retryAt    time.Time
	backoffEPs string      // the endpoints the backoff applies to
	deliverMu  sync.Mutex  // one HandleEnvelope at a time per peer
	peer       domain.Peer // as the last Send saw it: where a better path may be
}

// NewLink listens on cfg.ListenAddr and returns the link with its cleanup,
// which closes the listener and every connection and waits for every
// goroutine. The verifier decides which peers may use a link. streams, when
// not nil, carries the same protocol over QUIC streams to peers that TCP
// cannot reach (behind NATs, through a relay); Serve accepts those too.
func NewLink(me domain.LocalIdentity, verifier ports.PeerVerifier, streams ports.PeerStreams, cfg Config, logger *slog.Logger) (*Link, func(), error) {
	if me.IsZero() {
		return nil, nil, domain.ErrNoIdentity
	}
	if verifier == nil {
		return nil, nil, errors.New("tcp link: nil peer verifier")
	}
	if logger == nil {
		logger = slog.Default()
	}
	cfg = cfg.withDefaults()
	cert, err := selfSignedCertificate(me)
	if err != nil {
		return nil, nil, fmt.Errorf("tcp link: %w", err)
	}
	ln, err := net.Listen("tcp", string(cfg.ListenAddr))
	if err != nil {
		return nil, nil, fmt.Errorf("tcp link: listen %s: %w", cfg.ListenAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		me: me, myKey: string(me.PublicKey()), verifier: verifier, streams: streams, cfg: cfg,
		log:  logger.With("component", "tcp-link"),
		cert: cert, ln: ln, endpoints: listenEndpoints(ln.Addr()),
		pending: make(chan struct{}, cfg.MaxPendingHandshakes),
		ctx:     ctx, cancel: cancel,
		slots: make(map[string]*slot), serving: make(chan struct{}),
	}
	if _, err := rand.Read(l.instance[:]); err != nil {
		ln.Close()
		cancel()
		return nil, nil, fmt.Errorf("tcp link: instance id: %w", err)
	}
	l.log.Info("listening", "addr", ln.Addr().String(), "endpoints", l.endpoints)
	cleanup := func() {
		l.shutdown()
		l.wg.Wait()
	}
	return l, cleanup, nil
}

// Endpoints are the listening port on this host's interface addresses:
// non-loopback addresses first (in the order the OS lists them), loopback
// last; IPv6 link-local addresses are left out (they need a zone). A link
// listening on one address advertises just that address.
func (l *Link) Endpoints() []string { return append([]string(nil), l.endpoints...) }

func listenEndpoints(addr net.Addr) []string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return []string{addr.String()}
	}
	port := strconv.Itoa(ta.Port)
	if !ta.IP.IsUnspecified() {
		return []string{net.JoinHostPort(ta.IP.String(), port)}
	}
	v4only := ta.IP.To4() != nil
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return []string{net.JoinHostPort("127.0.0.1", port)}
	}
	var global, loopback []string
	for _, a := range ifAddrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() || ipn.IP.IsUnspecified() {
			continue
		}
		if v4only && ipn.IP.To4() == nil {
			continue
		}
		ep := net.JoinHostPort(ipn.IP.String(), port)
		if ipn.IP.IsLoopback() {
			loopback = append(loopback, ep)
		} else {
			global = append(global, ep)
		}
	}
	return append(global, loopback...)
}

// Send queues env on the link to the peer, dialling to.Endpoints.Link in
// order when there is none. nil means queued on an authenticated link; an
// envelope queued when the link dies is lost (the use-cases' outbox retries
// until acknowledged). Errors: domain.ErrPeerOffline (no endpoint answered,
// or the peer stopped reading for Config.WriteTimeout), *domain.KeyChangedError
// (the peer presented another key), ErrLinkRefused, ctx's error.
func (l *Link) Send(ctx context.Context, to domain.Peer, env ports.Envelope) error {
	if to.Identity.IsZero() {
		return fmt.Errorf("send: %w: peer without identity", domain.ErrUnknownPeer)
	}
	if to.Identity.SameKey(l.me.PublicKey()) {
		return fmt.Errorf("send to %s: that is our own key", to.Name())
	}
	frame, err := EncodeEnvelope(env)
	if err != nil {
		return fmt.Errorf("send to %s: %w", to.Name(), err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		c, err := l.connTo(ctx, to)
		if err != nil {
			return fmt.Errorf("send to %s: %w", to.Name(), err)
		}
		err = c.enqueue(ctx, outFrame{b: frame, kind: env.Kind, id: env.MessageID})
		if errors.Is(err, errLinkClosed) {
			continue // the link died under us: dial again
		}
		if err != nil {
			return fmt.Errorf("send to %s: %w", to.Name(), err)
		}
		return nil
	}
	return fmt.Errorf("send to %s: %w: the link kept closing", to.Name(), domain.ErrPeerOffline)
}

// connTo returns the established link to the peer, dialling it if needed.
func (l *Link) connTo(ctx context.Context, to domain.Peer) (*peerConn, error) {
	key := string(to.Identity.PublicKey())
	eps := strings.Join(to.Endpoints.Link, " ")
	waitedForPeer := false
	for round := 0; ; round++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if round == 8 { // links kept replacing each other: give up for now
			return nil, fmt.Errorf("%w: no stable link", domain.ErrPeerOffline)
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		s, err := l.slotLocked(key)
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		s.peer = to
		if c := s.conn; c != nil {
			l.mu.Unlock()
			return c, nil
		}
		if ch := s.dialing; ch != nil {
			l.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s.backoffEPs == eps && time.Now().Before(s.retryAt) {
			wait := time.Until(s.retryAt).Round(time.Millisecond)
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: no endpoint answered (next dial in %s)", domain.ErrPeerOffline, wait)
		}
		dialing := make(chan struct{})
		s.dialing = dialing
		l.mu.Unlock()

		c, err := l.dial(ctx, to)

		l.mu.Lock()
		s.dialing = nil
		close(dialing)
		changed, hasConn := s.changed, s.conn != nil
		installed, code := false, byte(0)
		switch {
		case err == nil:
			s.backoff, s.backoffEPs = 0, ""
			installed, code = l.installLocked(s, c)
		case errors.Is(err, domain.ErrPeerOffline):
			s.backoff = min(max(2*s.backoff, l.cfg.MinBackoff), l.cfg.MaxBackoff)
			s.retryAt, s.backoffEPs = time.Now().Add(s.backoff), eps
		}
		l.mu.Unlock()

		switch {
		case err == nil && installed:
			return c, nil
		case err == nil && code == GoAwayBusy:
			c.refuse(code)
			return nil, fmt.Errorf("%w: already %d links", domain.ErrTooLarge, l.cfg.MaxLinks)
		case err == nil:
			c.refuse(code) // the peer's link won meanwhile: use it
			continue
		case errors.Is(err, errDuplicate) && hasConn:
			continue // the peer's link is already here
		case errors.Is(err, errDuplicate) && !waitedForPeer:
			// The peer is dialling us and its link wins: wait for it.
			waitedForPeer = true
			t := time.NewTimer(l.cfg.DialTimeout)
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		case errors.Is(err, errDuplicate):
			return nil, fmt.Errorf("%w: the peer's own link did not arrive", domain.ErrPeerOffline)
		}
		return nil, err
	}
}

// slotLocked returns the peer's slot, making it, and dropping idle slots
// when there are too many.
func (l *Link) slotLocked(key string) (*slot, error) {
	if s, ok := l.slots[key]; ok {
		return s, nil
	}
	if len(l.slots) >= 4*l.cfg.MaxLinks {
		for k, s := range l.slots {
			if s.conn == nil && s.dialing == nil && s.deliverMu.TryLock() {
				s.deliverMu.Unlock()
				delete(l.slots, k)
			}
		}
		if len(l.slots) >= 4*l.cfg.MaxLinks {
			return nil, fmt.Errorf("%w: %d peers", domain.ErrTooLarge, len(l.slots))
		}
	}
	s := &slot{changed: make(chan struct{})}
	l.slots[key] = s
	return s, nil
}

// installLocked makes c the peer's link, or says why not. When two links
// join the same peers (both dialled at once, or one side redials) the rules
// of docs/peer-protocol.md "One link per pair" decide, identically on both sides:
//   - a link from another instance of the peer (it restarted) replaces the old one;
//   - of two links dialled by the same side, the newer wins (the dialler lost the old);
//   - of two links dialled by different sides, the one dialled by the
//     smaller key (bytewise) wins; a dial still in progress counts.
func (l *Link) installLocked(s *slot, c *peerConn) (bool, byte) {
	if l.closed {
		return false, GoAwayShutdown
	}
	old := s.conn
	if old == nil {
		if !c.dialedByMe && s.dialing != nil && l.myKey < c.peerKey {
			return false, GoAwayDuplicate
		}
		if l.links >= l.cfg.MaxLinks {
			return false, GoAwayBusy
		}
		l.links++
	} else if old.instance == c.instance && old.dialedByMe != c.dialedByMe {
		cDialerSmaller := (c.dialedByMe && l.myKey < c.peerKey) || (!c.dialedByMe && c.peerKey < l.myKey)
		if !cDialerSmaller {
			old.probe()
			return false, GoAwayDuplicate
		}
	}
	s.conn = c
	close(s.changed)
	s.changed = make(chan struct{})
	l.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	if c.path.Transport == domain.TransportQUIC {
		l.wg.Add(1)
		go l.upgrade(c)
	}
	if old != nil {
		// Cancel now, so that old's reader delivers nothing more once c's
		// reader may start; close takes l.mu, which the caller holds.
		old.cancel()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			old.close(errReplaced)
		}()
	}
	return true, 0
}

// dropLocked forgets c if it is still the peer's link.
func (l *Link) dropLocked(c *peerConn) {
	s := l.slots[c.peerKey]
	if s == nil || s.conn != c {
		return
	}
	s.conn = nil
	l.links--
	close(s.changed)
	s.changed = make(chan struct{})
}

// dial races the ways to reach the peer, Happy Eyeballs style (RFC 8305):
// the TCP endpoints we may dial, each started DialStagger after the one
// before, and — after StreamDelay, or at once when no TCP endpoint is
// usable — a QUIC stream from PeerStreams, which punches through NATs or
// takes a relay if it must. The first connection to arrive runs the chatx/1
// handshake (TLS 1.3 with identity checks, then HELLO); if that fails the
// race goes on with the rest. A key mismatch on one endpoint does not stop
// the others (it may be another program on a stale address); if none gives
// a link, a key mismatch is reported before "refused", and that before
// "offline".
func (l *Link) dial(ctx context.Context, to domain.Peer) (*peerConn, error) {
	addrs := dialable(to.Endpoints.Link, l.nets.Get())
	if len(addrs) == 0 && l.streams == nil {
		return nil, fmt.Errorf("%w: %s has no link endpoint we can dial", domain.ErrPeerOffline, to.Name())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type arrival struct {
		raw  net.Conn
		path domain.Path
		addr string
		err  error
	}
	arrivals := make(chan arrival, len(addrs)+1)
	var started sync.WaitGroup
	launched := 0
	launch := func(delay time.Duration, addr string, connect func(context.Context) (net.Conn, domain.Path, error)) {
		launched++
		started.Add(1)
		go func() {
			defer started.Done()
			if delay > 0 {
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					arrivals <- arrival{addr: addr, err: ctx.Err()}
					return
				}
			}
			raw, path, err := connect(ctx)
			arrivals <- arrival{raw, path, addr, err}
		}()
	}
	for i, addr := range addrs {
		launch(time.Duration(i)*l.cfg.DialStagger, addr, func(ctx context.Context) (net.Conn, domain.Path, error) {
			return l.connectTCP(ctx, addr)
		})
	}
	if l.streams != nil {
		delay := l.cfg.StreamDelay
		if len(addrs) == 0 {
			delay = 0
		}
		launch(delay, "quic", func(ctx context.Context) (net.Conn, domain.Path, error) {
			pc, err := l.streams.OpenStream(ctx, to)
			if err != nil {
				return nil, domain.Path{}, err
			}
			return pc, pc.Path(), nil
		})
	}
	// Connections that arrive after the winner are closed unused.
	defer func() {
		go func() {
			started.Wait()
			close(arrivals)
		}()
		go func() {
			for a := range arrivals {
				if a.raw != nil {
					a.raw.Close()
				}
			}
		}()
	}()

	var keyErr, refused, streamErr, last error
	for pending := launched; pending > 0; pending-- {
		a := <-arrivals
		if a.err == nil {
			c, err := l.handshake(ctx, to, a.raw, a.addr, a.path)
			if err == nil {
				return c, nil
			}
			a.err = err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var kc *domain.KeyChangedError
		switch {
		case errors.As(a.err, &kc) || errors.Is(a.err, ErrPeerMismatch):
			l.log.Warn("peer presented another key: refused", "peer", to.Name().String(), "addr", a.addr, "err", a.err)
			keyErr = a.err
		case errors.Is(a.err, errDuplicate):
			return nil, a.err
		case errors.Is(a.err, ErrLinkRefused):
			refused = a.err
		case a.addr == "quic":
			streamErr = a.err
		default:
			l.log.Debug("endpoint did not answer", "peer", to.Name().String(), "addr", a.addr, "err", a.err)
			last = a.err
		}
	}
	switch {
	case keyErr != nil:
		return nil, keyErr
	case refused != nil:
		return nil, refused
	case streamErr != nil && (last == nil || !errors.Is(streamErr, domain.ErrPeerOffline)):
		// The stream's reason (no path, punching failed, relay refused) says
		// more than "connection timed out" on a private address.
		return nil, fmt.Errorf("%w: %s: %w", domain.ErrPeerOffline, to.Name(), streamErr)
	}
	return nil, fmt.Errorf("%w: %s: %w", domain.ErrPeerOffline, to.Name(), last)
}

// connectTCP opens a TCP connection to one endpoint.
func (l *Link) connectTCP(ctx context.Context, addr string) (net.Conn, domain.Path, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, domain.Path{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	return raw, tcpPath(raw.RemoteAddr()), nil
}

// handshake runs the dialer's side of chatx/1 on raw — TLS 1.3 with the
// identity checks of docs/peer-protocol.md §1, then HELLO — within
// DialTimeout, and returns the connection, not yet installed.
func (l *Link) handshake(ctx context.Context, to domain.Peer, raw net.Conn, addr string, path domain.Path) (*peerConn, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	defer cancel()
	var keyErr error
	tc := tls.Client(raw, tlsConfig(l.cert, func(cs tls.ConnectionState) error {
		id, err := peerIdentity(cs)
		if err != nil {
			return err
		}
		if !to.Identity.SameKey(id.PublicKey()) {
			keyErr = &domain.KeyChangedError{Name: to.Name(), Old: to.Identity.Fingerprint(), New: id.Fingerprint()}
			return keyErr
		}
		if !id.Name().Equal(to.Name()) {
			keyErr = fmt.Errorf("%w: expected %s, the certificate names %s", ErrPeerMismatch, to.Name(), id.Name())
			return keyErr
		}
		return nil
	}))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		if keyErr != nil {
			return nil, fmt.Errorf("TLS handshake with %s at %s: %w", to.Name(), addr, keyErr)
		}
		return nil, fmt.Errorf("TLS handshake with %s at %s: %w", to.Name(), addr, err)
	}
	peer, err := peerIdentity(tc.ConnectionState())
	if err == nil {
		err = l.verifier.VerifyPeer(ctx, peer)
	}
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("verify %s at %s: %w", to.Name(), addr, err)
	}
	deadline, _ := ctx.Deadline()
	tc.SetDeadline(deadline)
	hello, _ := AppendFrame(nil, FrameHello, l.instance[:])
	if _, err := tc.Write(hello); err != nil {
		tc.Close()
		return nil, fmt.Errorf("hello to %s at %s: %w", to.Name(), addr, err)
	}
	fr := NewFrameReader(tc)
	f, err := fr.Next()
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("hello from %s at %s: %w", to.Name(), addr, err)
	}
	switch {
	case f.Type == FrameGoAway && len(f.Payload) == 1 && f.Payload[0] == GoAwayDuplicate:
		tc.Close()
		return nil, errDuplicate
	case f.Type == FrameGoAway && len(f.Payload) == 1:
		tc.Close()
		return nil, fmt.Errorf("%s at %s: %w (%s)", to.Name(), addr, ErrLinkRefused, goAwayText(f.Payload[0]))
	case f.Type != FrameHello || len(f.Payload) != 16:
		tc.Close()
		return nil, fmt.Errorf("hello from %s at %s: %w: frame type %#x of %d bytes", to.Name(), addr, ErrProtocol, byte(f.Type), len(f.Payload))
	}
	tc.SetDeadline(time.Time{})
	c := l.newConn(peer, tc, fr, true, path)
	copy(c.instance[:], f.Payload)
	l.log.Info("link up", "peer", peer.Name().String(), "peer_id", string(peer.PeerID()), "addr", addr, "path", path.String(), "dialled", true)
	return c, nil
}

func goAwayText(code byte) string {
	switch code {
	case GoAwayRefused:
		return "our identity was not accepted"
	case GoAwayDuplicate:
		return "duplicate link"
	case GoAwayShutdown:
		return "shutting down"
	case GoAwayProtocol:
		return "protocol error"
	case GoAwayBusy:
		return "too many links"
	}
	return fmt.Sprintf("code %d", code)
}

// Serve accepts links until ctx is done and passes every envelope to h, in
// order and one at a time per peer. Envelopes that arrive before Serve
// (on links Send dialled) wait for it. When ctx is done Serve shuts the
// link down — listener and every connection — waits for its goroutines and
// returns nil; after the cleanup it returns net.ErrClosed.
func (l *Link) Serve(ctx context.Context, h ports.EnvelopeHandler) error {
	if h == nil {
		return errors.New("tcp link: nil envelope handler")
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return net.ErrClosed
	case l.handler != nil:
		l.mu.Unlock()
		return errors.New("tcp link: already serving")
	}
	l.handler, l.handlerCtx = h, ctx
	close(l.serving)
	l.mu.Unlock()

	stop := context.AfterFunc(ctx, l.shutdown)
	defer stop()
	if l.streams != nil {
		l.wg.Add(1)
		go l.acceptStreams(ctx)
	}
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				l.shutdown()
				l.wg.Wait()
				return nil
			}
			if l.isClosed() {
				return net.ErrClosed
			}
			l.log.Warn("accept failed", "err", err)
			select { // e.g. out of file descriptors: do not spin
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		l.handOff(ctx, raw)
	}
}

// acceptStreams accepts message-link streams over QUIC until ctx is done
// or the transport closes, and runs the same handshake on each as on a TCP
// connection.
func (l *Link) acceptStreams(ctx context.Context) {
	defer l.wg.Done()
	for {
		pc, err := l.streams.AcceptStream(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && !l.isClosed() {
				l.log.Warn("accepting QUIC link streams stopped", "err", err)
			}
			return
		}
		l.handOff(ctx, pc)
	}
}

// handOff starts the acceptor's handshake on raw, unless too many are
// pending or the link is closing.
func (l *Link) handOff(ctx context.Context, raw net.Conn) {
	select {
	case l.pending <- struct{}{}:
	default:
		l.log.Warn("too many pending handshakes: dropping connection", "remote", raw.RemoteAddr().String())
		raw.Close()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		raw.Close()
		<-l.pending
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go l.accept(ctx, raw)
}

func (l *Link) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// accept authenticates one incoming connection and installs it.
func (l *Link) accept(ctx context.Context, raw net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.pending }()
	remote := raw.RemoteAddr().String()
	ctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(l.ctx, func() { raw.Close() })
	defer stop()
	tc := tls.Server(raw, tlsConfig(l.cert, func(cs tls.ConnectionState) error {
		_, err := peerIdentity(cs)
		return err
	}))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		l.log.Warn("incoming link refused: TLS handshake failed", "remote", remote, "err", err)
		return
	}
	peer, err := peerIdentity(tc.ConnectionState())
	if err != nil { // checked in VerifyConnection already
		tc.Close()
		return
	}
	attrs := []any{"peer", peer.Name().String(), "peer_id", string(peer.PeerID()), "remote", remote}
	deadline, _ := ctx.Deadline()
	tc.SetDeadline(deadline)
	fr := NewFrameReader(tc)
	f, err := fr.Next()
	if err != nil || f.Type != FrameHello || len(f.Payload) != 16 {
		tc.Close()
		l.log.Warn("incoming link refused: no hello", append(attrs, "err", err, "frame_type", byte(f.Type))...)
		return
	}
	c := l.newConn(peer, tc, fr, false, pathOf(raw))
	copy(c.instance[:], f.Payload)
	if err := l.verifier.VerifyPeer(ctx, peer); err != nil {
		l.log.Warn("incoming link refused by verifier", append(attrs, "err", err)...)
		c.refuse(GoAwayRefused)
		return
	}
	tc.SetDeadline(time.Time{})
	// The hello reply is the first frame the writer sends.
	hello, _ := AppendFrame(nil, FrameHello, l.instance[:])
	c.push(outFrame{b: hello}) // the queue is empty: it has room
	l.mu.Lock()
	installed, code := false, GoAwayShutdown
	if s, err := l.slotLocked(c.peerKey); err == nil {
		installed, code = l.installLocked(s, c)
	} else {
		code = GoAwayBusy
	}
	l.mu.Unlock()
	if !installed {
		l.log.Info("incoming link not used", append(attrs, "reason", goAwayText(code))...)
		c.refuse(code)
		return
	}
	l.log.Info("link up", append(attrs, "path", c.path.String(), "dialled", false)...)
}

// waitHandler returns the handler of Serve, waiting for Serve to start;
// nil when the connection closes first.
func (l *Link) waitHandler(done <-chan struct{}) (ports.EnvelopeHandler, context.Context) {
	for {
		l.mu.Lock()
		h, hctx, serving := l.handler, l.handlerCtx, l.serving
		l.mu.Unlock()
		if h != nil {
			return h, hctx
		}
		select {
		case <-serving:
		case <-done:
			return nil, nil
		}
	}
}

// shutdown closes the listener and every connection; idempotent.
func (l *Link) shutdown() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	var conns []*peerConn
	for _, s := range l.slots {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	l.mu.Unlock()
	l.ln.Close()
	l.cancel()
	for _, c := range conns {
		c.close(errLinkClosed)
	}
	l.log.Info("stopped")
}

// Path is how the link to peer runs now (ports.PathReporter); the zero
// Path when there is none.
func (l *Link) Path(peer domain.Identity) domain.Path {
	l.mu.Lock()
	s := l.slots[string(peer.PublicKey())]
	var c *peerConn
	if s != nil {
		c = s.conn
	}
	l.mu.Unlock()
	if c == nil {
		return domain.Path{}
	}
	return c.currentPath()
}
